"""PAIR one behavior at a time vs behaviors in lockstep (`pair_attack_many`), on the default model: side by side, one
run, the same behaviors, attacker, target and judge.

One iteration per behavior (`--iterations 1`), so both modes do the same work: every stream's attacker call, the
target's answers and the judge's scores; what differs is how many of them share a forward pass. Attacker calls
(re-asks of unformatted replies included) are counted, as they can differ between the modes (sampling).

    python benchmarks/pair_lockstep.py [--n 8] [--streams 3] [--iterations 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from safekeel.attacks.pair import PairConfig, hf_chat, judge_scorer, pair_attack_many
from safekeel.eval.generate import GenerationRequest, generate
from safekeel.io import write_json
from safekeel.judges.registry import make_judge
from safekeel.models import load_model

sys.path.insert(0, str(Path(__file__).parent))
from derta_sets import wide_behaviors  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m", help="target (and attacker) model")
    ap.add_argument("--n", type=int, default=8, help="behaviors (the first N of the wide held-out set)")
    ap.add_argument("--streams", type=int, default=3)
    ap.add_argument("--iterations", type=int, default=1)
    ap.add_argument("--attacker-tokens", type=int, default=256)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pair_lockstep.json"))
    args = ap.parse_args()
    model, tok = load_model(args.model)
    behaviors = wide_behaviors(args.n)
    attacker = hf_chat(model, tok, max_new_tokens=args.attacker_tokens, seed=0)
    scorer = judge_scorer(make_judge("harm-clf", tokenizer=tok))
    cfg = PairConfig(n_streams=args.streams, n_iterations=args.iterations)

    def target(prompts: list[str]) -> list[str]:
        reqs = [GenerationRequest(messages=[{"role": "user", "content": p}]) for p in prompts]
        return generate(model, tok, reqs, max_new_tokens=64, batch_size=8)

    scorer("warm-up", "warm-up")
    seconds, calls = {}, {}
    for name, group in (("one at a time", 1), (f"lockstep {args.n}", args.n)):
        t0 = time.perf_counter()
        aps = [ap for i in range(0, args.n, group)
               for ap in pair_attack_many(behaviors[i:i + group], attacker, target, scorer, cfg)]
        seconds[name] = time.perf_counter() - t0
        calls[name] = sum(a.meta["attacker_calls"] for a in aps)
    result = {"machine": f"{platform.machine()}, 2-core CPU, no GPU", "measured": time.strftime("%Y-%m-%d"),
              "command": "python benchmarks/pair_lockstep.py " + " ".join(sys.argv[1:]),
              "behaviors": args.n, "streams": args.streams, "iterations": args.iterations,
              "attacker_tokens": args.attacker_tokens,
              "seconds_per_behavior": {k: round(v / args.n, 1) for k, v in seconds.items()},
              "attacker_calls": calls,
              "speedup": round(seconds["one at a time"] / seconds[f"lockstep {args.n}"], 2)}
    write_json(Path(args.out), result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
