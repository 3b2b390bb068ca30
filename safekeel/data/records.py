"""The three record types every stage exchanges, with validation that names file, line and field."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import DataError

ROLES = ("system", "user", "assistant")


def _text(d: dict, key: str, path: str, line: int | None, required: bool = True) -> str | None:
    if key not in d or d[key] is None:
        if required:
            raise DataError(path, line, key, "missing required field")
        return None
    value = d[key]
    if not isinstance(value, str):
        raise DataError(path, line, key, f"expected a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(path, line, key, "empty string")
    return value


def stable_id(*parts: str) -> str:
    return hashlib.sha1("\x1f".join(parts).encode("utf-8")).hexdigest()[:12]


@dataclass
class SafetyTriple:
    """A harmful prompt with a harmful response (ĥ) and a safe response (r): DeRTa's unit of training data."""

    prompt: str
    harmful_response: str
    safe_response: str
    category: str | None = None
    source: str | None = None
    id: str | None = None

    def __post_init__(self):
        self.id = self.id or stable_id(self.prompt, self.harmful_response)

    @classmethod
    def from_dict(cls, d: Any, path: str = "<data>", line: int | None = None) -> SafetyTriple:
        d = _mapping(d, path, line)
        return cls(prompt=_text(d, "prompt", path, line), harmful_response=_text(d, "harmful_response", path, line),
                   safe_response=_text(d, "safe_response", path, line),
                   category=_text(d, "category", path, line, False), source=_text(d, "source", path, line, False),
                   id=_opt_id(d, path, line))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Conversation:
    """Helpful (benign) chat data in TRL's conversational format.

    `masked_prefix`, optional, is the start of the last assistant turn given as context and not trained: a model's
    own answer up to where it went wrong (a refusal written into a benign answer), so the rest of the turn teaches how
    to go on from there (on-policy contrast, `benchmarks/derta_contrast.py`). A plain SFT reader that ignores it
    trains the prefix too, which is the model's own benign text.
    """

    messages: list[dict[str, str]]
    id: str | None = None
    source: str | None = None
    masked_prefix: str | None = None

    def __post_init__(self):
        self.id = self.id or stable_id(json.dumps(self.messages, sort_keys=True))

    @classmethod
    def from_dict(cls, d: Any, path: str = "<data>", line: int | None = None) -> Conversation:
        d = _mapping(d, path, line)
        if "messages" in d:
            msgs = d["messages"]
            if not isinstance(msgs, list) or not msgs:
                raise DataError(path, line, "messages", "expected a non-empty list of {role, content}")
            out = []
            for i, m in enumerate(msgs):
                where = f"messages[{i}]"
                if not isinstance(m, dict):
                    raise DataError(path, line, where, "expected an object with 'role' and 'content'")
                role = _text(m, "role", path, line)
                if role not in ROLES:
                    raise DataError(path, line, f"{where}.role", f"unknown role {role!r} (use {', '.join(ROLES)})")
                content = m.get("content")
                if not isinstance(content, str):
                    raise DataError(path, line, f"{where}.content", "missing or not a string")
                if not content.strip():
                    raise DataError(path, line, f"{where}.content", "empty string")
                out.append({"role": role, "content": content})
            if out[-1]["role"] != "assistant":
                raise DataError(path, line, "messages", "the last message must be the assistant's answer")
        else:
            out = [{"role": "user", "content": _text(d, "prompt", path, line)},
                   {"role": "assistant", "content": _text(d, "response", path, line)}]
        masked = _text(d, "masked_prefix", path, line, False)
        if masked is not None and (not masked.strip() or not out[-1]["content"].startswith(masked)
                                   or len(out[-1]["content"]) == len(masked)):
            raise DataError(path, line, "masked_prefix", "must be a non-empty proper start of the assistant's answer")
        return cls(messages=out, id=_opt_id(d, path, line), source=_text(d, "source", path, line, False),
                   masked_prefix=masked)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["masked_prefix"] is None:  # the plain TRL conversational row, as before the field existed
            del d["masked_prefix"]
        return d


@dataclass
class Behavior:
    """A harmful behavior to evaluate; `target` is a known harmful response for prefix/prefill attacks."""

    prompt: str
    category: str | None = None
    source: str | None = None
    context: str | None = None
    target: str | None = None
    id: str | None = None

    def __post_init__(self):
        self.id = self.id or stable_id(self.prompt, self.context or "")

    @classmethod
    def from_dict(cls, d: Any, path: str = "<data>", line: int | None = None) -> Behavior:
        d = _mapping(d, path, line)
        key = "prompt" if "prompt" in d or "question" not in d else "question"  # DeRTa test format: question
        return cls(prompt=_text(d, key, path, line), category=_text(d, "category", path, line, False),
                   source=_text(d, "source", path, line, False), context=_text(d, "context", path, line, False),
                   target=_text(d, "target", path, line, False), id=_opt_id(d, path, line))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LabelledAnswer:
    """A (request, answer) pair with a human (or guideline) verdict: what judges are calibrated against.

    `unsafe` is the binary label (None where the set labels refusal only); `score` keeps the raw human harm score
    (mean of raters, 0-1) so the cut can be studied; `attack_prompt` is the full prompt when the request was wrapped
    in an attack; `group` ties every row of one request together, so cross-validation never splits a request.
    """

    request: str
    response: str
    unsafe: bool | None
    refusal: bool | None = None
    score: float | None = None
    raters: int = 1
    category: str | None = None
    source: str | None = None
    attack_prompt: str | None = None
    condition: str | None = None  # e.g. "harmful + apology", or the attack that wrapped the request
    group: str | None = None
    id: str | None = field(default=None)

    def __post_init__(self):
        self.id = self.id or stable_id(self.request, self.response, self.attack_prompt or "")
        self.group = self.group or stable_id(self.request)

    def item(self, bare: bool = True) -> dict:
        """The judge item: the bare request, or only the full attack prompt (as a judge of a wrapped run sees it)."""
        if bare or not self.attack_prompt:
            return {"behavior": self.request, "response": self.response, "prompt_text": self.attack_prompt}
        return {"behavior": self.attack_prompt, "response": self.response, "prompt_text": self.attack_prompt}


@dataclass
class RefusalLabel:
    """A response with a human label: was it a refusal? (PyRIT's refusal-scorer evaluation data.)"""

    prompt: str
    response: str
    refusal: bool
    source: str | None = None
    id: str | None = field(default=None)

    def __post_init__(self):
        self.id = self.id or stable_id(self.prompt, self.response)


def _mapping(d: Any, path: str, line: int | None) -> dict:
    if not isinstance(d, dict):
        raise DataError(path, line, None, f"expected an object, got {type(d).__name__}")
    return d


def _opt_id(d: dict, path: str, line: int | None) -> str | None:
    v = d.get("id")
    if v is None:
        return None
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise DataError(path, line, "id", f"expected a string or integer, got {type(v).__name__}")
    return str(v)
