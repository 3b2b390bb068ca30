"""On-policy contrast for RTO's refusals inside benign answers: where a DeRTa model wrote its refusal token into a
benign answer, the base model's own way on from that very text, as helpful rows with the model's text untrained.

Why: RTO trains the refusal token after any harmful text, and a small model also writes it after benign text
("To kill the power to a light switch ... 1. **Heat Sorry, I cannot ..."). The helpful rows teach answers the base
model wrote (teacher-forced), and the refusal-token unlikelihood (`ul`) lowers p(refusal token) along them; neither
ever shows the trained model's own half-written answer at the point where it turns. Here the DeRTa arm's models answer
the train prompts of benign, benign-but-scary and benign-scary-more (greedy, plus `--samples` sampled answers
each); every answer with a keyword refusal after word 0 is cut just before the refusal phrase, and the base model
continues that cut text (greedy, as a prefill). A row keeps the cut text as `masked_prefix` (context, not a target)
and trains the continuation, so with `ul` the refusal token is pushed down at exactly the position the model wrote
it. Continuations that refuse or are shorter than 20 characters are dropped. Train prompts only: no val or test
prompt is asked. Answers are kept per seed (in `--out`), so a rerun only generates what is missing; the rows and
their summary go into this repository (`benchmarks/data/`, benign text only), because the models that wrote them
are gone with their session and retraining them costs an hour before any arm that uses the rows can train.

    python benchmarks/derta_contrast.py --arm derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1-sm2 --seeds 0 1  # the oc2 data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from safekeel.data.build_cli import load_prompt_set
from safekeel.eval.generate import GenerationRequest, generate
from safekeel.io import read_jsonl_rows, write_json, write_jsonl
from safekeel.judges.keyword import first_refusal_char, is_refusal

sys.path.insert(0, str(Path(__file__).parent))  # the sibling module, when loaded by path as well
from derta_refusal_position import refused_at_start  # noqa: E402

PROMPTS = "benign,benign-scary,benign-scary-more"
CONTRAST_ROWS = Path(__file__).parent / "data" / "derta_contrast.jsonl"


def model_answers(out: Path, arm: str, seed: int, prompts: list[dict], samples: int, temperature: float,
                  max_new_tokens: int) -> list[dict]:
    """The (arm, seed) model's answers to `prompts`: greedy (sample 0) and `samples` sampled ones; kept on disk."""
    path = out / "contrast" / arm / f"seed-{seed}.jsonl"
    if path.exists():
        return list(read_jsonl_rows(path))
    from safekeel.models import load_model

    model, tok = load_model(str(out / "train" / arm / f"seed-{seed}" / "model"))
    reqs = [GenerationRequest(messages=[{"role": "user", "content": p["prompt"]}]) for p in prompts]
    rows = []
    for sample in range(samples + 1):
        texts = generate(model, tok, reqs, max_new_tokens=max_new_tokens, batch_size=16, do_sample=sample > 0,
                         temperature=temperature, seed=1000 * seed + sample)
        rows += [{"id": p["id"], "prompt": p["prompt"], "seed": seed, "sample": sample, "response": a}
                 for p, a in zip(prompts, texts, strict=True)]
    write_jsonl(path, rows)
    return rows


def turning_point(response: str) -> tuple[str, str] | None:
    """(the answer up to its first refusal phrase, the whitespace between the two) when that phrase is inside the
    answer, else None (no refusal, or a refusal at the start). The whitespace goes before the continuation, so the
    first trained token is the one the model replaced by its refusal (" Sorry" -> " a")."""
    if not is_refusal(response) or refused_at_start(response):
        return None
    head = response[: first_refusal_char(response)]
    cut = head.rstrip()
    return (cut, head[len(cut):]) if cut.strip() else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/derta_recipe")
    ap.add_argument("--arm", required=True, help="the DeRTa arm whose models' answers are cut")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--model", default="smollm2-135m", help="the base model, which continues the cut answers")
    ap.add_argument("--samples", type=int, default=2, help="sampled answers per prompt and seed, besides greedy")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=64, help="tokens per model answer")
    ap.add_argument("--continue-tokens", type=int, default=128, help="tokens the base model adds to a cut answer")
    ap.add_argument("--rows", default=str(CONTRAST_ROWS), help="where the contrast rows go (derta_recipe.py reads "
                    "them there)")
    args = ap.parse_args()
    out = Path(args.out)
    prompts = load_prompt_set(PROMPTS, "train")
    cuts: dict[tuple[str, str, str], dict] = {}  # (prompt id, cut text, whitespace) -> first answer cut there
    n_answers = 0
    for seed in args.seeds:
        for r in model_answers(out, args.arm, seed, prompts, args.samples, args.temperature, args.max_new_tokens):
            n_answers += 1
            turn = turning_point(r["response"])
            if turn is not None:
                cuts.setdefault((r["id"], *turn), r)
    print(f"{len(cuts)} distinct turning points in {n_answers} answers ({len(prompts)} train prompts)",
          file=sys.stderr)
    from safekeel.models import load_model

    model, tok = load_model(args.model)
    items = list(cuts.items())
    # generate() strips what it returns, so the whitespace the model wrote before its refusal is put back by hand
    # (where it wrote none, a leading space of the continuation is lost: a fused cut such as "(Sorry")
    goes_on = generate(model, tok, [GenerationRequest(messages=[{"role": "user", "content": r["prompt"]}],
                                                      prefill=cut + space) for (_, cut, space), r in items],
                       max_new_tokens=args.continue_tokens, batch_size=16)
    rows, dropped = [], 0
    for ((pid, cut, space), r), more in zip(items, goes_on, strict=True):
        if len(more.strip()) < 20 or is_refusal(more):
            dropped += 1
            continue
        rows.append({"id": f"{pid}:oc{r['seed']}.{r['sample']}", "source": f"contrast:{args.arm}",
                     "messages": [{"role": "user", "content": r["prompt"]},
                                  {"role": "assistant", "content": cut + space + more}], "masked_prefix": cut})
    path = Path(args.rows)
    write_jsonl(path, rows)
    write_json(path.with_suffix(".summary.json"), {
        "arm": args.arm, "seeds": args.seeds, "samples": args.samples, "temperature": args.temperature,
        "max_new_tokens": args.max_new_tokens, "continue_tokens": args.continue_tokens, "answers": n_answers,
        "prompts": len(prompts), "turning_points": len(cuts), "dropped": dropped, "rows": len(rows),
        "prompts_with_a_row": len({r["id"].rsplit(":oc", 1)[0] for r in rows})})
    print(f"{len(rows)} contrast rows ({dropped} continuations dropped) -> {path}")


if __name__ == "__main__":
    main()
