"""Prune units: reversibly (forward pre-hooks that zero B's input channels) or permanently (zeroed weights).

Zeroing input channel j of B is exactly removing unit j's contribution, so hooks and exported weights give the same
logits. Export zeroes B's column j, and for MLP units also the gate/up rows j (the whole unit). For attention the
shared v_proj rows are left alone (under GQA one v row feeds several o_proj channels); the o_proj column alone
already removes the channel. Controls: `random_like` draws the same number of units per block at random,
`sample_within` draws the same number from a given class (e.g. as many RU as there are ESU).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from .discover import find_units


def _check(model, selection: dict[str, torch.Tensor]):
    units = {u.key: u for u in find_units(model)}
    unknown = set(selection) - set(units)
    if unknown:
        from ..errors import SafekeelError

        raise SafekeelError(f"selection names blocks this model lacks: {sorted(unknown)[:4]}")
    return units


@contextmanager
def pruned(model, selection: dict[str, torch.Tensor]):
    """Inside the block the selected units output zero; on exit the model is unchanged."""
    units = _check(model, selection)
    handles = []
    for key, mask in selection.items():
        if not bool(mask.any()):
            continue
        lin = units[key].output
        keep = (~mask.bool()).to(device=lin.weight.device, dtype=lin.weight.dtype)

        def hook(mod, args, keep=keep):
            return (args[0] * keep,) + tuple(args[1:])
        handles.append(lin.register_forward_pre_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def zero_units(model, selection: dict[str, torch.Tensor]) -> int:
    """Zero the selected units' weights in place (B columns; MLP gate/up rows); returns the number of units."""
    units = _check(model, selection)
    n = 0
    for key, mask in selection.items():
        u = units[key]
        idx = mask.bool().nonzero().flatten().to(u.output.weight.device)
        if idx.numel() == 0:
            continue
        u.output.weight[:, idx] = 0
        for a, offsets in zip(u.inputs, u.input_offsets, strict=True):
            for off in offsets:
                a.weight[idx + off] = 0
                if a.bias is not None:
                    a.bias[idx + off] = 0
        n += idx.numel()
    return n


def count(selection: dict[str, torch.Tensor]) -> int:
    return int(sum(int(m.sum()) for m in selection.values()))


def random_like(selection: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """As many units per block as `selection`, drawn uniformly from all units of that block."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, m in selection.items():
        r = torch.zeros_like(m, dtype=torch.bool)
        r[torch.randperm(m.numel(), generator=g)[:int(m.sum())]] = True
        out[k] = r
    return out


def sample_within(pool: dict[str, torch.Tensor], like: dict[str, torch.Tensor], seed: int = 0
                  ) -> dict[str, torch.Tensor]:
    """Per block, as many units from `pool` as `like` selects (all of the pool where it is smaller)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, p in pool.items():
        idx = p.bool().nonzero().flatten()
        take = min(int(like[k].sum()) if k in like else 0, idx.numel())
        r = torch.zeros_like(p, dtype=torch.bool)
        r[idx[torch.randperm(idx.numel(), generator=g)[:take]]] = True
        out[k] = r
    return out
