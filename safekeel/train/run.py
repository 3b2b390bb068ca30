"""`run_train(cfg)`: tokenize a built DeRTa / baseline set, train (full FT or LoRA) with resume, save everything.

Output directory: checkpoints/ (resumable), model/ (final model or adapter + tokenizer), config.yaml,
train_log.jsonl (loss, mle_loss, rto_loss per logging step), summary.json.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import field, save_config
from ..errors import ConfigError, DataError, SafekeelError
from ..io import read_jsonl_rows, write_json, write_jsonl

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class TrainConfig:
    model: str = field("smollm2-135m", help="base model: embedded name, HF id or local folder")
    data: str | None = field(None, help="training set built by `safekeel data build` (train.jsonl); required")
    out: str = field("runs/train/derta", help="output directory")
    refusal: str | None = field(None, help="refusal string whose first assistant-turn token is the RTO target "
                                          "(default: the token `data build` recorded from the training refusals)")
    rto_keep_fraction: float = field(0.05, help="fraction of RTO targets kept, resampled each step (reference full "
                                                "FT ~0.05; measured: 0.25 and 1.0 collapse SmolLM2 into refusal-"
                                                "token runs, benchmarks/derta_recipe.py)")
    rto_schedule: Literal["uniform", "front"] = field(
        "uniform", help="which RTO positions a step keeps: uniform, or front (the first position always, later ones "
                        "with weight 1 / (1 + t): the start of an answer trained more often; measured on val: more "
                        "direct refusal and more over-refusal, so uniform stays the default, benchmarks/RESULTS.md)")
    rto_target: Literal["aligned", "start"] = field(
        "aligned", help="aligned: mid-answer RTO contexts target the refusal token's mid-text form (' I'), the token "
                        "the prefix rows train there; start: its turn-start form ('I') everywhere (measured: collapses "
                        "SmolLM2 into 'IIII' runs, benchmarks/derta_recipe.py)")
    refusal_unlikelihood: float = field(0.0, help="weight of -log(1 - p(refusal token)) at every MLE target that is "
                                                  "not one (an extension against 'I cannot' inserted mid-answer "
                                                  "into benign answers; 0 = off, the paper's objective)")
    objective: Literal["ce", "constrained"] = field(
        "ce", help="ce: cross-entropy (DeRTa, SFT); constrained: Qi et al.'s token-wise constrained objective against "
                   "the frozen starting model (see safekeel/train/constrained.py)")
    constrained_betas: list[float] = field([0.5, 2.0, 2.0, 2.0, 2.0, 0.1], help="constrained objective: beta per "
                                           "answer position; the last value holds for all later positions")
    max_length: int = field(512, help="truncate tokenized examples to this many tokens")
    pack: bool = field(True, help="padding-free packing of each batch (False: pad to the longest)")
    epochs: float = field(1.0, help="training epochs")
    max_steps: int = field(-1, help="stop after this many optimizer steps (-1: use epochs)")
    batch_size: int = field(4, help="examples per device per step")
    grad_accum: int = field(1, help="gradient accumulation steps")
    lr: float = field(1e-4, help="peak learning rate (1e-4 chosen for smollm2-135m at batch 8 on validation "
                                 "prompts, benchmarks/derta_recipe.py; the reference 8B full FT used 2e-5 at batch 128, "
                                 "configs/derta.yaml)")
    scheduler: str = field("cosine", help="learning-rate schedule (transformers name)")
    warmup_ratio: float = field(0.03, help="warmup fraction of the steps")
    weight_decay: float = field(0.0, help="AdamW weight decay")
    seed: int = field(0, help="seed (model init of LoRA, data order, RTO sampling)")
    lora: bool = field(False, help="train a LoRA adapter (PEFT) instead of all weights")
    lora_r: int = field(16, help="LoRA rank (reference 70B: 96)")
    lora_alpha: int = field(16, help="LoRA alpha")
    lora_dropout: float = field(0.05, help="LoRA dropout")
    lora_targets: list[str] = field(LORA_TARGETS, help="module names that get LoRA adapters")
    bf16: Literal["auto", "true", "false"] = field("auto", help="bf16 mixed precision (auto: on a GPU that has it)")
    weights_dtype: Literal["float32", "bfloat16"] = field(
        "float32", help="bfloat16: weights, gradients and optimizer state in bf16, no fp32 master copy (half the "
                        "memory of mixed precision; updates smaller than bf16's resolution are lost)")
    quantize: str | None = field(None, help="4bit: NF4 base weights (bitsandbytes, GPU only) under a LoRA adapter "
                                            "(QLoRA; needs --lora true)")
    gradient_checkpointing: bool = field(False, help="recompute activations to save memory")
    logging_steps: int = field(1, help="log every N steps")
    save_steps: int = field(50, help="checkpoint every N steps")
    save_total_limit: int = field(2, help="checkpoints kept")
    keep_checkpoints: bool = field(True, help="keep checkpoints/ once the final model is saved (False: delete them; "
                                              "full fine-tuning checkpoints of a 135M model are ~1.6 GB each, with the "
                                              "optimizer state)")
    resume: bool = field(False, help="continue from the last checkpoint in OUT/checkpoints")
    progress: bool = field(True, help="show a rich progress bar")
    freeze_units: str | None = field(None, help="unit map: keep these safety units fixed (SSAH freezing)")
    freeze_classes: list[str] = field(["esu", "cu"], help="unit classes kept fixed with --freeze-units")
    train_only_units: str | None = field(None, help="unit map: train only these units (alignment budget)")
    train_only_classes: list[str] = field(["ru"], help="unit classes trained with --train-only-units")
    unit_map_any_weights: bool = field(False, help="use a unit map scored on other weights than --model's (refused "
                                                   "by default: a base-model map protects nothing alignment added)")

    def validate(self) -> None:
        if not self.data:
            raise ConfigError("missing value for: --data (a train.jsonl from `safekeel data build`)")
        if not 0.0 < self.rto_keep_fraction <= 1.0:
            raise ConfigError("'rto_keep_fraction' must be in (0, 1]")
        if self.refusal_unlikelihood < 0:
            raise ConfigError("'refusal_unlikelihood' must be >= 0")
        if self.freeze_units and self.train_only_units:
            raise ConfigError("use either --freeze-units or --train-only-units, not both")
        if (self.freeze_units or self.train_only_units) and (sharding := sharded_parameters()):
            raise ConfigError(f"--freeze-units / --train-only-units need whole parameters, but {sharding} shards and "
                              "flattens them: launch with configs/accelerate/ddp.yaml or zero2.yaml instead")
        if not self.constrained_betas or min(self.constrained_betas) <= 0:
            raise ConfigError("'constrained_betas' must be a non-empty list of positive numbers")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError("'warmup_ratio' must be in [0, 1)")
        if self.quantize and not self.lora:
            raise ConfigError("--quantize 4bit trains a LoRA adapter over frozen 4-bit weights: add --lora true")
        if self.weights_dtype == "bfloat16" and self.bf16 == "true":
            raise ConfigError("--weights-dtype bfloat16 already trains in bf16: leave --bf16 at auto or false")
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_length < 8:
            raise ConfigError("batch_size and grad_accum must be >= 1, max_length >= 8")


def load_rows(path: str) -> list[dict]:
    """Built rows, validated like any user file: errors name file, line and field."""
    from ..data.readers import read_rows
    from ..data.records import Conversation
    from ..data.tokenize import as_chat

    p = Path(path)
    if not p.exists():
        raise DataError(path, None, None, "file not found (build it with `safekeel data build`)")
    rows = []
    for n, r in read_rows(p):
        if not isinstance(r, dict):
            raise DataError(path, n, None, "expected a built row (see `safekeel data build`)")
        if r.get("kind", "helpful") not in ("helpful", "safe", "prefix", "rto"):
            raise DataError(path, n, "kind", f"unknown kind {r.get('kind')!r}")
        try:
            r = as_chat(r)  # DeRTa rows are stored without `messages` (data/derta.py)
        except KeyError as e:
            raise DataError(path, n, e.args[0], f"missing or mistyped in a {r.get('kind')} row") from None
        if not isinstance(r.get("messages"), list):
            raise DataError(path, n, "messages", "expected a built row with 'messages' (see `safekeel data build`)")
        Conversation.from_dict({"messages": r["messages"]}, path, n)  # roles, strings, no empty turn
        rows.append(r)
    if not rows:
        raise DataError(path, None, None, "no rows")
    return rows


def _bf16(setting: str) -> bool:
    import torch

    if setting == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return setting == "true"


def _placement(cfg: TrainConfig) -> dict:
    """load_model arguments for training: the Trainer places full-precision models itself (device None); 4-bit
    weights are placed at load time on this process's GPU (LOCAL_RANK under accelerate)."""
    dtype = cfg.weights_dtype
    if cfg.quantize:
        return {"dtype": "bfloat16", "quantize": cfg.quantize, "device": f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"}
    return {"dtype": dtype, "device": None}


def _apply_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    present = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    targets = [t for t in cfg.lora_targets if t in present]
    if not targets:
        raise ConfigError(f"none of the LoRA targets {cfg.lora_targets} exist in this model")
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type="CAUSAL_LM")
    if cfg.quantize:  # QLoRA: norms in fp32, inputs that carry gradients into the adapters
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    model = get_peft_model(model, lcfg)
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def sharded_parameters() -> str | None:
    """Name of the sharding `accelerate launch` set up (FSDP, ZeRO-3), or None: under it unit indices do not survive."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return "FSDP"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        stage = os.environ.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "")
        ds_file = os.environ.get("ACCELERATE_DEEPSPEED_CONFIG_FILE", "")
        if not stage and ds_file and os.path.isfile(ds_file):
            try:
                stage = str(json.loads(Path(ds_file).read_text()).get("zero_optimization", {}).get("stage", ""))
            except (OSError, ValueError):
                stage = ""
        if stage == "3":
            return "DeepSpeed ZeRO-3"
    return None


def _unit_callback(model, cfg: TrainConfig):
    if not (cfg.freeze_units or cfg.train_only_units):
        return None
    try:
        from ..units.freeze import build_freeze_callback
    except ImportError as e:
        raise SafekeelError(f"unit freezing is not available in this install: {e}") from None
    if cfg.freeze_units:
        return build_freeze_callback(model, cfg.freeze_units, cfg.freeze_classes, mode="freeze",
                                     allow_other_weights=cfg.unit_map_any_weights)
    return build_freeze_callback(model, cfg.train_only_units, cfg.train_only_classes, mode="train_only",
                                 allow_other_weights=cfg.unit_map_any_weights)


def _trim_log(path: Path, last_step: int) -> None:
    """On resume, drop log rows written after the checkpoint (they will be logged again)."""
    if path.exists():
        write_jsonl(path, [r for r in read_jsonl_rows(path) if r.get("step", 0) <= last_step])


def _rto_ids(features: list[dict]) -> list[int]:
    """The refusal token ids the RTO targets use (its turn-start and mid-text forms)."""
    from ..data.tokenize import RTO

    return sorted({lab for f in features for lab, k in zip(f["labels"], f["kinds"], strict=True) if k == RTO})


def run_train(cfg: TrainConfig, callbacks: list | None = None) -> Path:
    """Train and return the output directory (see module docstring); `callbacks` are extra TrainerCallbacks."""
    import torch
    from transformers import PrinterCallback, TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    from ..data.tokenize import tokenize_rows
    from ..models import load_model, require_chat_template
    from .collator import DertaCollator
    from .trainer import DertaTrainer, EpochToCollator, JsonlLogCallback, RichProgress

    t0 = time.time()
    out = Path(cfg.out)
    ckpt_dir = out / "checkpoints"
    last = get_last_checkpoint(str(ckpt_dir)) if cfg.resume and ckpt_dir.is_dir() else None
    if not cfg.resume and (out / "train_log.jsonl").exists():
        raise SafekeelError(f"{out} already holds a run: pass --resume true to continue it, or choose another --out")
    rows = load_rows(cfg.data)
    torch.manual_seed(cfg.seed)
    model, tok = load_model(cfg.model, **_placement(cfg))
    require_chat_template(tok, cfg.model)
    features = tokenize_rows(tok, rows, refusal=cfg.refusal, max_length=cfg.max_length, rto_target=cfg.rto_target)
    for i, f in enumerate(features):
        f["idx"] = i
    model.config.use_cache = False
    if cfg.lora:
        model = _apply_lora(model, cfg)
    unit_cb = _unit_callback(model, cfg)
    save_config(cfg, out)  # only once the data, the model and any unit map have been accepted
    collator = DertaCollator(tok.pad_token_id, cfg.rto_keep_fraction, cfg.seed, pack=cfg.pack,
                             rto_schedule=cfg.rto_schedule)
    callbacks = [EpochToCollator(collator), JsonlLogCallback(out / "train_log.jsonl"), *(callbacks or [])]
    if cfg.progress:
        callbacks.append(RichProgress())
    if unit_cb is not None:
        callbacks.append(unit_cb)
    args = TrainingArguments(
        output_dir=str(ckpt_dir), num_train_epochs=cfg.epochs, max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.lr, lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed,
        bf16=_bf16(cfg.bf16) and cfg.weights_dtype == "float32",
        activation_checkpointing=cfg.gradient_checkpointing, logging_steps=cfg.logging_steps,
        save_strategy="steps", save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit,
        report_to="none", disable_tqdm=True, remove_unused_columns=False, dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(), use_cpu=not torch.cuda.is_available(),
        logging_first_step=False)
    ref_model = None
    if cfg.objective == "constrained":  # the frozen reference: the model the run starts from
        ref_model, _ = load_model(cfg.model, **_placement(cfg))
        ref_model.config.use_cache = False
    trainer = DertaTrainer(model=model, args=args, train_dataset=features, data_collator=collator,
                           processing_class=tok, callbacks=callbacks, ref_model=ref_model,
                           betas=cfg.constrained_betas, unlikelihood=cfg.refusal_unlikelihood,
                           refusal_ids=_rto_ids(features) if cfg.refusal_unlikelihood else None)
    if cfg.progress:
        trainer.remove_callback(PrinterCallback)  # the rich bar shows the losses; train_log.jsonl keeps them
    if cfg.resume:  # rows logged after the checkpoint (or all of them, if none was saved) are logged again
        _trim_log(out / "train_log.jsonl", int(Path(last).name.split("-")[-1]) if last else 0)
    result = trainer.train(resume_from_checkpoint=last)
    final = out / "model"
    trainer.save_model(str(final))  # rank 0 only under DDP
    if not trainer.is_world_process_zero():
        return out
    tok.save_pretrained(str(final))
    save_config(cfg, final, name="safekeel_train.yaml")
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    n_all = sum(p.numel() for p in model.parameters())
    kinds: dict[str, int] = {}
    for f in features:
        kinds[f["kind"]] = kinds.get(f["kind"], 0) + 1
    summary = {
        "model": cfg.model, "data": cfg.data, "examples": len(features), "kinds": kinds,
        "tokens": sum(len(f["input_ids"]) for f in features), "steps": trainer.state.global_step,
        "train_loss": result.training_loss, "resumed_from": Path(last).name if last else None,
        "lora": cfg.lora, "objective": cfg.objective, "trainable_params": n_train, "total_params": n_all,
        "trainable_fraction": getattr(unit_cb, "trainable_fraction", n_train / max(n_all, 1)),
        "seconds": round(time.time() - t0, 1), "final": str(final.name),
    }
    write_json(out / "summary.json", summary)
    if not cfg.keep_checkpoints:  # only now: a run stopped before its summary can still resume
        import shutil

        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return out
