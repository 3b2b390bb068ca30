"""Choose class sizes by pruning degradation instead of fixed fractions (optional step of `units classify`).

For each candidate fraction the units are classified, the class is pruned with hooks, and the mean response NLL on
the safety and utility calibration sets is compared with the dense model's:
  ESU size = the candidate that maximises (increase of safety NLL) - (increase of utility NLL): beyond it, more
             "safety" units start costing utility as much as safety, so they are no longer exclusive;
  RU size  = the largest candidate whose pruning raises neither NLL by more than `ru_tolerance` nats.
EUU keeps its given fraction. Cost: one forward pass over the calibration batches per candidate.
"""

from __future__ import annotations

from .ablate import pruned
from .calibration import Batch, mean_nll
from .unitmap import classify


def calibrate_sizes(model, safety_batches: list[Batch], utility_batches: list[Batch], safety: dict, utility: dict,
                    fractions: dict[str, float], esu_candidates: list[float], ru_candidates: list[float],
                    ru_tolerance: float = 0.02, **classify_kw) -> tuple[float, float, list[dict]]:
    """(esu fraction, ru fraction, one row per tried candidate with its NLL increases).

    `fractions` holds the other classes' sizes (esu, euu, ru) used while one class's size is varied."""
    base_s, base_u = mean_nll(model, safety_batches), mean_nll(model, utility_batches)
    trials = []

    def degrade(kind: str, frac: float) -> tuple[float, float]:
        fr = {"esu": fractions["esu"], "euu": fractions["euu"], "ru": fractions["ru"], "cu_top": 0.0, kind: frac}
        um = classify(safety, utility, **fr, **classify_kw)
        with pruned(model, um.select([kind])):
            ds, du = mean_nll(model, safety_batches) - base_s, mean_nll(model, utility_batches) - base_u
        trials.append({"class": kind, "fraction": frac, "safety_nll_increase": round(ds, 5),
                       "utility_nll_increase": round(du, 5)})
        return ds, du

    esu = max(esu_candidates, key=lambda f: (lambda d: d[0] - d[1])(degrade("esu", f)))
    ru = 0.0
    for f in sorted(ru_candidates):
        ds, du = degrade("ru", f)
        if max(ds, du) <= ru_tolerance:
            ru = f
    return esu, ru, trials
