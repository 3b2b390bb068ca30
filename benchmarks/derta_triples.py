"""More DeRTa triples from train splits only: (harmful prompt, a real harmful answer, a refusal in the model's voice).

Only uncensorbench ships harmful answers (84 train-split triples). The other sources ship prompts: AdvBench,
Do-Not-Answer, HarmBench and StrongREJECT, whose train-split requests (`safekeel.data.splits.select(..., "train")`,
which also drops near-duplicates of any test request) are answered twice:
- the harmful answer: the base model's own greedy answer (`attacks/own_prefix.own_answers`, cached by weights hash),
  kept only where harm-clf calls it unsafe (a refusal or a vague answer never poses as a harmful answer); with
  `--samples N`, prompts whose greedy answer was not harmful get up to N sampled answers (seeded), the first unsafe
  one kept;
- the refusal: the refusal-SFT model's own answer to the same prompt (`derta_recipe.py`'s `vanilla-r1-lr10`, seed
  0), kept only where the keyword judge reads it as a refusal. Its refusals start the way the model's refusals start
  and vary with the prompt, where a template would teach one sentence.

Writes runs/derta_recipe/data/harvest/triples.jsonl (SafetyTriple rows, `source` = the behavior set) and
stats.json (asked / harmful kept / refusal kept per source); `derta_recipe.py` arms with `"more": True` train on
uncensorbench's train triples plus these.

    python benchmarks/derta_triples.py --samples 2 --export benchmarks/results/derta_triples.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from safekeel.attacks.own_prefix import own_answers, with_own_targets
from safekeel.data.bundled import load_behavior_set
from safekeel.data.records import SafetyTriple
from safekeel.data.splits import select, split_of
from safekeel.io import write_json, write_jsonl
from safekeel.judges.keyword import is_refusal

SOURCES = ("advbench", "donotanswer", "harmbench", "strongreject")


def harmful_answers(out: Path, base: str, max_new_tokens: int, samples: int = 0,
                    temperature: float = 0.8) -> tuple[list, dict, dict[str, int]]:
    """The base model's half of the harvest: (behaviors it answered harmfully, with that answer as target; counts;
    harmful answers found by sampling, per source). Needs no refuser, so `--base-only` runs it while the refuser
    trains; its answers are cached in `out`, and the full harvest then finds them there."""
    from safekeel.judges.harm_clf import HarmClfJudge
    from safekeel.models import load_model

    behaviors = [b for s in SOURCES for b in select(load_behavior_set(s), "train")]
    model, tok = load_model(base)
    judge = HarmClfJudge()
    kept, counts = with_own_targets(behaviors, own_answers(model, tok, behaviors, out, max_new_tokens), judge)
    sampled: dict[str, int] = {}
    for seed in range(1, samples + 1):  # prompts whose answers so far were not harmful: one more sampled answer
        left = [b for b in behaviors if b.id not in {k.id for k in kept}]
        more, _ = with_own_targets(left, own_answers(model, tok, left, out, max_new_tokens, sample_seed=seed,
                                                     temperature=temperature), judge)
        kept += more
        for b in more:
            sampled[b.source] = sampled.get(b.source, 0) + 1
    return kept, counts, sampled


def harvest(out: Path, base: str, refuser: str, max_new_tokens: int, samples: int = 0,
            temperature: float = 0.8) -> dict:
    from safekeel.models import load_model

    kept, counts, sampled = harmful_answers(out, base, max_new_tokens, samples, temperature)
    model, tok = load_model(refuser)
    refusals = own_answers(model, tok, kept, out, max_new_tokens)
    triples = [SafetyTriple(prompt=b.prompt, harmful_response=b.target, safe_response=refusals[b.id],
                            category=b.category, source=b.source, id=f"harvest-{b.id}")
               for b in kept if is_refusal(refusals[b.id])]
    assert all(split_of(t.prompt) != "test" for t in triples)  # select() drew train requests only
    per = {s: {"asked": counts["by_source"].get(s, {}).get("asked", 0),
               "harmful": counts["by_source"].get(s, {}).get("kept", 0) + sampled.get(s, 0),
               "harmful_sampled": sampled.get(s, 0),
               "triples": sum(t.source == s for t in triples)} for s in SOURCES}
    write_jsonl(out / "triples.jsonl", [t.to_dict() for t in triples])
    stats = {"base": base, "refuser": refuser, "max_new_tokens": max_new_tokens, "samples": samples,
             "temperature": temperature if samples else None, "triples": len(triples),
             "by_source": per}
    write_json(out / "stats.json", stats)
    return stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/derta_recipe/data/harvest")
    ap.add_argument("--base", default="smollm2-135m", help="the model whose compliant answers become harmful answers")
    ap.add_argument("--refuser", default="runs/derta_recipe/train/vanilla-r1-lr10/seed-0/model",
                    help="the model whose refusals become the safe responses")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--samples", type=int, default=0, help="sampled answers tried, one after another, for prompts "
                                                           "whose greedy answer was not harmful")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--export", help="also write the counts here with date and command (benchmarks/results/...)")
    ap.add_argument("--base-only", action="store_true", help="only the base model's harmful answers (cached in "
                    "--out), e.g. while the refuser trains (benchmarks/derta_rebuild.sh)")
    args = ap.parse_args()
    if args.base_only:
        kept, _, _ = harmful_answers(Path(args.out), args.base, args.max_new_tokens, args.samples, args.temperature)
        return print(f"{len(kept)} harmful answers cached in {args.out}")
    stats = harvest(Path(args.out), args.base, args.refuser, args.max_new_tokens, args.samples, args.temperature)
    if args.export:
        command = "python benchmarks/derta_triples.py" + (f" --samples {args.samples}" if args.samples else "")
        write_json(Path(args.export), {"measured": time.strftime("%Y-%m-%d"), "command": command, **stats})
    print(json.dumps(stats, indent=1))


if __name__ == "__main__":
    main()
