"""Over-refusal on a second, larger benign-but-scary set: `benign-scary-more`'s test (or val) prompts.

Why: the recipe tables measure over-refusal on 42 benign-but-scary test prompts (16 on val), too few to tell apart
two arms a few points apart. `benign-scary-more` holds 98 more test prompts (42 val) of the same nine XSTest kinds.
Its train prompts are in the helpful rows of the `scary_more` arms, so between an sm arm and an arm without it the
comparison favours the sm arm (same author, same kinds); between arms trained on the same data it is fair.
`--split train` asks the very prompts whose base-model answers an sm arm was trained on: whether that teacher-forced
contrast carries over to the answers the model writes itself. Answers
are generated like `derta_recipe.py`'s (greedy, same token budget), refusal by the keyword judge, split like
`derta_refusal_position.py` into refusals at the start and inside an answer. Models come from disk; answers are
kept per (arm, seed), so a rerun only generates what is missing.

    python benchmarks/derta_scary_more.py --arms ARM_A ARM_B --seeds 0 1 2 --baseline ARM_A \\
        --export benchmarks/results/derta_scary_more.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safekeel.data.build_cli import load_prompt_set
from safekeel.eval.compare import diff_text, replicate_baseline
from safekeel.eval.generate import GenerationRequest, generate
from safekeel.io import read_jsonl_rows, write_jsonl
from safekeel.judges.keyword import is_refusal
from safekeel.stats import clustered_wilson, paired_difference

sys.path.insert(0, str(Path(__file__).parent))  # the sibling modules, when loaded by path as well
from derta_refusal_position import refused_at_start  # noqa: E402
from derta_tables import export  # noqa: E402

SET = "benign-scary-more"


def answers(out: Path, arm: str, seed: int, split: str, model_path: str, max_new_tokens: int) -> list[dict]:
    """The (arm, seed) rows: one per prompt of SET's split, generated once and kept on disk."""
    path = out / f"eval-scary-more-{split}" / arm / f"seed-{seed}.jsonl"
    if path.exists():
        return list(read_jsonl_rows(path))
    from safekeel.models import load_model

    prompts = load_prompt_set(SET, split)
    model, tok = load_model(model_path)
    texts = generate(model, tok, [GenerationRequest(messages=[{"role": "user", "content": p["prompt"]}])
                                  for p in prompts], max_new_tokens=max_new_tokens, batch_size=16)
    rows = []
    for p, a in zip(prompts, texts, strict=True):
        refused = is_refusal(a)
        start = refused and refused_at_start(a)
        rows.append({"id": p["id"], "category": p.get("category"), "prompt": p["prompt"], "response": a,
                     "refusal": refused, "start": start, "inside": refused and not start})
    write_jsonl(path, rows)
    return rows


def model_path(out: Path, arm: str, seed: int, base: str) -> str:
    return base if arm == "base" else str(out / "train" / arm / f"seed-{seed}" / "model")


def rate_cell(flags: list[bool], ids: list[str]) -> str:
    lo, hi = clustered_wilson(flags, ids)
    return f"{100 * sum(flags) / len(flags):.0f}% [{100 * lo:.0f}, {100 * hi:.0f}]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/derta_recipe")
    ap.add_argument("--model", default="smollm2-135m", help="the base model (arm 'base')")
    ap.add_argument("--split", choices=["train", "val", "test"], default="test",
                    help="train: the prompts whose base-model answers the sm arms trained on (teacher-forced)")
    ap.add_argument("--arms", nargs="+", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--baseline", default=None, help="also each arm's paired difference from this arm")
    ap.add_argument("--max-new-tokens", type=int, default=48, help="derta_recipe.py's budget")
    ap.add_argument("--export", default=None)
    args = ap.parse_args()
    out = Path(args.out)
    rows: dict[str, dict[int, list[dict]]] = {}
    for arm in args.arms:
        for seed in ([0] if arm == "base" else args.seeds):
            mp = model_path(out, arm, seed, args.model)
            kept = out / f"eval-scary-more-{args.split}" / arm / f"seed-{seed}.jsonl"
            if not kept.exists() and arm != "base" and not Path(mp).exists():
                print(f"{arm} seed {seed}: no model on disk, skipped", file=sys.stderr)
                continue
            rows.setdefault(arm, {})[seed] = answers(out, arm, seed, args.split, mp, args.max_new_tokens)
    lines = ["| arm | seeds | n | refused | at the start | inside the answer |", "|---|---|---|---|---|---|"]
    for arm, by_seed in rows.items():
        pooled = [r for rs in by_seed.values() for r in rs]
        ids = [r["id"] for r in pooled]
        lines.append(f"| {arm} | {', '.join(map(str, by_seed))} | {len(pooled)} | "
                     + " | ".join(rate_cell([r[f] for r in pooled], ids) for f in ("refusal", "start", "inside"))
                     + " |")
    text = "\n".join(lines) + (f"\n\n({SET} {args.split} prompts; keyword refusal split by the word position of the "
                               "first refusal phrase; pooled over seeds, 95% Wilson CI clustered by prompt)")
    diffs = {}
    if args.baseline and args.baseline in rows:
        def flags(arm: str, f: str) -> dict[tuple, bool]:
            return {(r["id"], s, SET): bool(r[f]) for s, rs in rows[arm].items() for r in rs}

        lines = [f"| arm - {args.baseline} | refused | at the start | inside the answer |", "|---|---|---|---|"]
        for arm in (a for a in rows if a != args.baseline):
            cells = []
            for f in ("refusal", "start", "inside"):
                b = flags(arm, f)
                d = paired_difference(replicate_baseline(flags(args.baseline, f), {k[1] for k in b}), b)
                diffs[f"{arm}:{f}"] = d
                cells.append("-" if d["diff"] is None else diff_text(d, digits=0, p_digits=2))
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        text += "\n\n" + "\n".join(lines) + ("\n\n(difference in points on the same prompts and seeds (a one-seed "
                                            "baseline stands beside every seed) [95% CI resampling prompts], exact "
                                            "sign-flip p over prompts)")
    print(text)
    if args.export:
        export(args.export, text, diffs=diffs,
               counts={a: {s: {f: sum(r[f] for r in rs) for f in ("refusal", "start", "inside")} | {"n": len(rs)}
                           for s, rs in by.items()} for a, by in rows.items()})


if __name__ == "__main__":
    main()
