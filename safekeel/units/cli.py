"""`safekeel units score|classify|ablate`: SSAH safety units (score, classify into ESU/EUU/RU/CU, prune)."""

from __future__ import annotations

from ..config import add_config_args, resolve_config


def register(sub) -> None:
    from .runs import AblateConfig, ClassifyConfig, ScoreConfig

    p = sub.add_parser("units", help="SSAH safety units: score, classify, ablate (freezing: `train --freeze-units`)")
    usub = p.add_subparsers(dest="units_cmd", required=True)
    s = usub.add_parser("score", help="per-unit importance on a safety and a utility calibration set")
    add_config_args(s, ScoreConfig)
    s.set_defaults(func=_score)
    c = usub.add_parser("classify", help="RU / ESU / EUU / CU by fractions -> unit map (safetensors, JSON, PNG)")
    add_config_args(c, ClassifyConfig, positional=("scores",))
    c.set_defaults(func=_classify)
    a = usub.add_parser("ablate", help="prune unit classes (hooks) vs a random control; refusal + utility; export")
    add_config_args(a, AblateConfig, positional=("unit_map",))
    a.set_defaults(func=_ablate)


def _score(args) -> int:
    from .runs import ScoreConfig, run_score

    cfg = resolve_config(ScoreConfig, args)
    out = run_score(cfg)
    print(f"scores ({cfg.method}) written to {out}/scores.safetensors")
    return 0


def _classify(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from . import unitmap
    from .runs import ClassifyConfig, run_classify

    out = run_classify(resolve_config(ClassifyConfig, args))
    um = unitmap.load(out)
    tot = um.meta["totals"]
    table = Table(title=f"{um.meta.get('model')}: {um.meta.get('method')}, {um.meta.get('scope')}")
    for col in ("class", "units", "fraction"):
        table.add_column(col)
    for name in ("esu", "euu", "ru", "cu", "cu_top"):
        table.add_row(name.upper() if name != "cu_top" else "CU (top safety)", str(tot[name]),
                      f"{tot[name] / tot['units']:.2%}")
    Console().print(table)
    print(f"unit map written to {out}/unit_map.safetensors (+ unit_map.json, units_per_class.png)")
    return 0


def _ablate(args) -> int:
    from .runs import AblateConfig, run_ablate

    out = run_ablate(resolve_config(AblateConfig, args))
    print(f"rows and summary in {out}/")
    return 0
