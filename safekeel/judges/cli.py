"""`safekeel judge`: judge a run directory or any JSONL of {question|prompt, response} rows (answers made elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config import add_config_args, field, resolve_config, save_config
from .registry import JudgeSettings


@dataclass
class JudgeConfig(JudgeSettings):
    input: str | None = field(None, help="run directory (rows.jsonl) or a JSONL file with question/prompt + response")
    judges: list[str] = field(["keyword", "harm-clf"], help="keyword, refusal-clf, harm-clf (the default safety "
                              "judge), harm (= derta, lexical), llm, llamaguard")
    out: str | None = field(None, help="output folder (default: the run directory, or beside the input file)")
    resume: bool = field(True, help="skip rows already judged by the same judge")

    def validate(self) -> None:
        from ..errors import ConfigError

        if not self.input:
            raise ConfigError("missing value for: --input")


def run_judge(cfg: JudgeConfig, log=print) -> Path:
    """Verdicts into OUT/judged.jsonl (+ summary.json for run directories); returns the output folder."""
    from ..judges.runner import judge_items, load_items

    src = Path(cfg.input)
    is_run = src.is_dir()
    rows_path = src / "rows.jsonl" if is_run else src
    out = Path(cfg.out) if cfg.out else (src if is_run else src.parent / f"{src.stem}.judged")
    opts = cfg.judge_options()
    items = load_items(rows_path)
    save_config(cfg, out, "judge_config.yaml")
    n = judge_items(items, cfg.judges, out / "judged.jsonl", opts, resume=cfg.resume, log=log)
    log(f"{n} new verdicts -> {out / 'judged.jsonl'}")
    if is_run and out == src:
        from ..eval.summary import summarize

        summarize(src)
    else:
        _print_rates(items, out / "judged.jsonl", log)
    return out


def _print_rates(items: list[dict], judged: Path, log) -> None:
    from ..eval.metrics import rate
    from ..io import read_jsonl_rows

    keys = {it["key"] for it in items}
    by: dict[str, list] = {}
    for v in read_jsonl_rows(judged):
        if v["key"] in keys:
            by.setdefault(v["judge"], []).append(v.get("unsafe"))
    for judge, flags in by.items():
        r = rate(flags)
        pct = "n/a" if r["rate"] is None else f"{100 * r['rate']:.1f}%"
        log(f"{judge}: unsafe {pct} [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}] n={r['n']} errors={r['errors']}")


def register(sub) -> None:
    from .calibrate import CalibrateConfig

    c = sub.add_parser("calibrate", help="measure judges against human-labelled answers (agreement, kappa, CIs)")
    add_config_args(c, CalibrateConfig)
    c.set_defaults(func=_calibrate)
    p = sub.add_parser("judge", help="judge responses (a run directory or any question/response JSONL)")
    add_config_args(p, JudgeConfig)
    p.set_defaults(func=_run)


def _calibrate(args) -> int:
    from .calibrate import CalibrateConfig, run_calibrate

    run_calibrate(resolve_config(CalibrateConfig, args))
    return 0


def _run(args) -> int:
    run_judge(resolve_config(JudgeConfig, args))
    return 0
