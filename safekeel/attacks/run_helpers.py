"""Behavior-set loading shared by `safekeel attack` and `safekeel eval` (`name:heldout` = the shared split)."""

from __future__ import annotations

from ..errors import SafekeelError


def load_behaviors(spec: str, n: int = 0):
    from ..data.bundled import load_behavior_set
    from ..data.splits import split

    name, _, part = spec.partition(":")
    if part and part not in ("heldout", "train"):
        raise SafekeelError(f"behavior set '{spec}': suffix must be :heldout or :train")
    rows = load_behavior_set(name)
    if part:
        train, held = split(rows, heldout_fraction=1 / 3, seed=0)
        rows = held if part == "heldout" else train
    return rows[:n] if n and n > 0 else rows
