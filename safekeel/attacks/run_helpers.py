"""Behavior-set loading shared by `safekeel attack` and `safekeel eval` (`name:test` etc. = a registry split)."""

from __future__ import annotations

from ..errors import SafekeelError


def load_behaviors(spec: str, n: int = 0):
    """`name` or `name:part`, part one of train, val, test (= heldout) of `safekeel.data.splits`; first `n`."""
    from ..data.bundled import load_behavior_set
    from ..data.splits import ALIASES, SPLITS, select

    name, _, part = spec.partition(":")
    if part and part not in SPLITS + tuple(ALIASES):
        raise SafekeelError(f"behavior set '{spec}': suffix must be :train, :val, :test or :heldout")
    rows = load_behavior_set(name)
    if part:
        rows = select(rows, part)
    return rows[:n] if n and n > 0 else rows
