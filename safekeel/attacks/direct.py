"""`direct`: the behavior as a plain user turn (the baseline every other attack is compared with)."""

from __future__ import annotations

from ..data.records import Behavior
from .base import AttackOptions, AttackPrompt, register, user


@register("direct")
def build(b: Behavior, opts: AttackOptions) -> list[AttackPrompt]:
    text = b.prompt if not b.context else f"{b.context}\n\n{b.prompt}"
    return [AttackPrompt(b.id, b.prompt, "direct", user(text), category=b.category)]


@register("prefill")
def build_prefill(b: Behavior, opts: AttackOptions) -> list[AttackPrompt]:
    """The assistant turn already starts compliant ("Sure, here is"): the model must refuse mid-answer."""
    text = b.prompt if not b.context else f"{b.context}\n\n{b.prompt}"
    return [AttackPrompt(b.id, b.prompt, "prefill", user(text), prefill=opts.prefill_text, category=b.category,
                         meta={"prefill": opts.prefill_text})]
