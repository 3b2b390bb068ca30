"""`safekeel eval` (generate + judge + summary, resumable), `safekeel report RUN_DIR [RUN_DIR ...]` and
`safekeel compare RUN [RUN ...] --baseline RUN` (paired differences)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import add_config_args, field, resolve_config, save_config
from .run import EvalConfig


@dataclass
class ReportConfig:
    runs: list[str] = field([], help="run directories (also positional)")
    baseline: str | None = field(None, help="run (or folder of seed runs) the others are compared with, paired")
    out: str = field("runs/report", help="output folder: summary.json, report.md, report.html, PNGs")


@dataclass
class CompareConfig:
    runs: list[str] = field([], help="runs, or folders of seed runs (also positional)")
    baseline: str = field("", help="the run (or folder of seed runs) every other run is compared with")
    judge: str = field("harm-clf", help="judge whose verdicts give ASR")
    refusal_judge: str = field("keyword", help="judge whose refusal flag gives the refusal rate")
    n_boot: int = field(2000, help="bootstrap replicates (behaviors resampled)")
    out: str = field("runs/compare", help="output folder: compare.json, compare.md")


def register(sub) -> None:
    p = sub.add_parser("eval", help="jailbreak evaluation run: generate (resumable), judge, summarise")
    add_config_args(p, EvalConfig)
    p.set_defaults(func=_eval)
    r = sub.add_parser("report", help="summary.json + report.md + self-contained report.html for one or more runs")
    r.add_argument("run_dirs", nargs="*", help="run directories to compare side by side")
    add_config_args(r, ReportConfig)
    r.set_defaults(func=_report)
    c = sub.add_parser("compare", help="paired differences in ASR and refusal against a baseline run")
    c.add_argument("run_dirs", nargs="*", help="runs (or folders of seed runs) to compare with the baseline")
    add_config_args(c, CompareConfig)
    c.set_defaults(func=_compare)


def _compare(args) -> int:
    from ..errors import ConfigError
    from ..io import write_json, write_text
    from ..judges.registry import canonical
    from .compare import compare, compare_tables

    cfg = resolve_config(CompareConfig, args)
    cfg.runs = list(args.run_dirs) + list(cfg.runs)
    if not cfg.runs or not cfg.baseline:
        raise ConfigError("give at least one RUN and --baseline RUN")
    res = compare(cfg.runs, cfg.baseline, canonical(cfg.judge), canonical(cfg.refusal_judge), cfg.n_boot)
    from pathlib import Path

    out = Path(cfg.out)
    write_json(out / "compare.json", res)
    md = []
    for title, header, rows, notes in compare_tables(res):
        md.append(f"## {title}\n\n| {' | '.join(header)} |\n|{'---|' * len(header)}\n"
                  + "\n".join(f"| {' | '.join(r)} |" for r in rows) + "\n" + "".join(f"\n{n}\n" for n in notes))
    write_text(out / "compare.md", "\n".join(md))
    save_config(cfg, out)
    print("\n".join(md))
    print(f"compare -> {out / 'compare.md'} ({out / 'compare.json'})")
    return 0


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
    out = write_report(cfg.runs, cfg.out, baseline=cfg.baseline)
    save_config(cfg, out)
    print(f"report -> {out / 'report.html'} ({out / 'report.md'}, {out / 'summary.json'})")
    return 0
