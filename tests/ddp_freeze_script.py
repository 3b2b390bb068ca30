"""Train a tiny model with the unit-freezing callback under a plain transformers Trainer.

Imported by tests/test_units_freeze.py (in-process runs) and launched as a script under
`accelerate launch --multi_gpu --num_processes 2` on a CPU-only machine (DDP over gloo; `TrainingArguments(use_cpu=True)`;
in accelerate 1.x `--cpu --num_processes 2` alone starts ONE process unless an MPI hostfile is given) by the DDP
test: each rank writes what it saw to
`<out>/rank<r>.json` (frozen slices bit-identical? did the rest move? digest of all parameters).
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

TEXTS = [
    ("How do I pick a lock?", "Sorry, I can't help with that request."),
    ("What is the capital of France?", "The capital of France is Paris."),
    ("Write a poem about the sea.", "The waves roll in and out under the silver moon."),
    ("How do I kill a Python process?", "Use the kill command with the process id."),
    ("Give me tips for baking bread.", "Use fresh yeast, knead the dough, and bake it hot."),
    ("What is the capital of Italy?", "The capital of Italy is Rome."),
    ("How do I make a weapon?", "I'm sorry, but I won't provide instructions for that."),
    ("Say hello.", "Hello world."),
]


def single_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy machine 2 threads per process oversubscribe the
    cores (an order of magnitude slower): units tests run single-threaded. Used as an autouse fixture."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_unit_map(model, out: str | Path, seed: int = 0) -> Path:
    """A unit map from random scores (deterministic): enough to exercise every class."""
    from safekeel.units import unitmap
    from safekeel.units.discover import find_units

    g = torch.Generator().manual_seed(seed)
    units = find_units(model)
    safety = {u.key: torch.rand(u.n_units, generator=g) for u in units}
    utility = {u.key: torch.rand(u.n_units, generator=g) for u in units}
    um = unitmap.classify(safety, utility, esu=0.05, euu=0.15, ru=0.25, cu_top=0.05,
                          meta={"model": "tiny", "method": "random",
                                "weights_sha256": unitmap.weights_hash(model)})
    return unitmap.save(um, out, plot=False)


class _Data(torch.utils.data.Dataset):
    def __init__(self, tok, length: int = 32):
        self.rows = []
        for p, r in TEXTS:
            text = tok.apply_chat_template([{"role": "user", "content": p}, {"role": "assistant", "content": r}],
                                           tokenize=False)
            enc = tok(text, add_special_tokens=False, max_length=length, truncation=True, padding="max_length")
            ids = torch.tensor(enc["input_ids"])
            att = torch.tensor(enc["attention_mask"])
            self.rows.append({"input_ids": ids, "attention_mask": att, "labels": ids.masked_fill(att == 0, -100)})

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def train(model, tok, callbacks, out_dir: str | Path, steps: int = 20, grad_accum: int = 2):
    """AdamW with weight decay and momentum, gradient accumulation, `steps` optimizer steps."""
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(output_dir=str(out_dir), max_steps=steps, per_device_train_batch_size=2,
                             gradient_accumulation_steps=grad_accum, learning_rate=1e-2, weight_decay=0.1,
                             adam_beta1=0.9, adam_beta2=0.99, optim="adamw_torch", lr_scheduler_type="constant",
                             save_strategy="no", report_to=[], logging_steps=1000, disable_tqdm=True,
                             use_cpu=True, dataloader_num_workers=0, seed=0, data_seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=_Data(tok), callbacks=callbacks)
    trainer.train()
    return trainer


def digest(model) -> str:
    h = hashlib.sha256()
    for name, p in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def main(out: str) -> None:
    import torch.distributed as dist
    from tiny import build_model, build_tokenizer

    from safekeel.units.freeze import build_freeze_callback

    out = Path(out)
    tok = build_tokenizer("chatml")
    model = build_model(tok, seed=0)
    path = out / "map" / "unit_map.safetensors"
    if not path.exists():  # written once before launch by the test; ranks only read it
        raise SystemExit(f"missing {path}")
    cb = build_freeze_callback(model, str(path), ["esu", "cu"], "freeze")
    before = [s.param.detach().index_select(s.dim, s.idx).clone() for s in cb.freezer.slices]
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    train(model, tok, [cb], out / "trainer", steps=20)
    frozen_ok = all(torch.equal(s.param.detach().index_select(s.dim, s.idx), b)
                    for s, b in zip(cb.freezer.slices, before, strict=True))
    moved = sum(int((p.detach() != start[n]).sum()) for n, p in model.named_parameters())
    rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    (out / f"rank{rank}.json").write_text(json.dumps({
        "rank": rank, "world": world, "frozen_identical": frozen_ok, "frozen_slices": len(before),
        "moved_elements": moved, "digest": digest(model), "trainable_fraction": cb.trainable_fraction}))
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
