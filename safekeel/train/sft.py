"""DeRTa inside TRL: a `SFTTrainer` user trains DeRTa with safekeel's rows, collator and objective.

DeRTa is SFT with different labels, so nothing of TRL needs replacing: the rows are tokenized here with DeRTa's
labels (harmful prefixes masked, every RTO position targeting the refusal token), TRL is told not to prepare the
dataset again, and the collator packs the batch and samples RTO targets. TRL's own loss (mean token cross-entropy
over the labels) is then exactly `safekeel train`'s objective; the MLE / RTO split of the loss is only logged by
`safekeel train`.

    from trl import SFTConfig, SFTTrainer
    from safekeel.train.sft import SFT_ARGS, derta_collator, derta_dataset, rto_epoch_callback

    data = derta_dataset("runs/data/derta/train.jsonl", tok, max_length=1024)
    collator = derta_collator(tok, rto_keep_fraction=0.05)
    trainer = SFTTrainer(model=model, args=SFTConfig(output_dir="out", **SFT_ARGS), train_dataset=data,
                         data_collator=collator, processing_class=tok, callbacks=[rto_epoch_callback(collator)])
    trainer.train()
"""

from __future__ import annotations

from pathlib import Path

from .collator import DertaCollator

# SFTConfig arguments the DeRTa dataset needs: it is already tokenized with its labels, and the collator reads
# the `kinds` and `idx` columns (RTO positions, per-example sampling seed)
SFT_ARGS = {"dataset_kwargs": {"skip_prepare_dataset": True}, "remove_unused_columns": False}


def derta_dataset(rows: str | Path | list[dict], tok, refusal: str | None = None, max_length: int = 512,
                  rto_target: str = "aligned"):
    """A `datasets.Dataset` of input_ids / labels / kinds / idx from a `safekeel data build` file (or its rows)."""
    from datasets import Dataset

    from ..data.tokenize import tokenize_rows
    from .run import load_rows

    rows = load_rows(str(rows)) if isinstance(rows, str | Path) else rows
    feats = tokenize_rows(tok, rows, refusal=refusal, max_length=max_length, rto_target=rto_target)
    return Dataset.from_list([{"input_ids": f["input_ids"], "labels": f["labels"], "kinds": f["kinds"], "idx": i}
                              for i, f in enumerate(feats)])


class _ModelInputsCollator(DertaCollator):
    """DertaCollator whose batches hold only what a model's forward takes (TRL passes the batch to the model)."""

    def __call__(self, features: list[dict]):
        batch = super().__call__(features)
        batch.pop("kinds")
        return batch


def derta_collator(tok, rto_keep_fraction: float = 0.05, seed: int = 0, pack: bool = True,
                   rto_schedule: str = "uniform") -> DertaCollator:
    """The collator for a TRL trainer: packing (or padding), a fresh `rto_keep_fraction` of RTO targets per step."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    return _ModelInputsCollator(pad, rto_keep_fraction, seed, pack=pack, rto_schedule=rto_schedule)


def rto_epoch_callback(collator: DertaCollator):
    """Tells the collator each epoch, so the sampled RTO targets change per epoch and a resumed run draws the same."""
    from .trainer import EpochToCollator

    return EpochToCollator(collator)
