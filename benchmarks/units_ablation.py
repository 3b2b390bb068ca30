"""The SSAH ablation experiment on the embedded default model (issue 4, "must show").

Score units with ssah and snip (safety = uncensorbench TRAIN prompts + refusals; utility = benign TRAIN prompts +
the model's own answers), classify with the paper's fractions, then prune ESU vs the same number of RU units (per
block) vs the same number of random units (per block), and measure for each condition:
  refusal rate (keyword judge) on HarmBench's test-split behaviors (not used for calibration), direct and prefill;
  perplexity of the dense model's answers to held-out benign prompts; answer-check accuracy on benign prompts.
The SSAH claim under test: pruning ESU hurts safety far more than pruning RU or random units, at small utility cost.

    python benchmarks/units_ablation.py [--n-behaviors 100] [--seeds 0 1 2] [--out runs/units_ablation]
Writes summary.json + rows.jsonl + the unit maps under --out and prints a Markdown table for RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n-behaviors", type=int, default=100)
    ap.add_argument("--n-safety", type=int, default=128)
    ap.add_argument("--n-utility", type=int, default=128)
    ap.add_argument("--snip-examples", type=int, default=64, help="per set; snip needs a backward pass")
    ap.add_argument("--methods", default="ssah,snip")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--attacks", default="direct,prefill", help="direct, prefill, system (safety system prompt)")
    ap.add_argument("--reuse-maps", action="store_true", help="load the unit maps of a previous run from --out")
    ap.add_argument("--skip-utility", action="store_true", help="no benign perplexity / answer checks")
    ap.add_argument("--merge", action="store_true", help="add the new metrics to --out/summary.json")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the RU and random twins")
    ap.add_argument("--out", default="runs/units_ablation")
    args = ap.parse_args()

    import torch

    from safekeel.data.bundled import load_behavior_set
    from safekeel.io import write_json, write_jsonl
    from safekeel.units import calibration as cal
    from safekeel.units import unitmap
    from safekeel.units.ablate import count, pruned, random_like, sample_within
    from safekeel.units.runs import evaluate, load_for_units, utility_eval_set
    from safekeel.units.scores import score

    torch.manual_seed(0)
    out = Path(args.out)
    t_all = time.time()
    model, tok = load_for_units(args.model)
    if not args.reuse_maps:
        safety = cal.safety_pairs("uncensorbench", args.n_safety)
        t0 = time.time()
        utility = cal.utility_pairs("benign", model, tok, args.model, args.n_utility, 96, 16)
        print(f"calibration: {len(safety)} safety, {len(utility)} utility pairs (distill {time.time() - t0:.0f} s)")
    maps = {}
    timings = {}
    for method in args.methods.split(","):
        if args.reuse_maps:
            maps[method] = unitmap.load(out / f"map_{method}")
            continue
        n = args.snip_examples if method == "snip" else None
        t0 = time.time()
        s = score(model, cal.make_batches(tok, safety[:n], 8, 256), method)
        u = score(model, cal.make_batches(tok, utility[:n], 8, 256), method)
        timings[f"score_{method}_s"] = round(time.time() - t0, 1)
        meta = {"model": args.model, "method": method, "calibration": {
            "safety": {"n": len(safety[:n]), "sha256": cal.pairs_hash(safety[:n])},
            "utility": {"n": len(utility[:n]), "sha256": cal.pairs_hash(utility[:n])}}}
        maps[method] = unitmap.classify(s, u, meta=meta)
        unitmap.save(maps[method], out / f"map_{method}")
        print(f"{method}: scored in {timings[f'score_{method}_s']} s; totals {maps[method].meta['totals']}")

    from safekeel.data.splits import select

    prompts = [b.prompt for b in select(load_behavior_set("harmbench"), "test")[:args.n_behaviors]]
    ppl_pairs, checks = utility_eval_set(model, tok, args.model, 48, batch_size=16)
    if args.skip_utility:
        ppl_pairs, checks = [], []
    attacks = args.attacks.split(",")
    conditions = [("dense", None, None)]
    for method, um in maps.items():
        esu = um.select(["esu"])
        conditions.append((f"{method}: ESU", method, esu))
        for seed in args.seeds:  # a twin per seed: which RU / random units stand in is itself a draw
            tag = f", seed {seed}" if len(args.seeds) > 1 else ""
            conditions += [(f"{method}: RU (same count{tag})", method, sample_within(um.select(["ru"]), esu, seed)),
                           (f"{method}: random (same count{tag})", method, random_like(esu, seed))]
    results, rows = {}, []
    for name, _method, sel in conditions:
        t0 = time.time()
        with pruned(model, sel or {}):
            metrics, r = evaluate(model, tok, prompts, attacks, ppl_pairs, checks, args.max_new_tokens,
                                  args.batch_size)
        metrics["units_pruned"] = count(sel) if sel else 0
        metrics["seconds"] = round(time.time() - t0, 1)
        results[name] = metrics
        rows += [{"condition": name, **x} for x in r]
        print(name, json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}),
              flush=True)
    total_units = sum(m.numel() for m in next(iter(maps.values())).classes.values())
    summary = {"model": args.model, "n_behaviors": len(prompts), "behaviors": "harmbench (test split)",
               "n_ppl": len(ppl_pairs), "n_checks": len(checks), "total_units": total_units,
               "timings": timings, "seconds_total": round(time.time() - t_all, 1), "conditions": results}
    if args.merge and (out / "summary.json").exists():
        old = json.loads((out / "summary.json").read_text())
        for name, m in results.items():
            old["conditions"].setdefault(name, {}).update(m)
        old.setdefault("extra_runs", []).append({"attacks": attacks, "seconds_total": summary["seconds_total"]})
        summary = old
        write_jsonl(out / f"rows_{'_'.join(attacks)}.jsonl", rows)
    else:
        write_jsonl(out / "rows.jsonl", rows)
    write_json(out / "summary.json", summary)
    cols = [c for c in ("refusal_direct", "refusal_prefill", "refusal_system", "ppl_refusal_heldout",
                        "ppl_harmful_heldout", "ppl_benign", "answer_acc", "answer_acc_heldout")
            if any(c in m for m in summary["conditions"].values())]
    print("\n| condition | units pruned | " + " | ".join(cols) + " |")
    print("|---|---|" + "---|" * len(cols))
    for name, m in summary["conditions"].items():
        vals = [("-" if c not in m else f"{m[c]:.0%}" if c.startswith(("refusal", "answer")) else f"{m[c]:.2f}")
                for c in cols]
        print(f"| {name} | {m['units_pruned']} ({m['units_pruned'] / total_units:.1%}) | " + " | ".join(vals) + " |")
    print(f"\ntotal {summary['seconds_total']} s; details in {out}/summary.json")


if __name__ == "__main__":
    main()
