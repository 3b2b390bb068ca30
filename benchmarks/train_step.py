"""DeRTa training-step overhead and collator throughput, measured side by side in one run.

1. DeRTa step vs plain SFT step on identical token batches: `DertaTrainer.training_step` (one CE over all targets
   plus the MLE / RTO running sums from the `kinds` mask) vs a stock `transformers.Trainer.training_step` (the
   model's own loss from `labels`). Same model weights, same padded tensors, alternating order, median ratio.
2. Non-pad tokens/s of the packing collator (`DertaCollator`, padding-free) vs a pad-to-longest collator, with
   forward + backward on the same examples in the same batches.

    python benchmarks/train_step.py [--model smollm2-135m] [--batches 6] [--batch-size 4] [--max-length 256]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time

import torch
from transformers import Trainer, TrainingArguments

from safekeel.data.build_cli import load_triple_set
from safekeel.data.derta import build_examples
from safekeel.data.tokenize import tokenize_rows
from safekeel.models import load_model
from safekeel.train.collator import DertaCollator, PadToLongestCollator
from safekeel.train.trainer import DertaTrainer


def batches_of(features, batch_size, n, seed=0):
    rng = random.Random(seed)
    return [rng.sample(features, batch_size) for _ in range(n)]


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batches", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, tok = load_model(args.model, dtype="float32")
    model.config.use_cache = False
    model.train()
    rows = build_examples(load_triple_set("uncensorbench", "train"), [], "derta", tokenizer=tok, seed=0)
    feats = [f for f in tokenize_rows(tok, rows) if len(f["input_ids"]) <= args.max_length]  # whole examples only
    for i, f in enumerate(feats):
        f["idx"] = i
    targs = TrainingArguments(output_dir=tempfile.mkdtemp(prefix="train_step."), report_to="none", per_device_train_batch_size=args.batch_size,
                              use_cpu=not torch.cuda.is_available(), disable_tqdm=True)
    derta = DertaTrainer(model=model, args=targs)
    plain = Trainer(model=model, args=targs)
    for t in (derta, plain):
        t.current_gradient_accumulation_steps = 1  # set by train() normally; we call training_step directly
    padded = DertaCollator(tok.pad_token_id, pack=False)
    batches = batches_of(feats, args.batch_size, args.batches)

    # 1. step overhead on identical padded tensors (warm-up first)
    derta.training_step(model, padded(batches[0]))
    ratios, t_d, t_p = [], [], []
    for i, b in enumerate(batches):
        with_kinds = padded(b)
        without = {k: v for k, v in with_kinds.items() if k != "kinds"}
        model.zero_grad(set_to_none=True)
        order = [("d", with_kinds), ("p", without)] if i % 2 == 0 else [("p", without), ("d", with_kinds)]
        times = {}
        for name, batch in order:
            trainer = derta if name == "d" else plain
            times[name] = timed(lambda t=trainer, x=batch: t.training_step(model, dict(x)))
            model.zero_grad(set_to_none=True)
        t_d.append(times["d"])
        t_p.append(times["p"])
        ratios.append(times["d"] / times["p"])
    tokens = sum(int(padded(b)["attention_mask"].sum()) for b in batches)
    print(f"step overhead: {len(batches)} batches of {args.batch_size} examples <= {args.max_length} tokens ("
          f"{tokens} non-pad tokens in all)")
    print(f"  plain SFT step  median {statistics.median(t_p):.3f} s")
    print(f"  DeRTa step      median {statistics.median(t_d):.3f} s")
    print(f"  DeRTa / plain   median ratio {statistics.median(ratios):.3f}, total-time ratio {sum(t_d) / sum(t_p):.3f}")

    # 2. collator throughput: non-pad tokens per second of forward + backward
    packer, padder = DertaCollator(tok.pad_token_id, pack=True), PadToLongestCollator(tok.pad_token_id)
    res = {"packed": [0.0, 0, 0], "pad-to-longest": [0.0, 0, 0]}
    for i, b in enumerate(batches):
        order = [("packed", packer), ("pad-to-longest", padder)]
        for name, col in (order if i % 2 == 0 else order[::-1]):
            batch = col(b)
            batch.pop("kinds", None)
            real = sum(len(f["input_ids"]) for f in b)
            res[name][0] += timed(lambda x=batch: model(**x).loss.backward())
            res[name][1] += real
            res[name][2] += batch["input_ids"].numel()
            model.zero_grad(set_to_none=True)
    for name, (secs, real, total) in res.items():
        print(f"  {name:<15} {real / secs:8.1f} non-pad tokens/s  (pad fraction {1 - real / total:.1%})")
    print(f"  packed / pad-to-longest tokens/s ratio {(res['packed'][1] / res['packed'][0]) / (res['pad-to-longest'][1] / res['pad-to-longest'][0]):.3f}")


if __name__ == "__main__":
    main()
