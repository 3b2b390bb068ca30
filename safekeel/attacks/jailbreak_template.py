"""`jailbreak_template`: one in-the-wild jailbreak prompt per behavior, chosen with a seeded RNG.

Templates with a slot for the question ("[INSERT PROMPT HERE]", "[PROMPT]", "<QUERY>", ...) get the question
there; the others are role-play preambles, so the question is appended after them.
"""

from __future__ import annotations

import re

from ..data.records import Behavior
from .base import AttackOptions, AttackPrompt, register, seeded_rng

SLOT = re.compile(r"\[INSERT PROMPT HERE\]|\[PROMPT\]|\[INPUT\]|<QUERY>|\{prompt\}|\{query\}|\[QUESTION\]",
                  re.IGNORECASE)
_cache: list[str] | None = None


def templates(opts: AttackOptions) -> list[str]:
    global _cache
    if opts.templates is not None:
        return opts.templates
    if _cache is None:
        from ..data.bundled import jailbreak_templates

        _cache = jailbreak_templates()
    return _cache


def fill(template: str, question: str) -> str:
    if SLOT.search(template):
        return SLOT.sub(lambda _: question, template)
    return f"{template.rstrip()}\n\n{question}"


@register("jailbreak_template")
def build(b: Behavior, opts: AttackOptions) -> list[AttackPrompt]:
    pool = templates(opts)
    if opts.template_max_chars:
        pool = [t for t in pool if len(t) <= opts.template_max_chars] or pool
    idx = seeded_rng(opts.seed, b.id, "jailbreak_template").randrange(len(pool))
    return [AttackPrompt(b.id, b.prompt, "jailbreak_template", [{"role": "user", "content": fill(pool[idx], b.prompt)}],
                         category=b.category, meta={"template": idx, "slot": bool(SLOT.search(pool[idx])),
                               "max_chars": opts.template_max_chars})]
