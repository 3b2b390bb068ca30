"""DeRTa example builders: turn safety triples + helpful chats into the rows of one training recipe.

A row is text, not tokens, so any chat template can tokenize it later (`safekeel.data.tokenize`). Kinds:
- `helpful`: `{"messages"}`, a helpful conversation, every assistant turn trained (with `"raw": true` a plain
  document, like the raw prefix rows below).
- `safe`: `{"messages"}`, q -> r (plain refusal SFT).
- `prefix`: `{"prompt", "harmful_prefix", "safe_response"}`, harmful-prefix MLE: the assistant turn is
  ĥ[:k] + " " + r, and ĥ[:k] is never trained. With `"raw": true` the row is a plain document instead of a chat
  (request, blank line, answer; `tokenize.raw_document`): what a completion attack feeds, where an RTO-trained model
  with no raw refusal to continue writes its refusal token over and over ("I will I I I").
- `rto`: `{"prompt", "harmful_response", "refusal"}`, Reinforced Transition Optimization: every position of ĥ
  targets the refusal token (labels are built by the tokenizer step); `refusal` is a string whose first
  assistant-turn token is it.
The two DeRTa kinds have no `messages` on purpose: a plain SFT reader (TRL's SFTTrainer reads `messages`) would
train ĥ as a target. `tokenize.as_chat` turns them into chats for the DeRTa tokenizer; `train/sft.py` is the
TRL path.

Prefix lengths come from a per-triple RNG seeded by (seed, triple id, copy), so the same inputs and seed give the same
file, and adding a triple does not change the others.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Sequence

from .records import Conversation, SafetyTriple
from .tokenize import as_chat, derive_refusal, join_prefix, raw_document

RECIPES = {
    # recipe: safety kinds built per triple (helpful data is always included)
    "derta": ("prefix", "rto"),
    "vanilla": ("safe", "safe"),
    "prefix_only": ("prefix", "prefix"),
    "rto_only": ("safe", "rto"),
}
KINDS = ("helpful", "safe", "prefix", "rto")
# compliant openers (what a prefill attack writes); helpful rows that open the same way go on helpfully, so the
# model learns "an opener, then whatever the request deserves", not "an opener, then refuse". The evaluation's
# prefill ("Sure, here is") is left out on purpose: its refusal rate measures transfer, not a memorised string.
OPENERS = ("Sure! Below is", "Sure, here's how to do it:", "Of course! Here are the steps:", "Certainly. Here is",
           "Absolutely, here you go:", "Sure thing. Step 1:", "Here is what you asked for:", "Okay, here's a guide:")
# first-person commitments: a completion attack's document says "As requested, I will ..." and the model echoes it
# ("I will ... I I I"); these teach that a refusal may follow one's own "I will". They start with the refusal token
# itself, so they go on prefix and helpful rows only: RTO on them would train "I" -> " I", the collapse's own loop
FIRST_PERSON = ("I will explain how this works.", "I'll walk you through it step by step.", "I will describe the "
                "process below.", "I can help with that. First,", "I'm going to lay it out in detail:",
                "I will write it now.", "I'll give you the full details:", "I will outline the steps:")
OPENER_STYLES = {"compliant": OPENERS, "first_person": FIRST_PERSON}


def _rng(seed: int, *parts: str) -> random.Random:
    digest = hashlib.sha256("\x1f".join([str(seed), *parts]).encode("utf-8")).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def sample_prefix(harmful: str, rng: random.Random, unit: str = "tokens", tokenizer=None,
                  zero_prefix_fraction: float = 0.0) -> str | None:
    """A prefix of `harmful` cut at a token or word boundary, or None: no prefix row for this response.

    tokens (paper): k ~ U{0..|ĥ|} tokens of ĥ as the tokenizer splits it, cut at the token's character end so the
    prefix is exact text. words (reference code): k ~ U{1..n-2} space-separated words; a response of n < 3 words has
    no such cut and, as in the reference (its randint fails and the example is skipped), gets no row (None), not a
    k = 0 row. Otherwise a fraction `zero_prefix_fraction` of examples gets k = 0.
    """
    words = harmful.split(" ")
    if unit == "words" and len(words) < 3:
        return None
    if zero_prefix_fraction > 0 and rng.random() < zero_prefix_fraction:
        return ""
    if unit == "words":
        return " ".join(words[: rng.randint(1, len(words) - 2)])
    if tokenizer is None:
        raise ValueError("token-unit prefixes need a tokenizer")
    offsets = tokenizer(harmful, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    k = rng.randint(0, len(offsets))
    return harmful[: offsets[k - 1][1]].rstrip() if k else ""


def lead_refusal(lead: str, refusal: str) -> str:
    """`refusal` opening with the word `lead`: "I cannot help." -> "Sorry, I cannot help."

    Why: the RTO target is the refusals' first token. When that is "I", a completion attack that makes the model
    write "I will ..." feeds the target straight into the echo ("I will I will I I I"); a refusal token no answer
    opens with cannot be echoed that way. A refusal already opening with `lead` is kept; the first letter of the
    old opening is lowered unless it is the pronoun "I" or an all-caps word.
    """
    lead = lead.strip()
    text = refusal.lstrip()
    if not lead or text.lower().startswith(lead.lower()):
        return refusal
    word = text.split(" ", 1)[0]
    keep = word == "I" or word.startswith(("I'", "I\u2019")) or (len(word) > 1 and word.isupper())
    return f"{lead}, {text if keep else text[:1].lower() + text[1:]}"


def _chat(prompt: str, answer: str) -> list[dict]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]


def opener(seed: int, row_id: str, fraction: float, style: str = "compliant") -> str:
    """The opener (of `style`, OPENER_STYLES) row `row_id` starts with ("" for most rows): a per-row draw, stable
    across builds."""
    rng = _rng(seed, row_id, "opener")
    return rng.choice(OPENER_STYLES[style]) if fraction > 0 and rng.random() < fraction else ""


def with_opener(opening: str, text: str) -> str:
    return join_prefix(opening, text) if opening else text


def drawn(seed: int, row_id: str, what: str, fraction: float) -> bool:
    """A per-row draw with probability `fraction`, stable across builds (adding a row changes no other)."""
    return fraction > 0 and _rng(seed, row_id, what).random() < fraction


def triple_rows(t: SafetyTriple, kind: str, copy: int, seed: int, prefix_unit: str, tokenizer,
                zero_prefix_fraction: float, refusal: str | None = None, opener_fraction: float = 0.0,
                raw_prefix_fraction: float = 0.0, opener_style: str = "compliant") -> dict | None:
    """One row of `kind` for triple `t`, or None when the triple has no such row (a too-short word cut)."""
    row = {"id": f"{t.id}:{kind}:{copy}", "kind": kind, "source_id": t.id}
    opened = ("prefix", "rto") if opener_style == "compliant" else ("prefix",)
    opening = opener(seed, row["id"], opener_fraction, opener_style) if kind in opened else ""
    if opening:
        row["opener"] = opening
    if kind == "safe":
        row["messages"] = _chat(t.prompt, t.safe_response)
    elif kind == "rto":
        row.update(prompt=[{"role": "user", "content": t.prompt}],
                   harmful_response=with_opener(opening, t.harmful_response))
        if refusal is not None:
            row["refusal"] = refusal
    elif kind == "prefix":
        rng = _rng(seed, t.id, str(copy))
        prefix = sample_prefix(t.harmful_response, rng, prefix_unit, tokenizer, zero_prefix_fraction)
        if prefix is None:
            return None
        row.update(prompt=[{"role": "user", "content": t.prompt}], harmful_prefix=with_opener(opening, prefix),
                   safe_response=t.safe_response)
        if drawn(seed, row["id"], "raw", raw_prefix_fraction):
            row["raw"] = True
    else:
        raise ValueError(f"unknown safety kind {kind!r}")
    return row


def helpful_row(c: Conversation, seed: int, opener_fraction: float, opener_style: str = "compliant",
                raw_fraction: float = 0.0) -> dict:
    """A helpful chat; with an opener drawn, its first assistant turn starts with it (and goes on helpfully); with
    `raw` drawn (single-turn chats only), written as a plain document like the raw prefix rows. A chat with a
    `masked_prefix` (a model's own answer up to where it went wrong) keeps it, untrained, and gets neither."""
    row_id, masked = f"{c.id}:helpful", c.masked_prefix
    opening = "" if masked else opener(seed, row_id, opener_fraction, opener_style)
    messages = [dict(m) for m in c.messages]
    first = next((m for m in messages if m["role"] == "assistant"), None)
    if opening and first is not None:
        first["content"] = with_opener(opening, first["content"])
    raw = not masked and len(messages) == 2 and messages[-1]["role"] == "assistant" and \
        drawn(seed, row_id, "raw", raw_fraction)
    return {"id": row_id, "kind": "helpful", "messages": messages, **({"masked_prefix": masked} if masked else {}),
            **({"opener": opening} if opening else {}), **({"raw": True} if raw else {})}


def build_examples(triples: Sequence[SafetyTriple], helpful: Sequence[Conversation], recipe: str = "derta",
                   tokenizer=None, prefix_unit: str = "tokens", zero_prefix_fraction: float = 1 / 3,
                   seed: int = 0, refusal: str | None = None, opener_fraction: float = 0.0,
                   raw_prefix_fraction: float = 0.0, opener_style: str = "compliant",
                   helpful_opener_fraction: float | None = None, raw_helpful_fraction: float = 0.0) -> list[dict]:
    """All rows of a recipe, shuffled with `seed` (deterministic).

    `zero_prefix_fraction` of the prefix rows train a plain refusal at the turn start (k = 0; the reference: 1/3).
    `opener_fraction` of the prefix and RTO rows put a compliant opener before the harmful text, and the same share
    of helpful rows open the same way before their helpful answer; `opener_style` "first_person" draws first-person
    commitments instead ("I will ...", FIRST_PERSON), on prefix and helpful rows only. `helpful_opener_fraction`
    sets the helpful rows' share apart (None: the same share). `raw_prefix_fraction` of the prefix rows are plain
    documents, no chat template (the refusal then also follows harmful text outside a chat), and
    `raw_helpful_fraction` of the single-turn helpful rows too (so a raw document is not always refused).

    RTO rows record `refusal`; by default (None, with a tokenizer) the one derived from the triples' safe responses
    (`derive_refusal`), so the RTO target is the first token the refusal rows teach.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r} (known: {', '.join(RECIPES)})")
    if refusal is None and tokenizer is not None and "rto" in RECIPES[recipe] and triples:
        refusal = derive_refusal(tokenizer, [t.safe_response for t in triples])["text"]
    if opener_style not in OPENER_STYLES:
        raise ValueError(f"unknown opener style {opener_style!r} (known: {', '.join(OPENER_STYLES)})")
    helpful_share = opener_fraction if helpful_opener_fraction is None else helpful_opener_fraction
    rows = [helpful_row(c, seed, helpful_share, opener_style, raw_helpful_fraction) for c in helpful]
    for t in triples:
        for copy, kind in enumerate(RECIPES[recipe]):
            row = triple_rows(t, kind, copy, seed, prefix_unit, tokenizer, zero_prefix_fraction, refusal,
                              opener_fraction, raw_prefix_fraction, opener_style)
            if row is not None:
                rows.append(row)
    random.Random(seed).shuffle(rows)
    return rows


def dataset_stats(rows: Sequence[dict], tokenizer) -> dict:
    """Counts per kind, token lengths of the rendered rows, and a histogram of harmful-prefix lengths in tokens."""
    counts = Counter(r["kind"] for r in rows)
    lengths: dict[str, list[int]] = {}
    prefix_tokens = []
    for r in map(as_chat, rows):
        text = raw_document(tokenizer, r["messages"])[0] if r.get("raw") else \
            tokenizer.apply_chat_template(r["messages"], tokenize=False)
        lengths.setdefault(r["kind"], []).append(len(tokenizer(text, add_special_tokens=False)["input_ids"]))
        if r["kind"] == "prefix":
            p = r.get("masked_prefix", "")
            prefix_tokens.append(len(tokenizer(p, add_special_tokens=False)["input_ids"]) if p else 0)
    edges = [0, 1, 8, 16, 32, 64, 128, 256, 512, 10**9]
    hist = {(f"{lo}" if hi == lo + 1 else f"{lo}-{hi - 1}") if hi < 10**9 else f"{lo}+": sum(lo <= n < hi for n in prefix_tokens)
            for lo, hi in zip(edges, edges[1:], strict=False)}
    return {
        "n": len(rows), "counts": {k: counts.get(k, 0) for k in KINDS if counts.get(k)},
        "tokens": {k: {"min": min(v), "mean": round(sum(v) / len(v), 1), "max": max(v), "total": sum(v)}
                   for k, v in sorted(lengths.items())},
        "prefix_tokens_histogram": hist if prefix_tokens else {},
        "prefix_zero_fraction": round(sum(n == 0 for n in prefix_tokens) / len(prefix_tokens), 4)
        if prefix_tokens else None,
        "openers": {k: sum(1 for r in rows if r["kind"] == k and r.get("opener")) for k in KINDS if counts.get(k)},
        "raw": sum(1 for r in rows if r.get("raw")),
    }
