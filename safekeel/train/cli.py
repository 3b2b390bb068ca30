"""`safekeel train`: DeRTa / baseline training from a built set (`safekeel data build`)."""

from __future__ import annotations

from ..config import add_config_args, resolve_config
from .dpo import DPOTrainConfig
from .run import TrainConfig


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model on a built DeRTa / baseline set (full FT or LoRA, resumable)")
    add_config_args(p, TrainConfig)
    p.set_defaults(func=_train)
    d = sub.add_parser("train-dpo", help="DPO baseline through TRL (safe response = chosen, harmful = rejected)")
    add_config_args(d, DPOTrainConfig)
    d.set_defaults(func=_train_dpo)


def _leave_process_group() -> None:
    """Under `accelerate launch`, wait for rank 0's summary, then tear the process group down: a rank that exits
    with the gloo group alive can abort in its threads' destructors ("terminate called without an active
    exception", exit -6), failing a run that trained and saved."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _train(args) -> int:
    import json
    import os

    from .run import run_train

    cfg = resolve_config(TrainConfig, args)
    out = run_train(cfg)
    _leave_process_group()
    if int(os.environ.get("RANK", "0")) != 0:  # under `accelerate launch`, rank 0 reports
        return 0
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    print(f"trained {s['steps']} steps on {s['examples']} examples {s['kinds']}: train loss {s['train_loss']:.4f}, "
          f"trainable fraction {s['trainable_fraction']:.4f}, {s['seconds']} s -> {out}/model")
    return 0


def _train_dpo(args) -> int:
    import json
    import os

    from .dpo import run_dpo

    out = run_dpo(resolve_config(DPOTrainConfig, args))
    _leave_process_group()
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    print(f"DPO: {s['steps']} steps on {s['pairs']} pairs, train loss {s['train_loss']:.4f} -> {out}/model")
    return 0
