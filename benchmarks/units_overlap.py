"""Are SSAH's units real? Overlap of the exclusive safety units (ESU) and of ESU + top CU (what freezing keeps)
found from different calibration data and different scores, on the embedded default model.

- halves: ssah scores from two disjoint halves of the calibration data (safety: uncensorbench train-split prompts
  + refusals; utility: benign train-split prompts + the model's own answers);
- samples: two random samples (seeds 0 / 1) of `--n` examples from the same pools (they may share examples: how
  many they share is recorded);
- methods: ssah vs wanda vs snip on the same data.
`--model` and `--safety own` score an aligned model on its own refusals, as `ssah_benign.py` scores the map its
freezing arms use (`--safety bundled`: the bundled refusals, for a base model that has none of its own).
Jaccard |A & B| / |A | B| of the unit sets (block, unit), next to what two random sets of the same sizes would
share (f / (2 - f) for a fraction f per block). Units found by chance would overlap at that level.

    python benchmarks/units_overlap.py [--n 64] [--out benchmarks/results/units_overlap.json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

CLASSES = {"esu": ["esu"], "esu+cu": ["esu", "cu"], "esu+all cu": ["esu", "cu_all"]}


def unit_set(um, names: list[str]) -> set[tuple[str, int]]:
    return {(k, int(i)) for k, m in um.select(names).items() for i in m.nonzero().flatten().tolist()}


def jaccard(a: set, b: set) -> float | None:
    return round(len(a & b) / len(a | b), 4) if a | b else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=64, help="examples per set and per sample")
    ap.add_argument("--snip-examples", type=int, default=32, help="snip needs a backward pass: fewer examples")
    ap.add_argument("--safety", choices=["bundled", "own"], default="bundled",
                    help="refusals in the safety pairs: the bundled ones, or the model's own (an aligned model)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "units_overlap.json"))
    args = ap.parse_args()

    from safekeel.units import calibration as cal
    from safekeel.units import unitmap
    from safekeel.units.runs import load_for_units
    from safekeel.units.scores import score

    t0 = time.time()
    model, tok = load_for_units(args.model)
    safety = cal.safety_pairs("uncensorbench") if args.safety == "bundled" else \
        cal.own_refusal_pairs(model, tok, args.model)
    utility = cal.utility_pairs("benign", model, tok, args.model, None, 64, 16)

    def classified(method: str, s_pairs, u_pairs):
        s = score(model, cal.make_batches(tok, s_pairs, 8, 256), method)
        u = score(model, cal.make_batches(tok, u_pairs, 8, 256), method)
        return unitmap.classify(s, u)

    runs: dict[str, tuple] = {}
    n = args.n
    runs["half A"] = classified("ssah", safety[0::2][:n], utility[0::2][:n])
    runs["half B"] = classified("ssah", safety[1::2][:n], utility[1::2][:n])
    drawn = {}
    for seed in (0, 1):
        rng = random.Random(seed)
        drawn[seed] = (rng.sample(safety, min(n, len(safety))), rng.sample(utility, min(n, len(utility))))
        runs[f"sample {seed}"] = classified("ssah", *drawn[seed])
    shared = [sum(1 for x in drawn[0][i] if x in drawn[1][i]) for i in (0, 1)]
    m = args.snip_examples
    for method in ("ssah", "wanda", "snip"):
        runs[method] = classified(method, safety[:m], utility[:m])
    pairs = {"halves": ("half A", "half B"), "samples": ("sample 0", "sample 1"), "ssah vs wanda": ("ssah", "wanda"),
             "ssah vs snip": ("ssah", "snip"), "wanda vs snip": ("wanda", "snip")}
    units_total = sum(int(c.numel()) for c in runs["half A"].classes.values())
    out = {"measured": time.strftime("%Y-%m-%d"), "command": "python benchmarks/units_overlap.py " + " ".join(
               sys.argv[1:]), "model": args.model, "safety": args.safety, "n": n, "snip_examples": m,
           "units": units_total, "pool": {"safety": len(safety), "utility": len(utility)},
           "samples_share": {"safety": shared[0], "utility": shared[1]}, "overlap": {}}
    for cls, names in CLASSES.items():
        size = len(unit_set(runs["half A"], names))
        f = size / units_total
        out["overlap"][cls] = {"units": size, "chance": round(f / (2 - f), 4),
                               **{name: jaccard(unit_set(runs[a], names), unit_set(runs[b], names))
                                  for name, (a, b) in pairs.items()}}
    out["seconds"] = round(time.time() - t0)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out["overlap"], indent=1))


if __name__ == "__main__":
    main()
