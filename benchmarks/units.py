"""Unit scoring and masked fine-tuning overhead, measured side by side on the same data (issue 4).

  ssah / wanda scoring  vs  a plain forward pass of the full model over the same batches (target: ssah <= 1.5x)
  snip scoring          vs  plain forward + backward over the same batches
  masked AdamW step (ESU + top-CU frozen: gradient hooks + post-step restore)  vs  the same step unmasked
                                                                                  (target: <= 1.05x)
Conditions are interleaved round by round and the median per condition is reported, so drift in machine load hits
both sides alike.

    python benchmarks/units.py [--model smollm2-135m] [--examples 32] [--rounds 3] [--steps 6]
"""

from __future__ import annotations

import argparse
import statistics
import time


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--examples", type=int, default=32, help="calibration examples per timing")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snip-examples", type=int, default=16)
    ap.add_argument("--steps", type=int, default=6, help="training steps per condition (after 1 warm-up each)")
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--train-length", type=int, default=128)
    args = ap.parse_args()

    import torch

    from safekeel.units import calibration as cal
    from safekeel.units.discover import find_units
    from safekeel.units.freeze import UnitFreezer
    from safekeel.units.runs import load_for_units
    from safekeel.units.scores import score
    from safekeel.units.unitmap import classify

    torch.manual_seed(0)
    model, tok = load_for_units(args.model)
    pairs = cal.safety_pairs("uncensorbench", args.examples)
    batches = cal.make_batches(tok, pairs, args.batch_size, args.max_length)
    n_tokens = int(sum(int(b.attention_mask.sum()) for b in batches))
    find_units(model)

    @torch.no_grad()
    def plain_forward():
        for b in batches:
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, use_cache=False)

    times = {"plain forward": [], "ssah": [], "wanda": []}
    plain_forward()  # warm-up
    for _ in range(args.rounds):
        times["plain forward"].append(_timed(plain_forward))
        times["ssah"].append(_timed(lambda: score(model, batches, "ssah")))
        times["wanda"].append(_timed(lambda: score(model, batches, "wanda")))
    med = {k: statistics.median(v) for k, v in times.items()}
    print("scoring:", {k: [round(x, 2) for x in v] for k, v in times.items()}, flush=True)

    snip_batches = cal.make_batches(tok, pairs[:args.snip_examples], args.batch_size, args.max_length)

    def fwd_bwd():
        for b in snip_batches:
            model.zero_grad(set_to_none=True)
            model(input_ids=b.input_ids, attention_mask=b.attention_mask, labels=b.labels, use_cache=False).loss.backward()
        model.zero_grad(set_to_none=True)

    sn = {"forward+backward": [], "snip": []}
    for _ in range(max(1, args.rounds - 1)):
        sn["forward+backward"].append(_timed(fwd_bwd))
        sn["snip"].append(_timed(lambda: score(model, snip_batches, "snip")))
    med.update({k: statistics.median(v) for k, v in sn.items()})
    print("snip:", {k: [round(x, 2) for x in v] for k, v in sn.items()}, flush=True)

    # masked vs unmasked AdamW step on a copy of the scoring model (weights change; timing is what matters)
    g = torch.Generator().manual_seed(0)
    units = find_units(model)
    um = classify({u.key: torch.rand(u.n_units, generator=g) for u in units},
                  {u.key: torch.rand(u.n_units, generator=g) for u in units})
    train_b = cal.make_batches(tok, pairs[:args.train_batch], args.train_batch, args.train_length)[0]
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.1)

    def step(freezer):
        out = model(input_ids=train_b.input_ids, attention_mask=train_b.attention_mask, labels=train_b.labels,
                    use_cache=False)
        out.loss.backward()
        opt.step()
        if freezer is not None:
            freezer.restore()
        opt.zero_grad(set_to_none=True)

    freezer = UnitFreezer(model, um.select(["esu", "cu"]), "freeze")
    freezer.remove()  # hooks are attached only for the masked steps
    steps = {"unmasked step": [], "masked step": []}
    step(None)
    for _ in range(args.steps):
        steps["unmasked step"].append(_timed(lambda: step(None)))
        for s in freezer.slices:
            s.hook()
        steps["masked step"].append(_timed(lambda: step(freezer)))
        freezer.remove()
    med.update({k: statistics.median(v) for k, v in steps.items()})
    print("steps:", {k: [round(x, 2) for x in v] for k, v in steps.items()}, flush=True)

    print(f"model {args.model}; {len(batches)} batches, {n_tokens} tokens; medians of {args.rounds} rounds "
          f"(snip: {len(snip_batches)} batches, {max(1, args.rounds - 1)} rounds; steps: {args.steps} each, "
          f"batch {args.train_batch}x{args.train_length}); frozen units: "
          f"{sum(int(m.sum()) for m in um.select(['esu', 'cu']).values())}, trainable fraction "
          f"{freezer.trainable_fraction:.4f}")
    print("| measurement | seconds | ratio |")
    print("|---|---|---|")
    print(f"| plain forward | {med['plain forward']:.2f} | 1.00 |")
    print(f"| ssah scoring | {med['ssah']:.2f} | {med['ssah'] / med['plain forward']:.2f}x forward |")
    print(f"| wanda scoring | {med['wanda']:.2f} | {med['wanda'] / med['plain forward']:.2f}x forward |")
    print(f"| forward+backward | {med['forward+backward']:.2f} | 1.00 |")
    print(f"| snip scoring | {med['snip']:.2f} | {med['snip'] / med['forward+backward']:.2f}x forward+backward |")
    print(f"| unmasked AdamW step | {med['unmasked step']:.2f} | 1.00 |")
    print(f"| masked AdamW step | {med['masked step']:.2f} | {med['masked step'] / med['unmasked step']:.3f}x |")


if __name__ == "__main__":
    main()
