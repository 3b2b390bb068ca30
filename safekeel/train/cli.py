"""`safekeel train`: DeRTa / baseline training from a built set (`safekeel data build`)."""

from __future__ import annotations

from ..config import add_config_args, resolve_config
from .run import TrainConfig


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model on a built DeRTa / baseline set (full FT or LoRA, resumable)")
    add_config_args(p, TrainConfig)
    p.set_defaults(func=_train)


def _train(args) -> int:
    import json

    from .run import run_train

    cfg = resolve_config(TrainConfig, args)
    out = run_train(cfg)
    s = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    print(f"trained {s['steps']} steps on {s['examples']} examples {s['kinds']}: train loss {s['train_loss']:.4f}, "
          f"trainable fraction {s['trainable_fraction']:.4f}, {s['seconds']} s -> {out}/model")
    return 0
