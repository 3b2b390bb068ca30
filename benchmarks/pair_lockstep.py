"""PAIR's attacker on the CPU: behaviors one at a time vs in lockstep (`pair_attack_many`), and (`--stop`) replies
that run to the token budget vs replies that stop where their JSON closes, side by side in one run on the default
model, with the same behaviors, attacker, target and judge.

One iteration per behavior (`--iterations 1`), so every mode does the same work: every stream's attacker call, the
target's answers and the judge's scores; what differs is how many of them share a forward pass and how long the
attacker's batch runs. Attacker calls (re-asks of unformatted replies included) and unparsed streams are counted,
as they can differ between the modes (sampling).

    python benchmarks/pair_lockstep.py [--n 8] [--streams 3] [--iterations 1] [--out FILE]
    python benchmarks/pair_lockstep.py --stop --out benchmarks/results/pair_stop.json
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
    ap.add_argument("--stop", action="store_true", help="compare lockstep modes: no stop at the JSON's close, the "
                    "stop, and the stop with --short-tokens")
    ap.add_argument("--short-tokens", type=int, default=160)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "pair_lockstep.json"))
    args = ap.parse_args()
    model, tok = load_model(args.model)
    behaviors = wide_behaviors(args.n)
    scorer = judge_scorer(make_judge("harm-clf", tokenizer=tok))
    cfg = PairConfig(n_streams=args.streams, n_iterations=args.iterations)

    def target(prompts: list[str]) -> list[str]:
        reqs = [GenerationRequest(messages=[{"role": "user", "content": p}]) for p in prompts]
        return generate(model, tok, reqs, max_new_tokens=64, batch_size=8)

    if args.stop:  # (name, behaviors per lockstep group, attacker tokens, stop at close)
        modes = [("no stop", args.n, args.attacker_tokens, False), ("stop at }", args.n, args.attacker_tokens, True),
                 (f"stop at }}, {args.short_tokens} tokens", args.n, args.short_tokens, True)]
    else:
        modes = [("one at a time", 1, args.attacker_tokens, True),
                 (f"lockstep {args.n}", args.n, args.attacker_tokens, True)]
    scorer("warm-up", "warm-up")
    seconds, calls, unparsed = {}, {}, {}
    for name, group, tokens, stop in modes:
        attacker = hf_chat(model, tok, max_new_tokens=tokens, seed=0, stop_at_close=stop)
        t0 = time.perf_counter()
        aps = [ap for i in range(0, args.n, group)
               for ap in pair_attack_many(behaviors[i:i + group], attacker, target, scorer, cfg)]
        seconds[name] = time.perf_counter() - t0
        calls[name] = sum(a.meta["attacker_calls"] for a in aps)
        unparsed[name] = sum(a.meta["unparsed"] for a in aps)
        print(name, round(seconds[name], 1), calls[name], unparsed[name], flush=True)
    first = modes[0][0]
    result = {"machine": f"{platform.machine()}, 2-core CPU, no GPU", "measured": time.strftime("%Y-%m-%d"),
              "command": "python benchmarks/pair_lockstep.py " + " ".join(sys.argv[1:]),
              "behaviors": args.n, "streams": args.streams, "iterations": args.iterations,
              "attacker_tokens": {m[0]: m[2] for m in modes},
              "seconds_per_behavior": {k: round(v / args.n, 1) for k, v in seconds.items()},
              "attacker_calls": calls, "unparsed_streams": unparsed,
              "speedup_vs_" + first.replace(" ", "_"): {k: round(seconds[first] / v, 2) for k, v in seconds.items()}}
    write_json(Path(args.out), result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
