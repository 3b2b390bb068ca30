"""Readers for user data (JSONL, JSON, CSV, a `datasets` folder) that fail with file:line and field.

Line numbers are 1-based physical lines for JSONL, element indices + 1 for a JSON array, and file lines for CSV
(the header is line 1). DeRTa's reference formats are recognised: built training rows `{"prefix","text","safe"}`
(`load_derta_reference`) and test rows `{"question"[, "response"]}` (`load_behaviors`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..errors import DataError
from .records import Behavior, Conversation, SafetyTriple, _text

T = TypeVar("T")


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(str(path), None, None, "file not found") from None
    except IsADirectoryError:
        raise DataError(str(path), None, None, "is a directory, expected a data file") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(str(path), line, None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None


def read_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """Yield (line, object) for every record in a JSONL / JSON / CSV file, or a saved `datasets` folder."""
    path = Path(path)
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        yield from _read_hf(path)
        return
    suffix = path.suffix.lower()
    text = _read_text(path)
    if suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(str(path), e.lineno, None, f"invalid JSON: {e.msg}") from None
        if isinstance(obj, dict):  # {"data": [...]} or {"prompts": [...]} wrappers
            lists = [v for v in obj.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(str(path), None, None, "expected a JSON array of records")
            obj = lists[0]
        if not isinstance(obj, list):
            raise DataError(str(path), None, None, "expected a JSON array of records")
        yield from ((i + 1, row) for i, row in enumerate(obj))
    elif suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            yield reader.line_num, {k: v for k, v in row.items() if k is not None}
    else:  # .jsonl / .ndjson / anything else: one JSON object per line
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(str(path), n, None, f"invalid JSON: {e.msg} (column {e.colno})") from None


def _read_hf(path: Path) -> Iterator[tuple[int, Any]]:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    for i, row in enumerate(ds):
        yield i + 1, dict(row)


def _load(path: str | Path, make: Callable[[dict, str, int], T]) -> list[T]:
    out = [make(row, str(path), line) for line, row in read_rows(path)]
    if not out:
        raise DataError(str(path), None, None, "no records found")
    return out


def _triple(row: Any, path: str, line: int) -> SafetyTriple:
    return SafetyTriple.from_dict(row, path, line)


_INST = re.compile(r"^\s*\[INST\]\s?(?P<prompt>.*?)\s?\[[\\/]INST\]\s?(?P<prefix>.*)$", re.DOTALL)
_END_MARKERS = ("<|end_of_text|>", "<|eot_id|>", "</s>", "<|im_end|>")


@dataclass
class ReferenceExample:
    """One row of DeRTa's reference training file, already built: `safe == "true"` marks an RTO row.

    `prefix` holds "[INST] q [\\INST]" plus, for harmful-prefix rows, the first words of the harmful answer;
    `text` is the trained continuation (the refusal, the helpful answer, or for RTO rows the full harmful answer).
    """

    prompt: str
    harmful_prefix: str
    text: str
    rto: bool


def load_derta_reference(path: str | Path) -> list[ReferenceExample]:
    def make(row: Any, p: str, line: int) -> ReferenceExample:
        if not isinstance(row, dict):
            raise DataError(p, line, None, "expected an object with prefix, text, safe")
        prefix, text = _text(row, "prefix", p, line), _text(row, "text", p, line)
        safe = row.get("safe")
        if str(safe).lower() not in ("true", "false"):
            raise DataError(p, line, "safe", f"expected \"true\" or \"false\", got {safe!r}")
        m = _INST.match(prefix)
        if not m or not m["prompt"].strip():
            raise DataError(p, line, "prefix", "expected \"[INST] question [\\INST]\" (optionally + harmful prefix)")
        for marker in _END_MARKERS:
            text = text.removesuffix(marker)
        return ReferenceExample(prompt=m["prompt"], harmful_prefix=m["prefix"], text=text.lstrip(" "),
                                rto=str(safe).lower() == "true")

    return _load(path, make)


def load_triples(path: str | Path) -> list[SafetyTriple]:
    return _load(path, _triple)


def load_conversations(path: str | Path) -> list[Conversation]:
    return _load(path, Conversation.from_dict)


def load_behaviors(path: str | Path) -> list[Behavior]:
    """Behaviors; DeRTa test rows `{"question"[, "response"]}` map `response` to `target`."""

    def make(row: Any, p: str, line: int) -> Behavior:
        if isinstance(row, dict) and "question" in row and "prompt" not in row and "response" in row:
            row = {**row, "target": row["response"]}
        return Behavior.from_dict(row, p, line)

    return _load(path, make)
