"""Deterministic train / held-out splits by hashing record ids, so every stage agrees on what is held out."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def _bucket(key: str, seed: int) -> float:
    h = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split(records: Sequence[T], heldout_fraction: float = 1 / 3, seed: int = 0) -> tuple[list[T], list[T]]:
    """(train, heldout): a record is held out when the hash of (seed, id) falls below `heldout_fraction`.

    Stable under adding or removing other records, independent of order.
    """
    train, held = [], []
    for r in records:
        key = getattr(r, "id", None) or (r.get("id") if isinstance(r, dict) else None) or repr(r)
        (held if _bucket(str(key), seed) < heldout_fraction else train).append(r)
    return train, held
