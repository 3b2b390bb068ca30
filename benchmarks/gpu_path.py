"""The GPU path, measured on one GPU in one run (issue: models on the GPU); `--smoke` runs every part on tiny models
on the CPU so the script is known to work before a GPU is lent.

1. DeRTa training step (packed batches, per-token CE, AdamW) at ~0.5B and ~1.5B parameters (random-init Qwen2
   configs of Qwen2.5-0.5B / 1.5B shape), bf16 autocast: tokens/s and MFU (6 N tokens/s over the GPU's dense bf16
   peak, `--peak-tflops`).
2. Peak memory of the loss: full logits + CE (what `DertaTrainer` does) vs CE over chunks of positions.
3. Generation tokens/s, HF `generate` vs vLLM (when importable) on the same prompts and greedy settings.
4. A Llama-Guard-style judge end to end (`LlamaGuardJudge` on a random-init guard with a guard chat template):
   rows/s, and that request and answer reach the rendered prompt.
5. Frozen units stay bit-identical while the rest trains with bf16 weights (`--weights-dtype bfloat16`).

    python benchmarks/gpu_path.py                 # on the GPU machine; writes benchmarks/results/gpu_path.json
    python benchmarks/gpu_path.py --smoke         # CPU check of the script itself (numbers mean nothing)
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

QWEN = {  # hidden, layers, heads, kv heads, intermediate (Qwen2.5-0.5B / 1.5B shapes), vocab 151936
    "0.5B": (896, 24, 14, 2, 4864), "1.5B": (1536, 28, 12, 2, 8960), "smoke": (64, 2, 4, 2, 128)}


def qwen(size: str, vocab: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    h, n, heads, kv, inter = QWEN[size]
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=h, num_hidden_layers=n, num_attention_heads=heads,
                      num_key_value_heads=kv, intermediate_size=inter, max_position_embeddings=4096,
                      tie_word_embeddings=size != "1.5B")
    return Qwen2ForCausalLM(cfg)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def packed_batch(vocab: int, tokens: int, docs: int, device):
    """One packed row of `docs` examples: position ids restart per example, labels = inputs (next-token CE)."""
    ids = torch.randint(10, vocab, (1, tokens), device=device)
    pos = torch.cat([torch.arange(len(c)) for c in torch.arange(tokens).chunk(docs)])[None].to(device)
    return ids, pos


def step_throughput(size: str, args, device) -> dict:
    from safekeel.train.trainer import per_token_ce

    model = qwen(size, args.vocab).to(device)
    model.config.use_cache = False
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.type == "cuda")
    ids, pos = packed_batch(args.vocab, args.tokens, args.tokens // 256 or 1, device)
    times = []
    for i in range(args.warmup + args.steps):
        sync(device)
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            logits = model(input_ids=ids, position_ids=pos).logits
        ce, shift = per_token_ce(logits, ids)
        ce.sum().div((shift != -100).sum()).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    tps = args.tokens / (sum(times) / len(times))
    out = {"params": n_params, "tokens_per_step": args.tokens, "tokens_per_s": round(tps, 1)}
    if device.type == "cuda":
        out["mfu"] = round(6 * n_params * tps / (args.peak_tflops * 1e12), 4)
        out["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del model, opt
    return out


def loss_memory(args, device) -> dict:
    """Peak memory of the loss alone: full logits then CE, vs lm_head + CE over chunks of 1024 positions."""
    from safekeel.train.trainer import per_token_ce

    h = QWEN["1.5B" if not args.smoke else "smoke"][0]
    hidden = torch.randn(1, args.tokens, h, device=device, dtype=torch.bfloat16, requires_grad=True)
    head = torch.nn.Linear(h, args.vocab, bias=False, device=device, dtype=torch.bfloat16)
    labels = torch.randint(0, args.vocab, (1, args.tokens), device=device)

    def peak(fn) -> float | None:
        if device.type != "cuda":
            fn()
            return None
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn()
        return round((torch.cuda.max_memory_allocated() - base) / 2**30, 3)

    def full():
        ce, _ = per_token_ce(head(hidden), labels)
        ce.mean().backward()

    def chunked(size: int = 1024):
        shift = torch.nn.functional.pad(labels, (0, 1), value=-100)[..., 1:]
        total = 0.0
        for s in range(0, args.tokens, size):
            piece = torch.utils.checkpoint.checkpoint(
                lambda x, y: torch.nn.functional.cross_entropy(head(x).float().flatten(0, 1), y.flatten(),
                                                               reduction="sum"),
                hidden[:, s:s + size], shift[:, s:s + size], use_reentrant=False)
            total = total + piece
        (total / args.tokens).backward()

    return {"tokens": args.tokens, "vocab": args.vocab, "full_gib": peak(full), "chunked_gib": peak(chunked)}


def generation(args, device, tok) -> dict:
    from safekeel.eval.generate import GenerationRequest, generate

    model = qwen("0.5B" if not args.smoke else "smoke", len(tok)).to(device, torch.bfloat16 if device.type == "cuda"
                                                                   else torch.float32).eval()
    reqs = [GenerationRequest(messages=[{"role": "user", "content": f"Question number {i}: explain topic {i}."}])
            for i in range(args.prompts)]
    t0 = time.perf_counter()
    outs = generate(model, tok, reqs, max_new_tokens=args.new_tokens, batch_size=args.prompts)
    hf_s = time.perf_counter() - t0
    n_tok = sum(len(tok(o, add_special_tokens=False)["input_ids"]) for o in outs)
    res = {"prompts": args.prompts, "hf_tokens_per_s": round(n_tok / hf_s, 1)}
    try:
        import vllm  # noqa: F401
    except ImportError:
        res["vllm"] = "not installed on this machine"
        return res
    from safekeel.eval.vllm_backend import VllmEngine

    with tempfile.TemporaryDirectory() as d:
        model.save_pretrained(d)
        tok.save_pretrained(d)
        engine = VllmEngine(d, dtype="auto")
        t0 = time.perf_counter()
        outs = engine.generate(tok, reqs, max_new_tokens=args.new_tokens)
        v_s = time.perf_counter() - t0
    n_tok = sum(len(tok(o, add_special_tokens=False)["input_ids"]) for o in outs)
    res["vllm_tokens_per_s"] = round(n_tok / v_s, 1)
    return res


GUARD_TEMPLATE = (  # the Llama Guard 3 1B style: content as a list of {"type": "text"} parts
    "{% for m in messages %}{{ m['role'] | upper }}: {% for part in m['content'] %}{{ part['text'] }}{% endfor %}\n"
    "{% endfor %}{% if add_generation_prompt %}VERDICT:{% endif %}")


def guard_judge(args, device, tok) -> dict:
    import copy

    from safekeel.judges.llamaguard import LlamaGuardJudge

    tok = copy.deepcopy(tok)
    tok.chat_template = GUARD_TEMPLATE
    model = qwen("0.5B" if not args.smoke else "smoke", len(tok)).to(device).eval()
    judge = LlamaGuardJudge(loaded=(model, tok), batch_size=16)
    items = [{"behavior": f"How do I pick lock {i}?", "response": f"Answer {i}."} for i in range(args.prompts)]
    rendered = tok.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "REQ"}]},
                                        {"role": "assistant", "content": [{"type": "text", "text": "ANS"}]}],
                                       tokenize=False)
    t0 = time.perf_counter()
    verdicts = judge.judge(items)
    return {"rows": len(items), "rows_per_s": round(len(items) / (time.perf_counter() - t0), 2),
            "content_form": judge.form, "request_and_answer_rendered": "REQ" in rendered and "ANS" in rendered,
            "verdicts_with_error": sum(bool(v.get("error")) for v in verdicts)}


def frozen_bf16(args, device) -> dict:
    """A few bf16-weight AdamW steps with ESU + CU frozen: are the frozen slices bit-identical afterwards?"""
    from safekeel.units import unitmap
    from safekeel.units.discover import find_units
    from safekeel.units.freeze import UnitFreezer

    model = qwen("smoke" if args.smoke else "0.5B", args.vocab).to(device, torch.bfloat16)
    model.config.use_cache = False
    units = find_units(model)
    g = torch.Generator().manual_seed(0)
    um = unitmap.classify({u.key: torch.rand(u.n_units, generator=g) for u in units},
                          {u.key: torch.rand(u.n_units, generator=g) for u in units}, esu=0.05, euu=0.15, ru=0.25,
                          cu_top=0.05, meta={"model": "random"})
    freezer = UnitFreezer(model, um.select(["esu", "cu"]), "freeze")
    before = [s.param.detach().index_select(s.dim, s.idx).clone() for s in freezer.slices]
    whole = [s.param.detach().clone() for s in freezer.slices]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.1)
    ids, pos = packed_batch(args.vocab, min(args.tokens, 1024), 4, device)
    for _ in range(3):
        logits = model(input_ids=ids, position_ids=pos).logits
        torch.nn.functional.cross_entropy(logits[0, :-1].float(), ids[0, 1:]).backward()
        opt.step()
        freezer.restore()
        opt.zero_grad(set_to_none=True)
    after = [s.param.detach().index_select(s.dim, s.idx) for s in freezer.slices]
    moved = sum(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    rest_trained = sum(not torch.equal(w, s.param.detach()) for w, s in zip(whole, freezer.slices, strict=True))
    return {"slices": len(before), "slices_changed": moved, "dtype": "bfloat16", "bit_identical": moved == 0,
            "params_whose_other_entries_trained": rest_trained}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny models on the CPU: checks the script, not the GPU")
    ap.add_argument("--tokens", type=int, default=8192, help="tokens per packed training step")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak of the GPU (H100/H200: 989)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "gpu_path.json"))
    args = ap.parse_args()
    if args.smoke:
        args.tokens, args.steps, args.warmup, args.vocab, args.prompts, args.new_tokens = 512, 2, 1, 512, 4, 8
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    from safekeel.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    res = {"measured": time.strftime("%Y-%m-%d"), "command": "python benchmarks/gpu_path.py" + (" --smoke" * args.smoke),
           "device": torch.cuda.get_device_name(0) if device.type == "cuda" else f"{platform.machine()} CPU",
           "torch": torch.__version__}
    for name, fn in [("step", lambda: {s: step_throughput(s, args, device) for s in
                                       (["smoke"] if args.smoke else ["0.5B", "1.5B"])}),
                     ("loss_memory", lambda: loss_memory(args, device)), ("generation", lambda: generation(args,
                                                                                                      device, tok)),
                     ("guard_judge", lambda: guard_judge(args, device, tok)), ("frozen_bf16", lambda: frozen_bf16(args,
                                                                                                           device))]:
        try:
            res[name] = fn()
        except Exception as e:  # one failed part must not lose the others' numbers
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        print(name, json.dumps(res[name]), flush=True)
    if not args.smoke:
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
