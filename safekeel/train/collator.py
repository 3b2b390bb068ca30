"""Batching for DeRTa rows: padding-free packing (or padding), and per-step sampling of RTO targets.

Packing: the examples of a batch are concatenated into one row with `position_ids` restarting at 0 for each
example and no attention mask; transformers detects the packed layout from the position ids and builds a
block-diagonal causal mask, so no compute is spent on pad tokens. The first label of every packed example is -100
(it would be predicted from the previous example). The model must run without a KV cache (`use_cache=False`, as
in training), otherwise transformers skips the packed-mask detection. `pack=False` gives classic right padding + attention mask.

`rto_keep_fraction` < 1 keeps a fresh random subset of each RTO row's targets every time the row is batched (the
reference full-FT runs trained ~5% of RTO positions per step). `rto_schedule="front"` always keeps the first
position (the turn start, where a direct request is decided) and draws the others with weight 1 / (1 + t), so the
first positions of an answer are trained more often than later ones; "uniform" draws them all alike. The subset comes from a generator seeded by
(seed, epoch, example index), not from the global RNG, so a resumed run draws exactly what an uninterrupted run draws.
"""

from __future__ import annotations

import hashlib

import torch

from ..data.tokenize import IGNORE, RTO


class DertaCollator:
    def __init__(self, pad_id: int, rto_keep_fraction: float = 1.0, seed: int = 0, pack: bool = True,
                 pad_to_multiple_of: int | None = None, rto_schedule: str = "uniform"):
        if not 0.0 < rto_keep_fraction <= 1.0:
            raise ValueError("rto_keep_fraction must be in (0, 1]")
        if rto_schedule not in ("uniform", "front"):
            raise ValueError(f"rto_schedule must be 'uniform' or 'front', got {rto_schedule!r}")
        self.schedule = rto_schedule
        self.pad_id, self.keep, self.seed, self.pack = pad_id, rto_keep_fraction, seed, pack
        self.pad_to_multiple_of = pad_to_multiple_of
        self.epoch = 0  # set by the trainer at each epoch start

    def _generator(self, idx: int) -> torch.Generator:
        h = hashlib.sha256(f"{self.seed}:{self.epoch}:{idx}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(h[:8], "big") >> 1)

    def sample_rto(self, labels: torch.Tensor, kinds: torch.Tensor, idx: int) -> torch.Tensor:
        """Labels with only a random `rto_keep_fraction` of the RTO targets kept (at least one)."""
        if self.keep >= 1.0:
            return labels
        pos = (kinds == RTO).nonzero().flatten()
        if len(pos) == 0:
            return labels
        n_keep = max(1, round(self.keep * len(pos)))
        g = self._generator(idx)
        if self.schedule == "front":  # t = 0 always, later positions with weight 1 / (1 + t)
            rest = torch.multinomial(1.0 / torch.arange(2, len(pos) + 1, dtype=torch.float), n_keep - 1,
                                     generator=g) + 1 if n_keep > 1 else torch.zeros(0, dtype=torch.long)
            kept = torch.zeros(len(pos), dtype=torch.bool)
            kept[0], kept[rest] = True, True
            drop = pos[~kept]
        else:
            order = torch.randperm(len(pos), generator=g)
            drop = pos[order[n_keep:]]
        labels = labels.clone()
        labels[drop] = IGNORE
        return labels

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        seqs = []
        for n, f in enumerate(features):
            ids = torch.as_tensor(f["input_ids"], dtype=torch.long)
            kinds = torch.as_tensor(f["kinds"], dtype=torch.long)
            labels = self.sample_rto(torch.as_tensor(f["labels"], dtype=torch.long), kinds, int(f.get("idx", n)))
            kinds = torch.where(labels == IGNORE, torch.zeros_like(kinds), kinds)
            seqs.append((ids, labels, kinds))
        return self._packed(seqs) if self.pack else self._padded(seqs)

    def _packed(self, seqs) -> dict[str, torch.Tensor]:
        ids = torch.cat([s[0] for s in seqs])
        labels = torch.cat([torch.cat([torch.tensor([IGNORE]), s[1][1:]]) for s in seqs])
        kinds = torch.cat([torch.cat([torch.tensor([0]), s[2][1:]]) for s in seqs])
        pos = torch.cat([torch.arange(len(s[0])) for s in seqs])
        return {"input_ids": ids[None], "labels": labels[None], "kinds": kinds[None], "position_ids": pos[None]}

    def _padded(self, seqs) -> dict[str, torch.Tensor]:
        width = max(len(s[0]) for s in seqs)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        out = {"input_ids": torch.full((len(seqs), width), self.pad_id), "labels": torch.full((len(seqs), width), IGNORE),
               "kinds": torch.zeros((len(seqs), width), dtype=torch.long),
               "attention_mask": torch.zeros((len(seqs), width), dtype=torch.long)}
        for row, (ids, labels, kinds) in enumerate(seqs):
            n = len(ids)
            out["input_ids"][row, :n], out["labels"][row, :n], out["kinds"][row, :n] = ids, labels, kinds
            out["attention_mask"][row, :n] = 1
        return out


class PadToLongestCollator:
    """The common baseline: right-pad every example to the batch's longest (for the benchmark and plain SFT)."""

    def __init__(self, pad_id: int):
        self.inner = DertaCollator(pad_id, pack=False)

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        batch = self.inner(features)
        batch.pop("kinds")
        return batch
