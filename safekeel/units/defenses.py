"""Unit maps for freezing defenses, derived from one scored unit map (the fine-tuning attack study).

A derived map has the source map's blocks and shapes and keeps its `weights_sha256`, so `safekeel train
--freeze-units DERIVED --freeze-classes esu` accepts it for the very weights the source was scored on. Its classes
are not SSAH classes: the units to freeze are marked `esu`, every other unit `ru`, and `cu_top` is all False, so one
selector (`esu`) picks the frozen set whatever the defense. Defenses:
  ssah       : ESU + the safety-critical top CU of the source map (`um.select(["esu", "cu"])`, DESIGN §4).
  random     : per block as many units as `ssah` freezes there, drawn uniformly (seeded `torch.Generator`): does
               freezing *which* units matter, or only freezing that many?
  ssah_all   : ESU + every CU (the paper's second arm, from its reviews); random_all is its same-count twin.
  ru         : the redundant units alone (for `train --train-only-units`: SSAH's alignment budget); random_ru is
               its same-count twin.
  top_safety : per block as many units as `ssah`, those with the highest safety score alone (no utility
               contrast): the single-score control in the spirit of Wei et al. 2024.
  lower      : every unit of every block below the last LAST_TRAINABLE layers, meant as a positive control (a
               defense that leaves the attack little room). On SmolLM2-135M it kept *less* refusal than no defense
               under a benign fine-tune (benchmarks/RESULTS.md): refusal can be undone from the last layers.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..errors import SafekeelError
from . import unitmap
from .unitmap import CLASSES, UnitMap

DEFENSES = ("ssah", "random", "ssah_all", "random_all", "top_safety", "lower", "ru", "random_ru")
TWINS = {"ssah": "random", "ssah_all": "random_all", "ru": "random_ru"}  # a unit set and its same-count twin
LAST_TRAINABLE = 2  # layers the `lower` control leaves trainable
FREEZE_CLASS = "esu"  # the class a derived map gives its frozen units (train with --freeze-classes esu)


def frozen_masks(um: UnitMap, defense: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Boolean mask per block of the units `defense` freezes."""
    ssah = um.select(["ru"] if defense in ("ru", "random_ru") else
                     ["esu", "cu_all" if defense in ("ssah_all", "random_all") else "cu"])
    if defense in TWINS:
        return ssah
    out = {}
    if defense == "lower":
        layers = {k: _layer(k) for k in um.keys}
        n = 1 + max(i for i in layers.values() if i is not None)
        cut = max(1, n - LAST_TRAINABLE)  # a model of <= LAST_TRAINABLE layers still gets its first one frozen
        return {k: torch.full_like(ssah[k], layers[k] is not None and layers[k] < cut) for k in um.keys}
    if defense in TWINS.values():
        g = torch.Generator().manual_seed(seed)
        for k in um.keys:  # fixed block order, so one seed gives one set
            out[k] = _mask(ssah[k].numel(), torch.randperm(ssah[k].numel(), generator=g)[: int(ssah[k].sum())])
        return out
    if defense == "top_safety":
        for k in um.keys:
            order = torch.argsort(um.safety[k].to(torch.float64), descending=True, stable=True)
            out[k] = _mask(ssah[k].numel(), order[: int(ssah[k].sum())])
        return out
    raise SafekeelError(f"unknown freezing defense {defense!r} (use {', '.join(DEFENSES)})")


def _layer(key: str) -> int | None:
    """The decoder layer index in a block name ("model.layers.12.mlp.down_proj" -> 12)."""
    m = re.search(r"\.(?:layers|h|blocks)\.(\d+)\.", f".{key}.")
    return int(m[1]) if m else None


def _mask(n: int, idx: torch.Tensor) -> torch.Tensor:
    m = torch.zeros(n, dtype=torch.bool)
    m[idx] = True
    return m


def derive(um: UnitMap, defense: str, seed: int = 0, source: str | None = None) -> UnitMap:
    """A map whose `esu` units are the ones `defense` freezes (all others `ru`, no `cu_top`)."""
    masks = frozen_masks(um, defense, seed)
    esu, ru = CLASSES.index(FREEZE_CLASS), CLASSES.index("ru")
    classes = {k: torch.where(m, esu, ru).to(torch.uint8) for k, m in masks.items()}
    tops = {k: torch.zeros_like(m) for k, m in masks.items()}
    out = UnitMap(classes, tops, {k: um.safety[k].clone() for k in um.keys},
                  {k: um.utility[k].clone() for k in um.keys})
    meta = {k: v for k, v in um.meta.items() if k not in ("counts", "totals")}
    meta.update({"defense": defense, "source_map": source or um.meta.get("source_map"), "seed": seed,
                 "frozen_units": int(sum(int(m.sum()) for m in masks.values())),
                 "freeze_classes": [FREEZE_CLASS], "classes": list(CLASSES),
                 "note": f"derived map: class '{FREEZE_CLASS}' marks the units of the {defense} set (frozen by a "
                         "defense, or the only ones trained with --train-only-units), not SSAH's exclusive safety "
                         "units",
                 "counts": out.counts(), "totals": unitmap.totals(out)})
    if defense not in TWINS.values():
        meta.pop("seed")
    out.meta = meta
    return out


def write_defense_maps(map_path: str | Path, out_dir: str | Path, seed: int = 0,
                       defenses: tuple[str, ...] | list[str] = DEFENSES) -> dict[str, Path]:
    """Derive and save one map per defense under `out_dir/<defense>/`; returns defense -> unit_map.safetensors."""
    um = unitmap.load(map_path)
    return {d: unitmap.save(derive(um, d, seed, source=str(map_path)), Path(out_dir) / d, plot=False)
            for d in defenses}
