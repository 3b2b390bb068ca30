"""Batched (left-padded) vs sequential per-prompt generation, tokens/s, on the default model — side by side, one run.

Both use the same prompts and greedy decoding with a fixed number of new tokens (EOS disabled), so the token counts
match exactly and the ratio is pure throughput.

    python benchmarks/generation.py [--model smollm2-135m] [--prompts 16] [--batch-size 16] [--max-new-tokens 64]
"""

from __future__ import annotations

import argparse
import time

import torch

from safekeel.data.bundled import load_behavior_set
from safekeel.eval.generate import GenerationRequest, render
from safekeel.models import load_model


@torch.no_grad()
def run(model, tok, requests, batch_size: int, max_new_tokens: int) -> tuple[int, float]:
    """(new tokens, seconds) generating `requests` in batches of `batch_size` (1 = sequential)."""
    texts = [render(tok, r) for r in requests]
    tok.padding_side = "left"
    new, t0 = 0, time.perf_counter()
    for i in range(0, len(texts), batch_size):
        enc = tok(texts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**enc, max_new_tokens=max_new_tokens, min_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tok.pad_token_id)
        new += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
    return new, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    model, tok = load_model(args.model)
    prompts = [b.prompt for b in load_behavior_set("harmbench")[: args.prompts]]
    reqs = [GenerationRequest(messages=[{"role": "user", "content": p}]) for p in prompts]
    run(model, tok, reqs[:2], 2, 4)  # warm-up
    n_seq, t_seq = run(model, tok, reqs, 1, args.max_new_tokens)
    n_bat, t_bat = run(model, tok, reqs, args.batch_size, args.max_new_tokens)
    print(f"model {args.model}, {len(reqs)} prompts x {args.max_new_tokens} new tokens, torch threads "
          f"{torch.get_num_threads()}")
    print(f"{'mode':28s} {'tokens':>7s} {'seconds':>8s} {'tokens/s':>9s}")
    print(f"{'sequential (batch 1)':28s} {n_seq:7d} {t_seq:8.1f} {n_seq / t_seq:9.1f}")
    print(f"{f'batched (batch {args.batch_size})':28s} {n_bat:7d} {t_bat:8.1f} {n_bat / t_bat:9.1f}")
    print(f"speed-up batched / sequential: {(n_bat / t_bat) / (n_seq / t_seq):.1f}x")


if __name__ == "__main__":
    main()
