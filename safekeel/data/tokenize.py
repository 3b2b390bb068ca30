"""Chat-template tokenization with exact label masks, for any template.

The whole conversation is rendered with the tokenizer's own chat template; each assistant message is located exactly
(turn by turn, see `_locate`, never by searching for its text, which may also occur in a header) and its character
span is mapped to tokens with the offset mapping. So ChatML, Llama-3, Mistral, Gemma... all work without
per-template code, and the trained tokens are exactly those the model will see.

Labels follow the HF convention (the model shifts them: labels[i] is predicted from position i-1):
- MLE rows (`helpful`, `safe`, `prefix`): assistant content tokens + the template's end-of-turn marker are targets;
  the prompt, template headers and the harmful prefix (`masked_prefix`) are -100. A token that touches the harmful
  prefix is masked, so prefix text is never in the loss.
- RTO rows: labels[first .. last+1] = the refusal token, where first..last are the tokens of ĥ. After the shift,
  every context q+ĥ<t (t = 0..|ĥ|, from the generation prompt to the end of ĥ) predicts the refusal token. With
  `mid_refusal_id` (the default of `tokenize_rows`) contexts t >= 1 predict the refusal token as it tokenizes after
  text and a space, the very token the `prefix` rows train there: with byte-level BPE "I" at the start of a turn and
  " I" mid-text are two tokens, and RTO on the turn-start form alone teaches a mid-text "I" that no row continues
  (SmolLM2 then writes "SQLIQIIII", benchmarks/derta_recipe.py).
`kinds` marks each target as MLE (1) or RTO (2) so the trainer can log both losses.
A `raw` row (prefix, helpful or safe) is a plain document, no chat template (`raw_document`: request, blank line,
answer, EOS): the answer after any masked prefix and the EOS are its targets, as in a chat.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import DataError

IGNORE = -100
MLE, RTO = 1, 2


@dataclass
class Tokenized:
    input_ids: list[int]
    labels: list[int]
    kinds: list[int]  # 0 = no target, 1 = MLE target, 2 = RTO target

    def to_dict(self) -> dict:
        return {"input_ids": self.input_ids, "labels": self.labels, "kinds": self.kinds}


def _encode(tok, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    # The template already holds BOS where the model wants one; do not add a second.
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]


SENTINEL = "\u2063safekeel-content\u2063"  # stands in for a message's content to measure the template around it


def _render(tok, messages: list[dict]) -> str:
    if not messages:  # some templates refuse an empty conversation: its rendering is then the empty prefix
        try:
            return tok.apply_chat_template([], tokenize=False)
        except Exception:  # any template error (jinja, raise_exception)
            return ""
    return tok.apply_chat_template(messages, tokenize=False)


def _locate(tok, messages: list[dict], i: int, text: str, where: str) -> tuple[int, int, int]:
    """(content start, content end, end-of-turn end) of assistant message i inside `text`, the full rendering.

    Rendered turn by turn: messages[:i] and messages[:i+1] must be prefixes of the full rendering, so the turn's text
    is the one the model sees at inference time. The same turn rendered with a sentinel content gives the header and
    trailer lengths, so an answer that also occurs in the template ("a", "ant" inside "assistant") lands on itself.
    The end-of-turn marker is the template's own trailer (the text after the content up to the next turn) without the
    whitespace that separates turns (ChatML's newline after <|im_end|>): whether or not the tokenizer registers it as a
    special token (a Llama-3 template on a base tokenizer), and never reaching into the next turn's header.
    """
    field_name = f"messages[{i}].content"
    before = _render(tok, messages[:i])
    upto = text if i == len(messages) - 1 else _render(tok, messages[: i + 1])
    if not (upto.startswith(before) and text.startswith(upto)):
        raise DataError(where, None, field_name, "the chat template renders earlier turns differently once more turns "
                                                 "follow, so turns cannot be trained one by one")
    probe = _render(tok, messages[:i] + [{**messages[i], "content": SENTINEL}])
    content = messages[i]["content"]
    pos = probe.find(SENTINEL, len(before)) if probe.startswith(before) else -1
    if pos < 0 or upto != probe[:pos] + content + probe[pos + len(SENTINEL):]:
        raise DataError(where, None, field_name, "the chat template changed this message's text, cannot map it to "
                                                 "tokens")
    end = pos + len(content)
    trailer = upto[end:]
    return pos, end, end + len(trailer.rstrip() or trailer)


def content_spans(tok, messages: list[dict], where: str = "<example>"
                  ) -> tuple[str, dict[int, tuple[int, int, int]]]:
    """(rendered text, {assistant message index: (content start, content end, end-of-turn end)})."""
    text = _render(tok, messages)
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    return text, {i: _locate(tok, messages, i, text, where) for i in turns}


def _overlaps(span: tuple[int, int], lo: int, hi: int) -> bool:
    return hi > lo and span[0] < hi and span[1] > lo and span[1] > span[0]  # empty ranges overlap nothing


def _first_token(tok, content: str) -> tuple[int, str]:
    """(id, text clipped to the content) of the first token of `content` at the start of an assistant turn."""
    msgs = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": content}]
    text, spans = content_spans(tok, msgs, "<refusal string>")
    ids, offsets = _encode(tok, text)
    lo, hi, _ = spans[1]
    for i, span in enumerate(offsets):
        if _overlaps(span, lo, hi):
            return ids[i], text[max(span[0], lo):min(span[1], hi)]
    raise DataError("<refusal string>", None, "refusal", f"{content!r} produced no token in an assistant turn")


def refusal_token_id(tok, refusal: str = "Sorry") -> int:
    """The first token of `refusal` as it tokenizes at the start of an assistant turn (never hard-coded)."""
    return _first_token(tok, refusal)[0]


def mid_text_token_id(tok, refusal: str) -> int:
    """The first token of `refusal` after text and one space, as `data.derta.join_prefix` writes it in prefix rows."""
    head = "Sure"
    enc = tok(head + " " + refusal, add_special_tokens=False, return_offsets_mapping=True)
    for i, span in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
        if span[1] > len(head) + 1 and span[1] > span[0]:  # the first token that reaches into the refusal
            return i
    raise DataError("<refusal string>", None, "refusal", f"{refusal!r} produced no token after text")


def derive_refusal(tok, refusals: Sequence[str], refusal: str | None = None) -> dict:
    """The RTO target: {text, token_id, source, share}; `share` = fraction of `refusals` that start with it.

    Default (`refusal` None): the most common first assistant-turn token of the training refusals, so RTO rows and
    refusal rows teach the same first token (102 of the 111 bundled refusals start with "I", none with "Sorry").
    `text` is a string whose first token is that token, usable wherever a refusal string is expected.
    """
    firsts = [_first_token(tok, r) for r in refusals]
    if refusal is not None:
        text, token_id = refusal, refusal_token_id(tok, refusal)
    elif not firsts:
        raise DataError("<training refusals>", None, "refusal", "no refusals to derive the RTO refusal token from: "
                                                                "give a refusal string")
    else:
        token_id = Counter(i for i, _ in firsts).most_common(1)[0][0]
        text = next(t for i, t in firsts if i == token_id)
        if refusal_token_id(tok, text) != token_id:  # the token's text tokenizes otherwise alone: use a whole refusal
            text = next(r for r, (i, _) in zip(refusals, firsts, strict=True) if i == token_id)
    share = round(sum(i == token_id for i, _ in firsts) / len(firsts), 4) if firsts else None
    return {"text": text, "token_id": token_id, "source": "derived" if refusal is None else "explicit", "share": share}


def join_prefix(prefix: str, response: str) -> str:
    """ĥ[:k] + r with one space between (so the first refusal token does not fuse with the last prefix token)."""
    if not prefix:
        return response
    return prefix + ("" if prefix[-1].isspace() else " ") + response


STORED_FIELDS = {"prefix": ("prompt", "harmful_prefix", "safe_response"), "rto": ("prompt", "harmful_response")}


def as_chat(row: dict) -> dict:
    """A built row in the chat form the tokenizer reads: {messages, masked_prefix?}.

    `data build` stores DeRTa's prefix and RTO rows without `messages` (`prompt` + `harmful_prefix` +
    `safe_response`; `prompt` + `harmful_response`), so that a plain SFT reader (TRL's SFTTrainer reads `messages`)
    cannot take the harmful text for an assistant turn to imitate. Rows in chat form pass unchanged. A missing or
    mistyped field raises KeyError naming it.
    """
    kind = row.get("kind", "helpful")
    if "messages" in row or kind not in STORED_FIELDS:
        return row
    for name in STORED_FIELDS[kind]:
        value = row.get(name)
        if not (isinstance(value, list) if name == "prompt" else isinstance(value, str)):
            raise KeyError(name)
    if kind == "prefix":
        answer, extra = join_prefix(row["harmful_prefix"], row["safe_response"]), {"masked_prefix": row["harmful_prefix"]}
    else:
        answer, extra = row["harmful_response"], {}
    return {**row, "messages": [*row["prompt"], {"role": "assistant", "content": answer}], **extra}


def row_refusals(rows: Sequence[dict]) -> list[str]:
    """The refusals a set of built rows trains: `safe` answers, and `prefix` answers after the harmful prefix."""
    chats = [as_chat(r) for r in rows if r.get("kind") in ("safe", "prefix")]
    return [r["messages"][-1]["content"][len(r.get("masked_prefix") or ""):].lstrip() for r in chats]


RAW_SEPARATOR = "\n\n"


def raw_document(tok, messages: list[dict]) -> tuple[str, int]:
    """(text, answer start) of a chat written as a plain document: the turns before the last joined by blank lines,
    a blank line, the last (assistant) turn, then the tokenizer's EOS. The form a completion attack feeds a model,
    with no template around the request to refuse."""
    request = RAW_SEPARATOR.join(m["content"] for m in messages[:-1])
    return request + RAW_SEPARATOR + messages[-1]["content"] + (tok.eos_token or ""), len(request) + len(RAW_SEPARATOR)


def _tokenize_raw(tok, row: dict, where: str) -> tuple[list[int], list[int], list[int]]:
    if row.get("kind") == "rto":
        raise DataError(where, None, "raw", "an RTO row cannot be a raw document (its targets are chat positions)")
    text, lo = raw_document(tok, row["messages"])
    masked = row.get("masked_prefix") or ""
    if not row["messages"][-1]["content"].startswith(masked):
        raise DataError(where, None, "masked_prefix", "is not the start of the assistant answer")
    ids, offsets = _encode(tok, text)
    hi = lo + len(masked)
    trained = {i for i, sp in enumerate(offsets) if _overlaps(sp, hi, len(text)) and not _overlaps(sp, lo, hi)}
    return ids, [ids[i] if i in trained else IGNORE for i in range(len(ids))], \
        [MLE if i in trained else 0 for i in range(len(ids))]


def tokenize_row(tok, row: dict, refusal_id: int, max_length: int | None = None,
                 mid_refusal_id: int | None = None) -> Tokenized:
    """Input ids, labels and target kinds for one built row (see module docstring); raises on zero targets.

    RTO: the context right after the generation prompt targets `refusal_id`; every later one `mid_refusal_id` when
    given (else `refusal_id` too, the paper's single token)."""
    where = f"example {row.get('id', '?')}"
    try:
        row = as_chat(row)
    except KeyError as e:
        raise DataError(where, None, e.args[0], f"missing or mistyped in a {row.get('kind')} row") from None
    messages = row["messages"]
    kind = row.get("kind", "helpful")
    if row.get("raw"):
        ids, labels, kinds = _tokenize_raw(tok, row, where)
        return _truncated(ids, labels, kinds, max_length, where, kind)
    text, spans = content_spans(tok, messages, where)
    ids, offsets = _encode(tok, text)
    labels, kinds = [IGNORE] * len(ids), [0] * len(ids)
    if kind == "rto":
        if messages[-1]["role"] != "assistant":
            raise DataError(where, None, "messages", "an RTO row must end with the assistant's harmful response")
        lo, hi, _ = spans[len(messages) - 1]
        inside = [i for i, sp in enumerate(offsets) if _overlaps(sp, lo, hi)]
        if not inside:
            raise DataError(where, None, "messages", "the harmful response produced no tokens")
        for i in range(inside[0], min(inside[-1] + 2, len(ids))):  # +1: the context after the last harmful token
            mid = i > inside[0] and mid_refusal_id is not None
            labels[i], kinds[i] = mid_refusal_id if mid else refusal_id, RTO
    else:
        for m_idx, (lo, _, eot_end) in spans.items():
            m = messages[m_idx]
            masked_hi = lo
            if m_idx == len(messages) - 1 and row.get("masked_prefix"):
                if not m["content"].startswith(row["masked_prefix"]):
                    raise DataError(where, None, "masked_prefix", "is not the start of the assistant answer")
                masked_hi = lo + len(row["masked_prefix"])
            trained = [i for i, sp in enumerate(offsets)
                       if _overlaps(sp, masked_hi, eot_end) and not _overlaps(sp, lo, masked_hi)]
            for i in trained:
                labels[i], kinds[i] = ids[i], MLE
    return _truncated(ids, labels, kinds, max_length, where, kind)


def _truncated(ids: list[int], labels: list[int], kinds: list[int], max_length: int | None, where: str,
               kind: str) -> Tokenized:
    if max_length is not None and len(ids) > max_length:
        ids, labels, kinds = ids[:max_length], labels[:max_length], kinds[:max_length]
    if all(lab == IGNORE for lab in labels):
        raise DataError(where, None, None, f"no trainable tokens (kind {kind}, {len(ids)} tokens after truncation "
                                           f"to max_length={max_length}): raise max_length or fix the example")
    return Tokenized(ids, labels, kinds)


def tokenize_rows(tok, rows: list[dict], refusal: str | None = None, max_length: int | None = None,
                  rto_target: str = "aligned") -> list[dict]:
    """Tokenize every row (see `tokenize_row`); each dict also keeps the row's `id` and `kind`.

    RTO target: the first token of `refusal` when given, else of the row's own `refusal` (recorded by `safekeel data
    build`), else derived from the rows' refusals (`derive_refusal`). `rto_target`: "aligned" (default) = mid-text
    contexts target its mid-text form (`mid_text_token_id`), the token prefix rows train there; "start" = the
    turn-start token at every position.
    """
    if rto_target not in ("aligned", "start"):
        raise ValueError(f"rto_target must be 'aligned' or 'start', got {rto_target!r}")
    cache: dict[str | None, tuple[int, int | None]] = {}

    def rid(row: dict) -> tuple[int, int | None]:
        key = refusal or row.get("refusal")
        if key not in cache:
            text = key or derive_refusal(tok, row_refusals(rows))["text"]
            cache[key] = refusal_token_id(tok, text), mid_text_token_id(tok, text) if rto_target == "aligned" else None
        return cache[key]

    out = []
    for r in rows:
        start, mid = rid(r) if r.get("kind") == "rto" else (IGNORE, None)
        d = tokenize_row(tok, r, start, max_length, mid).to_dict()
        d["id"], d["kind"] = r.get("id"), r.get("kind", "helpful")
        out.append(d)
    return out
