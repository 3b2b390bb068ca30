"""Per-unit importance scores: ssah, wanda (forward hooks on B's input) and snip (|W ⊙ ∇W L|, needs backward).

Scoring state is O(units): per block a float64 running mean / M2 (Chan's parallel update of Welford's variance) and
a sum of squares of B's input channels over response tokens. `ssah` and `wanda` run the decoder stack only (no LM
head, no logits): the statistics live inside the layers, so that is all the compute they need.

  ssah : I_j = Var_tokens(X_j) * ||W_B[:, j]||^2
  wanda: I_j = sum_i |W_B[i, j]| * ||X_j||_2             (Wanda's |W|·||X|| aggregated over the unit's column)
  snip : I_j = sum_examples sum_{w in unit j} |w * dL_example/dw|   (L = mean CE on the example's response tokens).
         |.| is taken per example, as SNIP defines it: inside one batch loss the gradients of different examples
         cancel (`accumulate="batch"` keeps that cheaper variant). Unit weights: MLP = gate/up rows j + down column
         j; attention = o_proj column j + the v_proj row feeding channel j. Under GQA that row is read by the
         channels of `group` query heads, so each gets 1/group of its score and a v weight counts once in total
         (`v_share="full"` adds it whole to every reader, inflating attention units against MLP units).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .. import device as devices
from .calibration import Batch
from .discover import UnitModule, find_units

METHODS = ("ssah", "wanda", "snip")


class ChannelStats:
    """Streaming count / mean / M2 / sum of squares of one block's input channels (float64, O(units))."""

    def __init__(self, n: int):
        self.count = 0
        self.mean = torch.zeros(n, dtype=torch.float64)
        self.m2 = torch.zeros(n, dtype=torch.float64)
        self.sumsq = torch.zeros(n, dtype=torch.float64)

    def update(self, x: torch.Tensor) -> None:
        """x: (tokens, n)."""
        nb = x.shape[0]
        if nb == 0:
            return
        x = x.detach().to("cpu", torch.float64)
        mean_b = x.mean(0)
        m2_b = ((x - mean_b) ** 2).sum(0)
        total = self.count + nb
        delta = mean_b - self.mean
        self.mean += delta * (nb / total)
        self.m2 += m2_b + delta**2 * (self.count * nb / total)
        self.sumsq += (x**2).sum(0)
        self.count = total

    @property
    def variance(self) -> torch.Tensor:
        return self.m2 / max(self.count, 1)

    @property
    def norm(self) -> torch.Tensor:
        return self.sumsq.sqrt()


def _base_forward(model):
    """The decoder stack without the LM head (falls back to the full model)."""
    get = getattr(model, "get_decoder", None)
    dec = get() if callable(get) else None
    return dec if dec is not None and dec is not model else model


