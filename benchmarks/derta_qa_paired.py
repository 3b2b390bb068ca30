"""QA accuracy against the base model, paired item by item: is a recipe's QA drop larger than the 200 items' noise?

Why: issue 21 asks QA within 3 points of the base model, and the recipe tables print each arm's QA rate with its
own interval. A 135M model sits near chance on MMLU and OpenBookQA (scored by option likelihood), so two rates 3-5
points apart on 200 items may be the same model. Here every arm's per-item correctness (the `seed-N.qa.jsonl` rows
`derta_recipe.py --qa` keeps) is paired with the base model's on the same item: the difference's 95% CI resamples
items with their seeds, p flips each item's summed difference (`safekeel.stats.paired_difference`). The base model's
rows are computed once when missing.

    python benchmarks/derta_qa_paired.py --arms ARM ... --export benchmarks/results/derta_qa_paired.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safekeel.eval.compare import diff_text, replicate_baseline
from safekeel.io import read_jsonl_rows, write_jsonl
from safekeel.stats import paired_difference

sys.path.insert(0, str(Path(__file__).parent))  # the sibling module, when loaded by path as well
from derta_tables import export  # noqa: E402


def base_rows(out: Path, model: str) -> list[dict]:
    path = out / "eval-heldout" / "base" / "seed-0.qa.jsonl"
    if not path.exists():
        from safekeel.eval.qa import qa_accuracy, qa_items
        from safekeel.models import load_model

        m, tok = load_model(model)
        write_jsonl(path, qa_accuracy(m, tok, qa_items())["rows"])
    return list(read_jsonl_rows(path))


def flags(rows_by_seed: dict[int, list[dict]], task: str | None) -> dict[tuple, bool]:
    return {(f"{r['task']}:{i}", s, "qa"): bool(r["correct"]) for s, rows in rows_by_seed.items()
            for i, r in enumerate(rows) if task in (None, r["task"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/derta_recipe")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--arms", nargs="+", required=True)
    ap.add_argument("--export", default=None)
    args = ap.parse_args()
    out = Path(args.out)
    base = {0: base_rows(out, args.model)}
    tasks = list(dict.fromkeys(r["task"] for r in base[0]))
    head = ["all", *tasks]
    lines = ["| arm | seeds | " + " | ".join(f"{t} (arm - base)" for t in head) + " |",
             "|---|---|" + "---|" * len(head)]
    base_line = " | ".join(f"{100 * sum(flags(base, t).values()) / len(flags(base, t)):.0f}%" for t in (None, *tasks))
    lines.append(f"| base | 0 | {base_line} |")
    diffs = {}
    for arm in args.arms:
        files = sorted((out / "eval-heldout" / arm).glob("seed-*.qa.jsonl"))
        if not files:
            sys.exit(f"{out / 'eval-heldout' / arm}: no QA rows (derta_recipe.py --qa)")
        by_seed = {int(f.name.split(".")[0].split("-")[1]): list(read_jsonl_rows(f)) for f in files}
        cells = []
        for t in (None, *tasks):
            b = flags(by_seed, t)
            d = paired_difference(replicate_baseline(flags(base, t), {k[1] for k in b}), b)
            diffs[f"{arm}:{t or 'all'}"] = d
            cells.append(f"{100 * d['b']:.0f}%, {diff_text(d, digits=0, p_digits=2)}")
        lines.append(f"| {arm} | {', '.join(map(str, by_seed))} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + ("\n\n(accuracy on the 200 utility-qa items, pooled over seeds; difference from the "
                               "base model in points on the same items [95% CI resampling items], exact sign-flip p "
                               "over items)")
    print(text)
    if args.export:
        export(args.export, text, diffs=diffs)


if __name__ == "__main__":
    main()
