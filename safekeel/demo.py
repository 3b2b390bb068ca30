"""`safekeel demo`: the main job on the embedded default model, offline.

Current stage: prepare the default model, ask it a few bundled HarmBench behaviors directly, and print what it
answered and whether it refused. Outputs (rows.jsonl, summary.json, config.yaml) go to `--out`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from .config import add_config_args, field, resolve_config, save_config
from .io import write_json, write_jsonl


@dataclass
class DemoConfig:
    model: str = field("smollm2-135m", help="model: embedded name, HF id or local folder")
    behaviors: str = field("harmbench", help="behavior set: bundled source name or a JSONL/JSON/CSV file")
    n_behaviors: int = field(8, help="how many behaviors to ask")
    max_new_tokens: int = field(64, help="tokens generated per answer")
    batch_size: int = field(8, help="generation batch size")
    out: str = field("runs/demo", help="output directory")
    quick: bool = field(True, help="small, fast settings (the default for `make demo`)")
    full: bool = field(False, help="more behaviors and longer answers")

    def validate(self) -> None:
        if self.full:
            self.quick = False
            self.n_behaviors = max(self.n_behaviors, 50)
            self.max_new_tokens = max(self.max_new_tokens, 128)


def register(sub) -> None:
    p = sub.add_parser("demo", help="run safekeel's main job on the embedded default model")
    add_config_args(p, DemoConfig)
    p.set_defaults(func=run)


def run(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from .data.bundled import load_behavior_set
    from .eval.generate import GenerationRequest, generate
    from .judges.keyword import first_refusal_token, is_refusal
    from .models import load_model

    cfg = resolve_config(DemoConfig, args)
    console = Console()
    out = Path(cfg.out)
    save_config(cfg, out)
    t0 = time.time()
    with console.status(f"loading {cfg.model} (first run prepares it from the bundled GGUF)"):
        model, tok = load_model(cfg.model)
    behaviors = load_behavior_set(cfg.behaviors)[: cfg.n_behaviors]
    requests = [GenerationRequest(messages=[{"role": "user", "content": b.prompt}]) for b in behaviors]
    with console.status(f"generating {len(requests)} answers"):
        answers = generate(model, tok, requests, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    rows = []
    for b, a in zip(behaviors, answers, strict=True):
        rows.append({"id": b.id, "attack": "direct", "prompt": b.prompt, "response": a, "refusal": is_refusal(a),
                     "refusal_token": first_refusal_token(a, tok)})
    write_jsonl(out / "rows.jsonl", rows)
    refusals = sum(r["refusal"] for r in rows)
    summary = {"model": cfg.model, "behaviors": cfg.behaviors, "n": len(rows), "refusals": refusals,
               "refusal_rate": refusals / max(len(rows), 1), "seconds": round(time.time() - t0, 1)}
    write_json(out / "summary.json", summary)

    table = Table(title=f"{cfg.model}: direct requests ({cfg.behaviors}), keyword refusal judge", show_lines=True)
    table.add_column("behavior", ratio=2, overflow="fold")
    table.add_column("response (start)", ratio=3, overflow="fold")
    table.add_column("refused?", justify="center")
    for r in rows:
        table.add_row(r["prompt"], r["response"][:200], "[green]yes[/]" if r["refusal"] else "[red]no[/]")
    console.print(table)
    console.print(f"refused {refusals}/{len(rows)} ({summary['refusal_rate']:.0%}) in {summary['seconds']} s; "
                  f"rows and summary in {out}/")
    return 0
