"""SSAH's ablation on the wide held-out set (issue 22 item 7): prune ESU, an ESU-sized set of RU units, an ESU-sized
random set, and compare each with the dense model behavior by behavior.

The units are the ones `ssah_benign.py --units` scored on the aligned model itself (ssah, safety = its own
refusals). Each pruned model is written once (its zeroed weights, `safekeel units ablate --export`'s format) and
evaluated like any model (`safekeel eval`: direct and prefill on the 240 wide test-split behaviors, harm-clf for
ASR, the keyword judge for refusal, held-out benign prompts for utility), so the paired statistics are the ones
`safekeel compare` prints. SSAH's claim: pruning ESU removes refusal that neither twin removes, at a small utility
cost. The twins are seeded draws; `--seeds` draws more of them.

    python benchmarks/ssah_prune.py [--aligned derta] [--seeds 0] [--export benchmarks/results/ssah_prune.json]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

from safekeel.eval.compare import compare, diff_text
from safekeel.eval.metrics import rate
from safekeel.eval.summary import load_run
from safekeel.io import write_json

CONDITIONS = ("esu", "ru", "random")  # ru and random: as many units per block as ESU


def condition_name(condition: str, seed: int) -> str:
    """ESU is one set; each twin is a seeded draw."""
    return condition if condition == "esu" else f"{condition}-seed{seed}"


def pruned_model(model: str, unit_map: str, condition: str, seed: int, out: Path) -> str:
    """Write the model with `condition`'s units zeroed (once) and return its folder."""
    import torch

    from safekeel.units import unitmap
    from safekeel.units.ablate import random_like, sample_within, zero_units
    from safekeel.units.runs import load_for_units

    d = out / condition_name(condition, seed)
    if (d / "safekeel_pruned.json").exists():
        return str(d)
    um = unitmap.load(unit_map)
    m, tok = load_for_units(model, device="cpu")
    um.check_model(m)
    um.check_weights(m)
    esu = um.select(["esu"])
    sel = {"esu": esu, "ru": sample_within(um.select(["ru"]), esu, seed), "random": random_like(esu, seed)}[condition]
    with torch.no_grad():
        n = zero_units(m, sel)
    m.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    write_json(d / "safekeel_pruned.json", {"unit_map": unit_map, "condition": condition, "seed": seed, "units": n})
    return str(d)


def evaluate(model: str, behaviors: str, out: Path, label: str) -> Path:
    from safekeel.eval.run import EvalConfig, run_eval

    if not (out / "summary.json").exists():
        run_eval(EvalConfig(model=model, behaviors=behaviors, n_behaviors=0, attacks=["direct", "prefill"],
                            benign_scary=16, benign=16, max_new_tokens=64, batch_size=16, seed=0, label=label,
                            judges=["keyword", "harm-clf"], resume=True, out=str(out)))
    return out


def table(out: Path, seeds: list[int]) -> tuple[str, dict]:
    """Each pruned model against the dense one, and ESU against each twin, paired on the same behaviors."""
    ev = out / "eval"
    rows, cells = [], {}
    twins = [condition_name(c, s) for c in CONDITIONS[1:] for s in seeds]
    pairs = [(arm, "dense") for arm in ["esu", *twins]] + [("esu", twin) for twin in twins]
    for arm, base in pairs:
        res = next(iter(compare([ev / arm], ev / base)["runs"].values()))
        cells[f"{arm} - {base}"] = {m: res[m].get("all attacks") for m in ("refusal", "asr")} | {
            f"{m} {a}": res[m].get(a) for m in ("refusal", "asr") for a in ("direct", "prefill")}
        rows.append(f"| {arm} - {base} | {diff_text(res['refusal'].get('direct'))} | "
                    f"{diff_text(res['refusal'].get('prefill'))} | {diff_text(res['asr'].get('all attacks'))} |")
    rates = []
    for d in sorted(p for p in ev.iterdir() if (p / "judged.jsonl").exists()):
        run = load_run(d)
        rates.append(f"| {d.name} | " + " | ".join(_rate(*run, judge, attack, flag) for judge, attack, flag in (
            ("keyword", "direct", "refusal"), ("keyword", "prefill", "refusal"), ("harm-clf", "direct", "unsafe"),
            ("harm-clf", "prefill", "unsafe"), ("keyword", "benign", "refusal"),
            ("keyword", "benign-scary", "refusal"))) + " |")
    text = ("| model | refusal direct (keyword) | refusal prefill | ASR direct (harm-clf) | ASR prefill | "
            "benign refused | benign-but-scary refused |\n|---|---|---|---|---|---|---|\n" + "\n".join(rates) +
            "\n\n| pair | refusal direct, points | refusal prefill | ASR (direct + prefill rows) |\n|---|---|---|---|\n"
            + "\n".join(rows) + "\n\n(points [95% CI resampling behaviors], exact sign-flip p over behaviors)")
    return text, cells


def _rate(rows: list[dict], verdicts: dict, judge: str, attack: str, flag: str) -> str:
    """One judge's rate on one attack (or benign set) of a run (`load_run`): percent [Wilson 95% CI] (n)."""
    vs = verdicts.get(judge, {})
    pick = [r for r in rows if (r.get("set") == attack if attack.startswith("benign") else
                                r.get("set", "harmful") == "harmful" and r["attack"] == attack)]
    r = rate(vs[x["key"]].get(flag) for x in pick if x["key"] in vs)
    if not r["n"]:
        return "-"
    return f"{100 * r['rate']:.0f}% [{100 * r['ci'][0]:.0f}, {100 * r['ci'][1]:.0f}] (n = {r['n']})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid-out", default="runs/ssah_benign_more", help="ssah_benign.py's --out (units, behaviors)")
    ap.add_argument("--aligned", default="derta")
    ap.add_argument("--out", default="runs/ssah_prune")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="draws of the RU and random twins")
    ap.add_argument("--export", default=None)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from ssah_benign import aligned_paths

    grid = Path(args.grid_out)
    model, unit_map = aligned_paths(args.aligned)[0], str(grid / f"units-{args.aligned}" / "unit_map.safetensors")
    behaviors = str(grid / "wide_behaviors.jsonl")
    out = Path(args.out) / args.aligned
    evaluate(model, behaviors, out / "eval" / "dense", "dense")
    for seed in args.seeds:
        for c in CONDITIONS:
            if c == "esu" and seed != args.seeds[0]:
                continue
            d = pruned_model(model, unit_map, c, seed, out / "models")
            evaluate(d, behaviors, out / "eval" / Path(d).name, Path(d).name)
    text, cells = table(out, args.seeds)
    print(text)
    if args.export:
        write_json(Path(args.export), {"measured": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
                                       "2-core CPU, no GPU", "command": "python benchmarks/ssah_prune.py "
                                       + " ".join(sys.argv[1:]), "aligned": model, "table": text, "cells": cells})


if __name__ == "__main__":
    main()