@torch.no_grad()
def activation_stats(model, batches: Iterable[Batch], units: list[UnitModule] | None = None) -> dict[str, ChannelStats]:
    """Statistics of every block's B input at the positions that predict response tokens (`predicting_mask`: the
    last prompt position included, as in snip's loss), one batched forward per batch."""
    units = units or find_units(model)
    stats = {u.key: ChannelStats(u.n_units) for u in units}
    current: dict[str, torch.Tensor] = {}
    handles = []
    for u in units:
        def hook(mod, args, key=u.key):
            x = args[0]
            stats[key].update(x[current["mask"]])
        handles.append(u.output.register_forward_pre_hook(hook))
    device = devices.input_device(model)
    forward = _base_forward(model)
    try:
        for b in batches:
            current["mask"] = b.predicting_mask.to(device)
            forward(input_ids=b.input_ids.to(device), attention_mask=b.attention_mask.to(device), use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return stats


def ssah_from_stats(units: list[UnitModule], stats: dict[str, ChannelStats]) -> dict[str, torch.Tensor]:
    out = {}
    for u in units:
        col_sq = u.output.weight.detach().to("cpu", torch.float64).pow(2).sum(0)
        out[u.key] = (stats[u.key].variance * col_sq).float()
    return out


def wanda_from_stats(units: list[UnitModule], stats: dict[str, ChannelStats]) -> dict[str, torch.Tensor]:
    out = {}
    for u in units:
        col_abs = u.output.weight.detach().to("cpu", torch.float64).abs().sum(0)
        out[u.key] = (col_abs * stats[u.key].norm).float()
    return out


def unit_weight_sums(u: UnitModule, per_weight: dict[int, torch.Tensor], v_share: str = "split") -> torch.Tensor:
    """Sum a per-weight quantity (keyed by id(weight)) over each unit's weights; O(units) result.

    A GQA v row shared by the channels of several query heads is divided among them (`v_share="split"`) or added
    whole to each (`"full"`).
    """
    n = u.n_units
    total = per_weight[id(u.output.weight)].sum(0).to(torch.float64).cpu()
    for a, offsets in zip(u.inputs, u.input_offsets, strict=True):
        rows = per_weight[id(a.weight)].sum(1).to(torch.float64).cpu()
        for off in offsets:
            total += rows[off:off + n]
        if a.bias is not None and id(a.bias) in per_weight:
            b = per_weight[id(a.bias)].to(torch.float64).cpu()
            for off in offsets:
                total += b[off:off + n]
    if u.v_proj is not None:
        readers = u.n_heads // u.n_kv_heads if v_share == "split" else 1
        v = per_weight[id(u.v_proj.weight)].sum(1).to(torch.float64).cpu()
        if u.v_proj.bias is not None and id(u.v_proj.bias) in per_weight:
            v = v + per_weight[id(u.v_proj.bias)].to(torch.float64).cpu()
        total += v[u.v_rows(torch.arange(n))] / readers
    return total


def _examples(batches: Iterable[Batch]) -> Iterable[Batch]:
    """Every row of every batch as a batch of one, padding removed."""
    for b in batches:
        for r in range(b.input_ids.shape[0]):
            keep = b.attention_mask[r].bool()
            yield Batch(*(t[r][keep][None] for t in (b.input_ids, b.attention_mask, b.response_mask, b.labels)))


def snip_scores(model, batches: Iterable[Batch], units: list[UnitModule] | None = None, accumulate: str = "example",
                v_share: str = "split") -> dict[str, torch.Tensor]:
    """Accumulate |W ⊙ ∇W L| per example (or per batch), summed over each unit's weights (one backward each)."""
    if accumulate not in ("example", "batch") or v_share not in ("split", "full"):
        raise ValueError(f"accumulate must be example|batch, v_share split|full (got {accumulate!r}, {v_share!r})")
    units = units or find_units(model)
    params = {}
    for u in units:
        for lin in [u.output, *u.inputs, *([u.v_proj] if u.v_proj is not None else [])]:
            for p in (lin.weight, lin.bias):
                if p is not None:
                    params[id(p)] = p
    saved_flags = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in params)
    acc = {u.key: torch.zeros(u.n_units, dtype=torch.float64) for u in units}
    device = devices.input_device(model)
    try:
        for b in _examples(batches) if accumulate == "example" else batches:
            model.zero_grad(set_to_none=True)
            out = model(input_ids=b.input_ids.to(device), attention_mask=b.attention_mask.to(device),
                        labels=b.labels.to(device), use_cache=False)
            out.loss.backward()
            with torch.no_grad():
                per_weight = {k: (p.detach() * p.grad).abs() for k, p in params.items() if p.grad is not None}
                for u in units:
                    acc[u.key] += unit_weight_sums(u, per_weight, v_share)
            del per_weight
    finally:
        model.zero_grad(set_to_none=True)
        for n, p in model.named_parameters():
            p.requires_grad_(saved_flags[n])
    return {k: v.float() for k, v in acc.items()}


def score(model, batches: list[Batch], method: str, accumulate: str = "example", v_share: str = "split"
          ) -> dict[str, torch.Tensor]:
    """Per-block unit scores (float32 tensors of length n_units) for one calibration set (`snip` options: see
    `snip_scores`)."""
    units = find_units(model)
    if method == "snip":
        return snip_scores(model, batches, units, accumulate, v_share)
    stats = activation_stats(model, batches, units)
    return ssah_from_stats(units, stats) if method == "ssah" else wanda_from_stats(units, stats)
