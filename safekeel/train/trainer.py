"""A small `transformers.Trainer` subclass: one CE over all targets, plus MLE / RTO losses logged separately.

The training loss is the reference behaviour: one mean cross-entropy over every unmasked token. The collator's
`kinds` tensor (1 = MLE target, 2 = RTO target) splits the same per-token losses into two running sums that are
logged as `mle_loss` and `rto_loss`: no second forward, no extra pass over the logits (labels are shifted, not the
logits, exactly as transformers' own causal-LM loss does), so a DeRTa step costs what a plain SFT step costs.

With a `ref_model` the loss is Qi et al.'s token-wise constrained objective instead (`train/constrained.py`): one
extra no-grad forward of the frozen reference per step; the logged mle/rto losses stay plain cross-entropies.

`refusal_unlikelihood` w > 0 (a safekeel extension, not in the DeRTa paper) adds w * -log(1 - p(r)) at every MLE
target whose token is not a refusal token r (the RTO targets' own ids): RTO raises p(" I") after any text, and a
small model inserts "I cannot ..." into benign answers (`benchmarks/RESULTS.md`, fifteenth session); this pushes
p(r) down where the data never starts a refusal. It costs one logsumexp over the logits, no extra forward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from transformers import Trainer, TrainerCallback

from ..data.tokenize import IGNORE, MLE, RTO
from ..io import append_jsonl
from .constrained import QI_BETAS, constrained_token_loss


def per_token_ce(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-token CE of the shifted targets, the shifted labels); labels are padded on the right, logits untouched."""
    shift = F.pad(labels, (0, 1), value=IGNORE)[..., 1:]
    ce = F.cross_entropy(logits.float().view(-1, logits.size(-1)), shift.reshape(-1), ignore_index=IGNORE,
                         reduction="none")
    return ce, shift.reshape(-1)


class DertaTrainer(Trainer):
    def __init__(self, *args, ref_model=None, betas: list[float] | None = None, unlikelihood: float = 0.0,
                 refusal_ids: list[int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.unlikelihood, self.refusal_ids = unlikelihood, sorted(set(refusal_ids or []))
        if unlikelihood and not self.refusal_ids:
            raise ValueError("refusal_unlikelihood needs the refusal token ids (the data has no RTO row)")
        self._kind_sums = None  # [mle_sum, mle_n, rto_sum, rto_n] since the last log, kept on device (no sync)
        self.ref_model, self.betas = ref_model, list(betas or QI_BETAS)
        if ref_model is not None:
            ref_model.requires_grad_(False).eval().to(self.args.device)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        kinds = inputs.pop("kinds", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        ce, shift = per_token_ce(outputs.logits, labels)
        # each target's kind, shifted like the labels (0 = none, MLE, RTO)
        k = F.pad(kinds, (0, 1), value=0)[..., 1:].reshape(-1) if kinds is not None else None
        total = ce.sum()
        if self.ref_model is not None:
            with torch.no_grad():
                # no KV cache: with one, transformers skips the packed-sequence mask and attends across examples
                ce_ref, _ = per_token_ce(self.ref_model(**inputs, use_cache=False).logits, labels)
            total = constrained_token_loss(-ce, -ce_ref, shift != IGNORE, self.betas).sum()
        if self.unlikelihood and k is not None:
            total = total + self.unlikelihood * self._refusal_unlikelihood(outputs.logits, k, shift)
        if num_items_in_batch is not None:
            self.loss_is_scaled_for_ga = True
            loss = total / num_items_in_batch
            if self.args.average_tokens_across_devices:
                loss = loss * self.accelerator.num_processes
        else:
            loss = total / (shift != IGNORE).sum().clamp(min=1)
        if k is not None and model.training:
            with torch.no_grad():
                ce_d = ce.detach()
                mle, rto = (k == MLE), (k == RTO)
                sums = torch.stack([(ce_d * mle).sum(), mle.sum(), (ce_d * rto).sum(), rto.sum()]).float()
                self._kind_sums = sums if self._kind_sums is None else self._kind_sums + sums
        return (loss, outputs) if return_outputs else loss

    def _refusal_unlikelihood(self, logits: torch.Tensor, k: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Sum over MLE targets that are not a refusal token of -log(1 - p(refusal token)), per refusal token; `k` and
        `shift` are the targets' kinds and tokens, shifted and flattened."""
        ids = torch.tensor(self.refusal_ids, device=shift.device)
        at = (k == MLE) & ~torch.isin(shift, ids)
        if not at.any():
            return logits.sum() * 0.0
        flat = logits.float().view(-1, logits.size(-1))[at]
        logp = flat[:, ids] - torch.logsumexp(flat, dim=-1, keepdim=True)
        return -torch.log1p(-logp.exp().clamp(max=1 - 1e-6)).sum()

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if self._kind_sums is not None and "loss" in logs:
            mle_sum, mle_n, rto_sum, rto_n = self._kind_sums.tolist()
            logs["mle_loss"] = round(mle_sum / mle_n, 6) if mle_n else None
            logs["rto_loss"] = round(rto_sum / rto_n, 6) if rto_n else None
            logs["mle_tokens"], logs["rto_tokens"] = int(mle_n), int(rto_n)
            self._kind_sums = None
        super().log(logs, start_time)


class EpochToCollator(TrainerCallback):
    """Tell the collator which epoch starts, so its per-example RTO sampling is fresh each epoch and resumable."""

    def __init__(self, collator):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kw):
        self.collator.epoch = math.floor((state.epoch or 0.0) + 1e-9)


class JsonlLogCallback(TrainerCallback):
    """train_log.jsonl: one row per logging step (loss, mle_loss, rto_loss, learning rate, grad norm)."""

    KEYS = ("loss", "mle_loss", "rto_loss", "mle_tokens", "rto_tokens", "learning_rate", "grad_norm", "epoch")

    def __init__(self, path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kw):
        if state.is_world_process_zero and logs and "loss" in logs:
            append_jsonl(self.path, {"step": state.global_step, **{k: logs.get(k) for k in self.KEYS if k in logs}})


class RichProgress(TrainerCallback):
    """A rich progress bar with the latest loss / mle / rto values (replaces transformers' tqdm)."""

    def __init__(self):
        self.progress, self.task = None, None

    def on_train_begin(self, args, state, control, **kw):
        if not state.is_world_process_zero:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.fields[info]}"), transient=False)
        self.progress.start()
        self.task = self.progress.add_task("train", total=state.max_steps, completed=state.global_step, info="")

    def on_step_end(self, args, state, control, **kw):
        if self.progress:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kw):
        if self.progress and logs and "loss" in logs:
            parts = [f"{k} {logs[k]:.4f}" for k in ("loss", "mle_loss", "rto_loss") if logs.get(k) is not None]
            self.progress.update(self.task, info="  ".join(parts))

    def on_train_end(self, args, state, control, **kw):
        if self.progress:
            self.progress.stop()
            self.progress = None
