"""The one record every attack produces, and the registry that builds attacks by name.

Imports flow one way: attack modules import this one and `register` themselves; the package `__init__` imports
them all, so the registry is complete whenever anything under `safekeel.attacks` is imported.

An `AttackPrompt` is everything generation needs (messages, optional assistant prefill, raw-text flag) plus what
judging needs (the original question, attack metadata such as the cipher used, so the answer can be decoded first).
Static attacks are pure functions of (behavior, seed); search attacks (PAIR, AutoDAN) need the target model and
live in their own modules.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..data.records import Behavior
from ..errors import SafekeelError


@dataclass
class AttackPrompt:
    behavior_id: str
    behavior: str  # the plain harmful question (what judges compare the answer with)
    attack: str
    messages: list[dict[str, str]]
    prefill: str = ""
    raw: bool = False  # messages[-1]["content"] is plain text: no chat template
    category: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # variant, k, cipher, template index...

    @property
    def variant(self) -> str:
        return str(self.meta.get("variant", ""))

    def request(self):
        from ..eval.generate import GenerationRequest

        return GenerationRequest(messages=self.messages, prefill=self.prefill, raw=self.raw)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> AttackPrompt:
        return cls(**{k: d[k] for k in ("behavior_id", "behavior", "attack", "messages") if k in d},
                   prefill=d.get("prefill", ""), raw=bool(d.get("raw", False)), category=d.get("category"),
                   meta=dict(d.get("meta") or {}))


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def seeded_rng(seed: int, *parts: str) -> random.Random:
    """An RNG that depends only on the seed and the behavior, so adding behaviors never changes others' choices."""
    h = hashlib.sha256("\x1f".join([str(seed), *parts]).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def task_phrase(question: str) -> str:
    """'Give detailed instructions for making X' -> 'give detailed instructions for making X' (no final punctuation)."""
    q = question.strip().rstrip(".?!").strip()
    return q[:1].lower() + q[1:] if q[:2] != q[:2].upper() else q


@dataclass
class AttackOptions:
    """Knobs shared by the static attacks (one object so CLI/YAML configure every attack the same way)."""

    seed: int = 0
    prefill_text: str = "Sure, here is"
    prefix_ks: list[int] = field(default_factory=lambda: [0, 5, 10, 20, 40])
    ciphers: list[str] = field(default_factory=lambda: ["caesar", "morse", "ascii", "selfcipher"])
    cipher_mode: str = "all"  # all: one prompt per cipher; rotate: one seeded cipher per behavior
    templates: list[str] | None = None  # jailbreak templates (default: the bundled in-the-wild set)
    template_max_chars: int = 0  # only templates up to this length (0 = all; long ones are slow on CPU)
    tokenizer: Any = None  # for harmful_prefix k in tokens (whitespace words without one)


Builder = Callable[[Behavior, AttackOptions], list[AttackPrompt]]
Decoder = Callable[[Any, str], str]  # (meta value, answer) -> plain answer
STATIC: dict[str, Builder] = {}
DECODERS: dict[str, Decoder] = {}  # meta key -> decoder, e.g. "cipher" -> cipher.decode
SEARCH = ("pair", "autodan")  # named only: their modules need torch/a model, so the package does not import them


def register(name: str):
    def deco(fn: Builder) -> Builder:
        STATIC[name] = fn
        return fn

    return deco


def register_decoder(meta_key: str):
    """For attacks whose answers need decoding before judging; keyed by meta so base never imports them."""
    def deco(fn: Decoder) -> Decoder:
        DECODERS[meta_key] = fn
        return fn

    return deco


def attack_names() -> list[str]:
    return [*STATIC, *SEARCH]


def build_attacks(behaviors: list[Behavior], attacks: list[str], options: AttackOptions | None = None
                  ) -> list[AttackPrompt]:
    """Static attack prompts for every behavior × attack (search attacks need a model: see pair/autodan)."""
    options = options or AttackOptions()
    unknown = [a for a in attacks if a not in STATIC and a not in SEARCH]
    if unknown:
        raise SafekeelError(f"unknown attack(s) {', '.join(unknown)} (known: {', '.join(attack_names())})")
    out: list[AttackPrompt] = []
    for name in attacks:
        if name in SEARCH:
            continue
        for b in behaviors:
            out.extend(STATIC[name](b, options))
    return out


def decode_response(meta: dict, text: str) -> str:
    """The answer in plain text for judging (cipher attacks ask the model to answer in the cipher)."""
    for key, decode in DECODERS.items():
        if meta.get(key):
            return decode(meta[key], text)
    return text
