"""Keep chosen units bit-identical through fine-tuning (freeze), or train only chosen units (alignment budget).

Zeroing gradients is not enough: AdamW's weight decay and momentum still move a weight whose gradient is zero. So
the frozen slices get both (1) a gradient hook that zeroes their gradient (keeps them out of the moments and the
gradient norm) and (2) a restore of their saved values right after every optimizer step
(`TrainerCallback.on_optimizer_step`). Both are index operations on the frozen rows/columns only, so the overhead
is small. Under DDP every rank restores the same values, so ranks stay in sync.

What a unit covers (what is frozen / trained):
  MLP unit j      : gate and up rows j (+ their bias entries; both halves of a fused gate_up), down_proj column j.
  attention unit j: o_proj column j + the v_proj row (+ bias) that feeds channel j. Under grouped-query attention one
                    v row feeds the channels of several query heads: mode "freeze" freezes the row when ANY of its
                    channels is frozen, mode "train_only" trains it only when ALL of them are trainable.
                    q/k rows are not part of a unit (they shape the attention pattern of the whole head).
mode "train_only": every parameter outside the chosen units is fixed: parameters that hold no trainable unit get
requires_grad=False (embeddings, norms, q/k, ...), the rest are masked as above.
FSDP / ZeRO-3 shard and flatten parameters, so row/column indices do not survive: not supported (use DDP/ZeRO-2).
"""

from __future__ import annotations

from typing import Literal

import torch
from transformers import TrainerCallback

from ..errors import SafekeelError
from . import unitmap
from .discover import find_units


class FrozenSlice:
    """Rows (dim 0) or columns (dim 1) of one parameter that must not change."""

    def __init__(self, param: torch.nn.Parameter, dim: int, idx: torch.Tensor):
        self.param, self.dim = param, dim
        self.idx = idx.to(param.device)
        self.saved = param.detach().index_select(dim, self.idx).clone()
        self.handle = None

    @property
    def numel(self) -> int:
        other = self.param.numel() // max(self.param.shape[self.dim], 1)
        return int(self.idx.numel()) * other

    def snapshot(self) -> None:
        if self.idx.device != self.param.device:
            self.idx = self.idx.to(self.param.device)
        self.saved = self.param.detach().index_select(self.dim, self.idx).clone()

    def hook(self) -> None:
        if self.handle is None and self.param.requires_grad:
            self.handle = self.param.register_hook(lambda g: g.index_fill(self.dim, self.idx.to(g.device), 0))

    @torch.no_grad()
    def restore(self) -> None:
        if self.saved.device != self.param.device:
            self.snapshot()  # moved after the snapshot: values are unchanged, only the device differs
        self.param.data.index_copy_(self.dim, self.idx, self.saved)


def _slices_for(model, selection: dict[str, torch.Tensor], mode: str) -> dict[int, tuple[torch.nn.Parameter, int,
                                                                                          torch.Tensor]]:
    """id(param) -> (param, dim, bool mask over that dim: True = must stay fixed)."""
    out: dict[int, tuple[torch.nn.Parameter, int, torch.Tensor]] = {}

    def add(p, dim, fixed):
        if p is None:
            return
        if id(p) in out:
            prev = out[id(p)]
            if prev[1] != dim:
                raise SafekeelError("a parameter is shared by units along two dimensions; cannot mask it")
            fixed = prev[2] | fixed
        out[id(p)] = (p, dim, fixed)

    for u in find_units(model):
        chosen = selection[u.key].bool()
        fixed = chosen if mode == "freeze" else ~chosen
        add(u.output.weight, 1, fixed)
        for a, offsets in zip(u.inputs, u.input_offsets, strict=True):
            rows = torch.zeros(a.out_features, dtype=torch.bool)
            for off in offsets:
                rows[off:off + u.n_units] = fixed
            add(a.weight, 0, rows)
            add(a.bias, 0, rows)
        if u.v_proj is not None:
            v_rows = u.v_rows(torch.arange(u.n_units))
            rows = torch.zeros(u.v_proj.out_features, dtype=torch.bool)
            # freeze: fixed when ANY channel reading the row is frozen; train_only: fixed unless ALL are trainable.
            # With fixed = chosen resp. not chosen, both rules are "fixed if any reader is fixed".
            rows[v_rows[fixed]] = True
            add(u.v_proj.weight, 0, rows)
            add(u.v_proj.bias, 0, rows)
    return out


class UnitFreezer:
    """Gradient hooks + post-step restore for the fixed slices of a model (usable without a Trainer)."""

    def __init__(self, model, selection: dict[str, torch.Tensor], mode: Literal["freeze", "train_only"]):
        if mode not in ("freeze", "train_only"):
            raise SafekeelError(f"mode must be 'freeze' or 'train_only', got {mode!r}")
        self.model, self.mode = model, mode
        masks = _slices_for(model, selection, mode)
        if mode == "train_only":
            for p in model.parameters():
                m = masks.get(id(p))
                if m is None or bool(m[2].all()):
                    p.requires_grad_(False)
        self.slices = []
        for p, dim, fixed in masks.values():
            if p.requires_grad and bool(fixed.any()):
                self.slices.append(FrozenSlice(p, dim, fixed.nonzero().flatten()))
        for s in self.slices:
            s.hook()
        seen, total, changeable = set(), 0, 0
        for p in model.parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            changeable += p.numel() if p.requires_grad else 0
        changeable -= sum(s.numel for s in self.slices)
        self.total_params, self.trainable_params = total, changeable
        self.trainable_fraction = changeable / max(total, 1)

    def snapshot(self) -> None:
        for s in self.slices:
            s.snapshot()

    def restore(self) -> None:
        for s in self.slices:
            s.restore()

    def remove(self) -> None:
        for s in self.slices:
            if s.handle is not None:
                s.handle.remove()
                s.handle = None


class FreezeUnitsCallback(TrainerCallback):
    """Restores the fixed slices after every optimizer step; snapshots them when training begins."""

    def __init__(self, freezer: UnitFreezer):
        self.freezer = freezer
        self.trainable_fraction = freezer.trainable_fraction

    def on_train_begin(self, args, state, control, **kwargs):
        self.freezer.snapshot()  # after a resume or a device move, the values to keep are the current ones

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.freezer.restore()


def build_freeze_callback(model, unit_map_path: str, classes: list[str], mode: Literal["freeze", "train_only"],
                          allow_other_weights: bool = False) -> FreezeUnitsCallback:
    """A TrainerCallback keeping `classes` fixed (freeze) or everything but `classes` fixed (train_only).

    `classes` uses the unit map selectors: esu, euu, ru, cu (= safety-critical top CU), cu_all.
    The callback's `trainable_fraction` is the fraction of the model's parameters that can still change. The map
    must have been scored on these very weights unless `allow_other_weights` (see `UnitMap.check_weights`).
    """
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    if not classes:
        raise SafekeelError("no unit classes given to freeze / train")
    um = unitmap.load(unit_map_path)
    um.check_model(model)
    um.check_weights(model, allow_other_weights)
    return FreezeUnitsCallback(UnitFreezer(model, um.select(classes), mode))
