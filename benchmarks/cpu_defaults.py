"""Which CPU defaults make the grids affordable: generation batch size and bf16, training under bf16 autocast.

Side by side in one run on the default model:
- generation through safekeel's own `generate` (greedy, EOS on, as evaluation runs it) at batch 16 (the old
  default) and 64, fp32, and at batch 64 under bf16 autocast: new tokens/s and how many answers are identical to
  batch 16's (a default may only change speed, never the answers);
- one full fine-tuning step (forward, backward, AdamW) on batch 8 x 256 tokens, fp32 vs bf16 autocast: tokens/s.

    python benchmarks/cpu_defaults.py [--prompts 64] [--max-new-tokens 64] [--steps 3]
Writes benchmarks/results/cpu_defaults.json.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time
from pathlib import Path

import torch

from safekeel.data.bundled import load_behavior_set
from safekeel.data.splits import select
from safekeel.eval.generate import GenerationRequest, generate
from safekeel.io import write_json
from safekeel.models import load_model


def gen(model, tok, reqs, batch: int, n_tokens: int, bf16: bool) -> tuple[list[str], float, int]:
    ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    t0 = time.perf_counter()
    with ctx:
        out = generate(model, tok, reqs, max_new_tokens=n_tokens, batch_size=batch)
    secs = time.perf_counter() - t0
    return out, secs, sum(len(tok(a, add_special_tokens=False)["input_ids"]) for a in out)


def train_tokens_per_s(model, tok, texts: list[str], steps: int, bf16: bool) -> float:
    enc = tok(texts[:8], return_tensors="pt", padding="max_length", truncation=True, max_length=256)
    labels = enc["input_ids"].clone()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    model.train()
    times = []
    for i in range(steps + 1):  # the first step warms up
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if i:
            times.append(time.perf_counter() - t0)
    model.eval()
    return 8 * 256 / (sum(times) / len(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()
    model, tok = load_model(args.model, dtype="float32")
    prompts = [b.prompt for b in select(load_behavior_set("harmbench"), "test")]
    prompts += [b.prompt for b in select(load_behavior_set("benign"), "test")]
    reqs = [GenerationRequest([{"role": "user", "content": p}]) for p in prompts[:args.prompts]]
    res: dict = {"measured": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
                 f"{torch.get_num_threads()} torch threads, no GPU", "command": "python benchmarks/cpu_defaults.py",
                 "prompts": len(reqs), "max_new_tokens": args.max_new_tokens, "generation": {}, "training": {}}
    ref = None
    for name, batch, bf16 in (("fp32 batch 16", 16, False), ("fp32 batch 64", 64, False),
                              ("bf16 batch 64", 64, True)):
        out, secs, n = gen(model, tok, reqs, batch, args.max_new_tokens, bf16)
        ref = ref or out
        res["generation"][name] = {"tokens_per_s": round(n / secs, 1), "seconds": round(secs, 1),
                                   "identical_to_batch16": sum(a == b for a, b in zip(out, ref, strict=True))}
        print(name, res["generation"][name], flush=True)
    texts = [p + " " + p for p in prompts] * 2
    for name, bf16 in (("fp32", False), ("bf16 autocast", True)):
        res["training"][name] = {"tokens_per_s": round(train_tokens_per_s(model, tok, texts, args.steps, bf16), 1)}
        print(name, res["training"][name], flush=True)
    write_json(Path(__file__).parent / "results" / "cpu_defaults.json", res)


if __name__ == "__main__":
    main()
