"""The split registry: one fixed train / val / test assignment for every request safekeel knows, by its text.

A request's split is a hash of its normalised text (`normalise`: Unicode NFKC, case-folded, punctuation and
whitespace collapsed), so the same request gets the same split in every source, every stage and every run, whatever
its id, its order or the other records beside it: the judge's label sets, the triples DeRTa trains on, the prompts
units are calibrated on and the behaviors evaluated all agree on what is held out.

- `test` (1/3): evaluation only. No training, tuning or calibration artefact may contain a test request, or a
  near-duplicate of one (word-set Jaccard >= `NEAR_DUP` between normalised requests of >= 4 words: AdvBench,
  HarmBench and Do-Not-Answer share paraphrases). `tests/test_splits.py` walks every artefact.
- `val` (2/15, a fifth of the rest): choosing defaults and thresholds.
- `train` (the rest): fitting. A train or val request that is a near-duplicate of a test request of any registered
  source is quarantined: it belongs to no split a training stage can draw (`select(..., "train")` drops it).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import TypeVar

T = TypeVar("T")

SPLITS = ("train", "val", "test")
TEST_SHARE, VAL_SHARE = 1 / 3, 2 / 15
NEAR_DUP = 0.7  # word-set Jaccard at or above which two requests count as the same request
MIN_WORDS = 4  # shorter requests only match exactly (few words make Jaccard meaningless)
SALT = "safekeel-split/1"
# Sources whose requests form the registry's test index (the near-duplicate check runs against all of them).
REGISTERED = ("uncensorbench", "harmbench", "advbench", "strongreject", "donotanswer", "benign", "benign-scary",
              "benign-scary-more", "pyrit-harm", "pyrit-refusal")
ALIASES = {"heldout": "test", "held-out": "test"}


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


def bucket(text: str) -> float:
    h = hashlib.sha256(f"{SALT}\x1f{normalise(text)}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_of(text: str) -> str:
    """'train', 'val' or 'test' for one request text (by its hash alone; see `select` for quarantine)."""
    b = bucket(text)
    return "test" if b < TEST_SHARE else "val" if b < TEST_SHARE + VAL_SHARE else "train"


def request_of(record) -> str:
    """The request text of any record safekeel exchanges: triples, behaviors, labelled answers, prompt dicts."""
    for attr in ("prompt", "request", "question", "behavior"):
        v = record.get(attr) if isinstance(record, dict) else getattr(record, attr, None)
        if isinstance(v, str) and v.strip():
            return v
    for key in ("messages", "prompt"):  # a chat, or a DeRTa row's prompt turns (data/derta.py)
        if isinstance(record, dict) and isinstance(record.get(key), list):
            user = next((m.get("content") for m in record[key] if isinstance(m, dict) and m.get("role") == "user"),
                        None)
            if isinstance(user, str):
                return user
    raise TypeError(f"no request text in {type(record).__name__} record")


def words(text: str) -> frozenset[str]:
    return frozenset(normalise(text).split())


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class RequestIndex:
    """Normalised requests with an inverted word index: exact and near-duplicate membership in O(candidates)."""

    def __init__(self, texts: Iterable[str] = ()):
        self.exact: set[str] = set()
        self.sets: list[frozenset] = []
        self.by_word: dict[str, list[int]] = {}
        for t in texts:
            self.add(t)

    def add(self, text: str) -> None:
        norm = normalise(text)
        if norm in self.exact:
            return
        self.exact.add(norm)
        ws = frozenset(norm.split())
        if len(ws) >= MIN_WORDS:
            self.sets.append(ws)
            for w in ws:
                self.by_word.setdefault(w, []).append(len(self.sets) - 1)

    def __len__(self) -> int:
        return len(self.exact)

    def match(self, text: str) -> str | None:
        """'exact', 'near' or None."""
        norm = normalise(text)
        if norm in self.exact:
            return "exact"
        ws = frozenset(norm.split())
        if len(ws) < MIN_WORDS:
            return None
        # a set with Jaccard >= t shares at least t * |ws| words with ws: count shared words per candidate
        shared: dict[int, int] = {}
        for w in ws:
            for i in self.by_word.get(w, ()):
                shared[i] = shared.get(i, 0) + 1
        need = NEAR_DUP * len(ws)
        for i, n in shared.items():
            if n >= need and jaccard(ws, self.sets[i]) >= NEAR_DUP:
                return "near"
        return None


def registered_requests(name: str) -> list[str]:
    """Every request text of one registered source (pulled on first use, like any source)."""
    from . import bundled
    from .eval_sets import OWN_SETS

    if name == "uncensorbench":
        return [t.prompt for t in bundled.uncensorbench_triples()]
    if name in OWN_SETS:
        return [r["prompt"] for r in bundled.own_set(name)]
    if name == "pyrit-harm":
        return [r.request for r in bundled.harm_labels()]
    if name == "pyrit-refusal":
        return [r.prompt for r in bundled.refusal_labels()]
    return [b.prompt for b in bundled.load_behavior_set(name)]


@lru_cache(maxsize=1)
def test_index() -> RequestIndex:
    """The test requests of every registered source: what no training artefact may contain."""
    return RequestIndex(t for name in REGISTERED for t in registered_requests(name) if split_of(t) == "test")


def canonical(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in SPLITS + ("all",):
        raise ValueError(f"unknown split '{name}' (train, val, test; 'heldout' = test; or all)")
    return name


def select(records: Sequence[T], *parts: str, index: RequestIndex | None = None) -> list[T]:
    """The records of the named splits, in their order. Drawing `train` or `val` drops every record that is a
    near-duplicate of a registered test request (`index`, default: the registry's), so a paraphrase of a test
    request never reaches a training stage."""
    wanted = {canonical(p) for p in parts}
    if "all" in wanted:
        return list(records)
    out = []
    for r in records:
        text = request_of(r)
        s = split_of(text)
        if s not in wanted:
            continue
        if s != "test" and (index if index is not None else test_index()).match(text):
            continue  # quarantined: a paraphrase of a test request
        out.append(r)
    return out


def train_test(records: Sequence[T], index: RequestIndex | None = None) -> tuple[list[T], list[T]]:
    """(train + val, test): what a stage may learn from and what it is evaluated on."""
    return select(records, "train", "val", index=index), select(records, "test")
