"""AutoDAN's fitness (the opener's NLL after each candidate prompt), one prompt per forward pass vs batched, on the
default model: side by side, one run, the same prompts, and the largest difference between the two losses.

The candidates are the DAN prototype and mutated copies of it (what one generation scores), each with a held-out
behavior; at the paper's population of 256 x 100 iterations this call is nearly all of the search's time.

    python benchmarks/autodan_fitness.py [--population 8] [--batch-size 8] [--repeats 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

from safekeel.attacks.autodan import mutate, opener_losses, prompt_with_question, prototype
from safekeel.attacks.base import task_phrase
from safekeel.data.bundled import jailbreak_templates, load_behavior_set
from safekeel.data.splits import select
from safekeel.io import write_json
from safekeel.models import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--population", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="timed passes of each mode")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "autodan_fitness.json"))
    args = ap.parse_args()
    model, tok = load_model(args.model)
    behavior = select(load_behavior_set("harmbench"), "test")[0]
    rng = random.Random(0)
    proto = prototype(jailbreak_templates(), 2000)
    prompts = [prompt_with_question(proto if i == 0 else mutate(proto, rng, 0.05), behavior.prompt)
               for i in range(args.population)]
    opener = f"Sure, here is how to {task_phrase(behavior.prompt)}"
    seconds, losses = {}, {}
    for name, bs in (("one at a time", 1), (f"batch {args.batch_size}", args.batch_size)):
        opener_losses(model, tok, prompts[:1], opener, bs)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            losses[name] = opener_losses(model, tok, prompts, opener, bs)
        seconds[name] = (time.perf_counter() - t0) / args.repeats
    a, b = losses.values()
    result = {"machine": f"{platform.machine()}, 2-core CPU, no GPU", "measured": time.strftime("%Y-%m-%d"),
              "command": "python benchmarks/autodan_fitness.py " + " ".join(sys.argv[1:]),
              "population": args.population, "prompt_tokens": len(tok(prompts[0])["input_ids"]),
              "seconds_per_generation": {k: round(v, 2) for k, v in seconds.items()},
              "speedup": round(seconds["one at a time"] / seconds[f"batch {args.batch_size}"], 2),
              "max_loss_difference": max(abs(x - y) for x, y in zip(a, b, strict=True))}
    write_json(Path(args.out), result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
