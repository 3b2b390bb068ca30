"""Qi et al.'s token-wise constrained objective ("Safety Alignment Should Be Made More Than Just a Few Tokens Deep").

Per target token t with Δ_t = log p_θ(y_t | ·) - log p_ref(y_t | ·) against a frozen reference (the aligned model the
run starts from):

    loss_t = -(2 / β_t) · log σ(β_t · Δ_t)

Its gradient is -2 (1 - σ(β_t Δ_t)) ∇ log p_θ(y_t): plain cross-entropy while θ is no likelier than the reference
(Δ ≤ 0, weight ≥ 1), fading once θ has moved past it. A large β on the first tokens of an answer stops training from
pushing those tokens far from the reference (where a shallow alignment lives); a small β later leaves them free.
Paper values: β_1 = 0.5, β_2..5 = 2, β_t>5 = 0.1. `betas[i]` is β at answer position i; the last value holds for all
later positions. Position t counts the target tokens of each trained segment (an assistant answer, or the recovery
after a masked harmful prefix), computed from the labels, so packing and padding need no extra plumbing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

QI_BETAS = [0.5, 2.0, 2.0, 2.0, 2.0, 0.1]


def segment_positions(mask: torch.Tensor) -> torch.Tensor:
    """For a flat bool mask of targets, each target's index within its run of consecutive targets (0, 1, ...)."""
    idx = torch.arange(mask.numel(), device=mask.device)
    prev = F.pad(mask[:-1], (1, 0), value=False)
    starts = torch.where(mask & ~prev, idx, torch.zeros_like(idx))
    return idx - torch.cummax(starts, dim=0).values


def constrained_token_loss(logp: torch.Tensor, logp_ref: torch.Tensor, mask: torch.Tensor,
                           betas: list[float] = QI_BETAS) -> torch.Tensor:
    """Per-token loss (flat, zero where `mask` is False); `logp`, `logp_ref` are the targets' log-probabilities."""
    pos = segment_positions(mask).clamp(max=len(betas) - 1)
    beta = torch.as_tensor(betas, dtype=logp.dtype, device=logp.device)[pos]
    loss = -(2.0 / beta) * F.logsigmoid(beta * (logp - logp_ref.detach()))
    return torch.where(mask, loss, torch.zeros_like(loss))
