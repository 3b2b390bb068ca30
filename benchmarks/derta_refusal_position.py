"""Where in the answer a DeRTa model refuses: at the start, or inside an answer it had begun.

Why: a vanilla refusal model refuses at the turn start; RTO trains the refusal token after any harmful text, and a
small model also writes it after benign text ("Dear Grandmother, I hope ... I cannot provide ..."). The keyword judge
counts both as refusals, so over-refusal mixes two failures with different cures. This splits every keyword refusal
of the saved `derta_recipe.py` answers by the position of the first refusal phrase: word 0 = at the start, later =
inside the answer. Reads the run folders on disk (no model is loaded).

    python benchmarks/derta_refusal_position.py --arms vanilla-r1-lr10-more derta-r1-lr10-mid-z33-more ... \\
        --export benchmarks/results/derta_refusal_position.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safekeel.io import read_jsonl_rows
from safekeel.judges.keyword import first_refusal_token
from safekeel.stats import wilson

sys.path.insert(0, str(Path(__file__).parent))  # the sibling module, when loaded by path as well
from derta_tables import export  # noqa: E402

SETS = {"scary": "benign-but-scary (over-refusal)", "benign": "benign", "direct": "harmful, asked directly"}


def refused_at_start(response: str) -> bool:
    """A keyword refusal's first refusal phrase is at word 0 (or the answer is too short to have begun)."""
    return first_refusal_token(response.strip()) in (0, None)


def counts(rows: list[dict]) -> dict[str, dict[str, int]]:
    """Per set: n, refused (keyword), refused at the start (first refusal phrase at word 0), inside the answer."""
    out = {}
    for name in SETS:
        chosen = [r for r in rows if r["set"] == name]
        refused = [r["response"] for r in chosen if r["refusal"]]  # the keyword flag the recipe tables count
        start = sum(refused_at_start(t) for t in refused)
        out[name] = {"n": len(chosen), "refused": len(refused), "start": start, "inside": len(refused) - start}
    return out


def pct(k: int, n: int) -> str:
    lo, hi = wilson(k, n)
    return f"{100 * k / n:.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]" if n else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/derta_recipe")
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--arms", nargs="+", required=True)
    ap.add_argument("--export", default=None)
    args = ap.parse_args()
    table = ["| arm | seeds | set | n | refused | at the start | inside the answer |", "|---|---|---|---|---|---|---|"]
    results = []
    for arm in args.arms:
        files = sorted((Path(args.out) / f"eval-{args.split}" / arm).glob("seed-*.jsonl"))
        files = [f for f in files if f.name.count(".") == 1]  # seed-N.jsonl, not seed-N.qa.jsonl
        if not files:
            sys.exit(f"{Path(args.out) / f'eval-{args.split}' / arm}: no saved answers")
        per_seed = {f.stem: counts(list(read_jsonl_rows(f))) for f in files}
        results.append({"arm": arm, "seeds": list(per_seed), "counts": per_seed})
        for name in SETS:
            tot = {k: sum(c[name][k] for c in per_seed.values()) for k in ("n", "refused", "start", "inside")}
            seeds = ", ".join(s.split("-")[1] for s in per_seed)
            table.append(f"| {arm} | {seeds} | {SETS[name]} | {tot['n']} | {pct(tot['refused'], tot['n'])} | "
                         f"{pct(tot['start'], tot['n'])} | {pct(tot['inside'], tot['n'])} |")
    text = "\n".join(table) + ("\n\n(keyword refusals split by the word position of the first refusal phrase; "
                               "rates over every answer of the set, pooled over the seeds on disk; Wilson 95% CI)")
    print(text)
    if args.export:
        export(args.export, text, results=results)


if __name__ == "__main__":
    main()
