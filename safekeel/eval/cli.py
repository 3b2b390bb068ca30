"""`safekeel eval` (generate + judge + summary, resumable) and `safekeel report RUN_DIR [RUN_DIR ...]`."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import add_config_args, field, resolve_config, save_config
from .run import EvalConfig


@dataclass
class ReportConfig:
    runs: list[str] = field([], help="run directories (also positional)")
    out: str = field("runs/report", help="output folder: summary.json, report.md, report.html, PNGs")


def register(sub) -> None:
    p = sub.add_parser("eval", help="jailbreak evaluation run: generate (resumable), judge, summarise")
    add_config_args(p, EvalConfig)
    p.set_defaults(func=_eval)
    r = sub.add_parser("report", help="summary.json + report.md + self-contained report.html for one or more runs")
    r.add_argument("run_dirs", nargs="*", help="run directories to compare side by side")
    add_config_args(r, ReportConfig)
    r.set_defaults(func=_report)


def _eval(args) -> int:
    from .run import run_eval

    cfg = resolve_config(EvalConfig, args)
    out = run_eval(cfg)
    _print_summary(out)
    return 0


def _print_summary(out) -> None:
    import json

    path = out / "summary.json"
    if not path.exists():
        print(f"generated rows -> {out / 'rows.jsonl'} (not judged)")
        return
    s = json.loads(path.read_text())
    for judge, per in s["asr"].items():
        cells = ", ".join(f"{a} {100 * r['rate']:.0f}%" for a, r in per.items() if r["rate"] is not None)
        print(f"ASR [{judge}]: {cells}")
    for judge, r in s["over_refusal"].items():
        print(f"over-refusal [{judge}]: {100 * (r['rate'] or 0):.1f}% of {r['n']}")
    print(f"run -> {out}")


def _report(args) -> int:
    from ..errors import ConfigError
    from .report import write_report

    cfg = resolve_config(ReportConfig, args)
    cfg.runs = list(args.run_dirs) + list(cfg.runs)
    if not cfg.runs:
        raise ConfigError("give at least one RUN_DIR")
    out = write_report(cfg.runs, cfg.out)
    save_config(cfg, out)
    print(f"report -> {out / 'report.html'} ({out / 'report.md'}, {out / 'summary.json'})")
    return 0
