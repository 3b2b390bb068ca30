"""DPO baseline through TRL: safe response = chosen, harmful response = rejected (`safekeel train-dpo`).

A preference-optimisation baseline beside the SFT-style recipes: same safety triples (train split), same output
layout as `safekeel train` (checkpoints/, model/, config.yaml, train_log.jsonl, summary.json), resumable.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import field, save_config
from ..errors import ConfigError, SafekeelError
from ..io import write_json


@dataclass
class DPOTrainConfig:
    model: str = field("smollm2-135m", help="base model: embedded name, HF id or local folder")
    triples: str = field("uncensorbench", help="safety triples: 'uncensorbench' (bundled) or a JSONL/JSON/CSV file")
    split: Literal["train", "val", "test", "heldout", "all"] = field(
        "train", help="split of the triples to train on (safekeel.data.splits; heldout = test)")
    out: str = field("runs/train/dpo", help="output directory")
    beta: float = field(0.1, help="DPO beta (strength of the KL anchor to the reference model)")
    lr: float = field(5e-6, help="learning rate")
    epochs: float = field(1.0, help="training epochs")
    max_steps: int = field(-1, help="stop after this many steps (-1: use epochs)")
    batch_size: int = field(4, help="preference pairs per step")
    max_length: int = field(512, help="maximum tokens of prompt + answer")
    seed: int = field(0, help="seed")
    lora: bool = field(False, help="train a LoRA adapter (the frozen base is then the reference model)")
    lora_r: int = field(16, help="LoRA rank")
    lora_alpha: int = field(16, help="LoRA alpha")
    save_steps: int = field(50, help="checkpoint every N steps")
    resume: bool = field(False, help="continue from the last checkpoint in OUT/checkpoints")

    def validate(self) -> None:
        if self.beta <= 0 or self.batch_size < 1:
            raise ConfigError("'beta' must be > 0 and 'batch_size' >= 1")


def preference_rows(triples) -> list[dict]:
    """TRL's conversational preference format: prompt messages, chosen / rejected assistant messages."""
    return [{"prompt": [{"role": "user", "content": t.prompt}],
             "chosen": [{"role": "assistant", "content": t.safe_response}],
             "rejected": [{"role": "assistant", "content": t.harmful_response}]} for t in triples]


def run_dpo(cfg: DPOTrainConfig) -> Path:
    try:
        from trl import DPOConfig, DPOTrainer
    except ImportError:
        raise SafekeelError("the DPO baseline needs TRL: pip install 'safekeel[trl]'") from None
    from datasets import Dataset
    from transformers.trainer_utils import get_last_checkpoint

    from ..data.build_cli import load_triple_set
    from ..models import load_model
    from .run import _bf16
    from .trainer import JsonlLogCallback

    t0 = time.time()
    out = Path(cfg.out)
    ckpt = out / "checkpoints"
    last = get_last_checkpoint(str(ckpt)) if cfg.resume and ckpt.is_dir() else None
    save_config(cfg, out)
    ds = Dataset.from_list(preference_rows(load_triple_set(cfg.triples, cfg.split)))
    model, tok = load_model(cfg.model, dtype="float32", device=None)  # the trainer places it
    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                                 task_type="CAUSAL_LM")
    args = DPOConfig(output_dir=str(ckpt), beta=cfg.beta, learning_rate=cfg.lr, num_train_epochs=cfg.epochs,
                     max_steps=cfg.max_steps, per_device_train_batch_size=cfg.batch_size, max_length=cfg.max_length,
                     seed=cfg.seed, save_steps=cfg.save_steps, logging_steps=1, report_to="none", disable_tqdm=True,
                     bf16=_bf16("auto"), dataloader_pin_memory=False)
    trainer = DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=peft_config,
                         callbacks=[JsonlLogCallback(out / "train_log.jsonl")])
    result = trainer.train(resume_from_checkpoint=last)
    trainer.save_model(str(out / "model"))  # rank 0 only under DDP
    if not trainer.is_world_process_zero():
        return out
    tok.save_pretrained(str(out / "model"))
    write_json(out / "summary.json", {"model": cfg.model, "pairs": len(ds), "steps": trainer.state.global_step,
                                      "train_loss": result.training_loss, "lora": cfg.lora,
                                      "seconds": round(time.time() - t0, 1)})
    return out
