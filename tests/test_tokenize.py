"""Label masks from the chat template, on hand-written ChatML, Llama-3 and Mistral templates (tiny tokenizers)."""

from __future__ import annotations

import pytest

from safekeel.data.tokenize import IGNORE, MLE, RTO, refusal_token_id, tokenize_row, tokenize_rows
from safekeel.errors import DataError

FAMILIES = ["chatml", "llama3", "mistral"]
Q = "How do I pick a lock?"
HARM = "First, open the lock with a pick. Then, turn the handle slowly and quietly."
PREFIX = "First, open the lock with a pick."
SAFE = "Sorry, I can't help with that request."


@pytest.fixture(params=FAMILIES)
def tok(request):
    from tiny import build_tokenizer

    return build_tokenizer(request.param)


def _chat(answer, system=None):
    msgs = [{"role": "system", "content": system}] if system else []
    return msgs + [{"role": "user", "content": Q}, {"role": "assistant", "content": answer}]


def _trained_text(tok, t):
    return tok.decode([lab for lab in t.labels if lab != IGNORE])


def test_refusal_token_is_the_first_assistant_token(tok):
    rid = refusal_token_id(tok, "Sorry")
    assert tok.decode([rid]).strip() == "Sorry"
    other = refusal_token_id(tok, "I cannot do that.")
    assert tok.decode([other]).strip() and "I".startswith(tok.decode([other]).strip())


@pytest.mark.parametrize("kind", ["helpful", "safe"])
def test_plain_rows_train_the_answer_and_end_of_turn_only(tok, kind):
    t = tokenize_row(tok, {"id": "x", "kind": kind, "messages": _chat(SAFE, system="Be helpful.")}, 0)
    assert _trained_text(tok, t) == SAFE + tok.eos_token
    assert all(lab in (IGNORE, i) for lab, i in zip(t.labels, t.input_ids, strict=True))
    assert set(t.kinds) == {0, MLE}
    # the targets are one contiguous run ending with the end-of-turn token
    idx = [i for i, lab in enumerate(t.labels) if lab != IGNORE]
    assert idx == list(range(idx[0], idx[-1] + 1)) and t.input_ids[idx[-1]] == tok.eos_token_id


def test_harmful_prefix_is_never_in_the_loss(tok):
    answer = PREFIX + " " + SAFE
    t = tokenize_row(tok, {"id": "p", "kind": "prefix", "messages": _chat(answer), "masked_prefix": PREFIX}, 0)
    trained = _trained_text(tok, t)
    assert trained.strip() == SAFE + tok.eos_token
    first = next(i for i, lab in enumerate(t.labels) if lab != IGNORE)
    assert tok.decode(t.input_ids[:first]).endswith(PREFIX)  # everything up to the prefix end is masked
    assert PREFIX.split()[-1] not in trained


def test_rto_targets_every_transition_with_the_refusal_token(tok):
    rid = refusal_token_id(tok)
    t = tokenize_row(tok, {"id": "r", "kind": "rto", "messages": _chat(HARM)}, rid)
    harm_ids = tok(HARM, add_special_tokens=False)["input_ids"]
    targets = [i for i, lab in enumerate(t.labels) if lab != IGNORE]
    assert all(t.labels[i] == rid and t.kinds[i] == RTO for i in targets)
    # contexts q+h<t for t = 0..|h|: one target per harmful token plus the one after the last harmful token
    assert len(targets) == len(harm_ids) + 1 and targets == list(range(targets[0], targets[-1] + 1))
    assert targets[-1] < len(t.input_ids)  # no target beyond the sequence
    # the first target is predicted from the end of the generation prompt, i.e. right before the harmful text
    assert tok.decode(t.input_ids[targets[0]:targets[-1]]).strip() == HARM
    assert HARM not in tok.decode(t.input_ids[:targets[0]])


def test_multi_turn_conversations_train_every_assistant_turn(tok):
    msgs = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
            {"role": "user", "content": "And of Italy?"}, {"role": "assistant", "content": "Rome."}]
    t = tokenize_row(tok, {"id": "m", "kind": "helpful", "messages": msgs}, 0)
    expected = "The capital of France is Paris." + tok.eos_token + "Rome." + tok.eos_token
    trained = _trained_text(tok, t)
    # Mistral's template puts a space before each answer; a token holding that space and the first word is trained
    assert trained == expected if tok.eos_token != "</s>" else trained.replace(" ", "") == expected.replace(" ", "")


def test_zero_trainable_tokens_is_an_error_never_a_silent_drop(tok):
    row = {"id": "long-prompt", "kind": "safe", "messages": _chat(SAFE)}
    with pytest.raises(DataError, match="long-prompt.*no trainable tokens"):
        tokenize_row(tok, row, 0, max_length=6)
    with pytest.raises(DataError, match="masked_prefix"):
        tokenize_row(tok, {**row, "kind": "prefix", "masked_prefix": "Not the start"}, 0)


def test_truncated_rto_rows_keep_targets_inside_the_sequence(tok):
    rid = refusal_token_id(tok)
    full = tokenize_row(tok, {"id": "r", "kind": "rto", "messages": _chat(HARM)}, rid)
    first = full.labels.index(rid)
    t = tokenize_row(tok, {"id": "r", "kind": "rto", "messages": _chat(HARM)}, rid, max_length=first + 5)
    assert len(t.input_ids) == first + 5 and t.labels[first:] == [rid] * 5


def test_a_template_that_rewrites_content_fails_loudly():
    from tiny import build_tokenizer

    tok = build_tokenizer("chatml")
    tok.chat_template = "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}"
    with pytest.raises(DataError, match="changed this message"):
        tokenize_rows(tok, [{"id": "u", "kind": "safe", "messages": _chat(SAFE)}])


@pytest.mark.parametrize("answer", ["ant", "sis", "a", "assistant", "user", "\n"])
def test_an_answer_that_also_occurs_in_the_template_is_located_exactly(answer):
    """ChatML's header '<|im_start|>assistant\\n' contains 'ant', 'sis' and 'a': only the answer itself is trained."""
    from tiny import build_tokenizer

    tok = build_tokenizer("chatml")
    t = tokenize_row(tok, {"id": "s", "kind": "safe", "messages": _chat(answer, system="Be helpful.")}, 0)
    assert _trained_text(tok, t) == answer + "<|im_end|>"
    rid = refusal_token_id(tok, answer)
    first = tok(answer, add_special_tokens=False)["input_ids"][0]
    assert rid == first
    rto = tokenize_row(tok, {"id": "r", "kind": "rto", "messages": _chat(answer)}, rid)
    targets = [i for i, lab in enumerate(rto.labels) if lab != IGNORE]
    assert len(targets) == len(tok(answer, add_special_tokens=False)["input_ids"]) + 1
    assert tok.decode(rto.input_ids[targets[0]:targets[-1]]) == answer


def test_a_template_that_rewrites_earlier_turns_fails_loudly():
    """A template that shortens an assistant turn once more turns follow breaks the turn-by-turn prefix property."""
    from tiny import build_tokenizer

    tok = build_tokenizer("chatml")
    tok.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' }}{% if loop.last %}"
                         "{{ m['content'] }}{% else %}{{ m['content'][:4] }}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}")
    msgs = _chat(SAFE) + [{"role": "user", "content": "Why?"}, {"role": "assistant", "content": SAFE}]
    with pytest.raises(DataError, match="earlier turns"):
        tokenize_row(tok, {"id": "w", "kind": "helpful", "messages": msgs}, 0)


def _trained_runs(tok, t):
    """Decoded text of each contiguous run of trained tokens."""
    idx = [i for i, lab in enumerate(t.labels) if lab != IGNORE]
    runs, cur = [], [idx[0]]
    for i in idx[1:]:
        if i == cur[-1] + 1:
            cur.append(i)
        else:
            runs.append(cur)
            cur = [i]
    return [tok.decode([t.input_ids[i] for i in run]) for run in [*runs, cur]]


@pytest.mark.parametrize("base,template,eot", [("mistral", "llama3", "<|eot_id|>"),
                                               ("llama3", "chatml", "<|im_end|>")])
def test_an_end_of_turn_marker_that_is_plain_text_is_trained_without_the_next_header(base, template, eot):
    """Llama-3's <|eot_id|> (or ChatML's <|im_end|>) on a base tokenizer where it is plain text, not a special token:
    each assistant turn trains its content + the end-of-turn marker only, never the next turn's header."""
    from tiny import TEMPLATES, build_tokenizer

    tok = build_tokenizer(base)
    tok.chat_template = TEMPLATES[template][0]
    assert eot not in tok.all_special_tokens
    msgs = [{"role": "user", "content": "What is the capital of France?"},
            {"role": "assistant", "content": "The capital of France is Paris."},
            {"role": "user", "content": "And of Italy?"}, {"role": "assistant", "content": "Rome."}]
    t = tokenize_row(tok, {"id": "m", "kind": "helpful", "messages": msgs}, 0)
    assert _trained_runs(tok, t) == ["The capital of France is Paris." + eot, "Rome." + eot]
    p = tokenize_row(tok, {"id": "p", "kind": "prefix", "messages": msgs, "masked_prefix": "Rome"}, 0)
    assert _trained_runs(tok, p) == ["The capital of France is Paris." + eot, "." + eot]


def test_the_default_refusal_token_is_the_most_common_first_token_of_the_training_refusals(tok):
    from safekeel.data.tokenize import derive_refusal

    refusals = ["I can't help with that request.", "I cannot assist with anything harmful.", SAFE]
    info = derive_refusal(tok, refusals)
    assert info["token_id"] == refusal_token_id(tok, refusals[0]) != refusal_token_id(tok, SAFE)
    assert refusal_token_id(tok, info["text"]) == info["token_id"] and info["text"].strip() == "I"
    assert info["share"] == round(2 / 3, 4) and info["source"] == "derived"
    explicit = derive_refusal(tok, refusals, "Sorry")
    assert explicit["token_id"] == refusal_token_id(tok, "Sorry") and explicit["source"] == "explicit"
    assert explicit["share"] == round(1 / 3, 4)


def test_rto_targets_follow_the_rows_refusal_unless_one_is_given(tok):
    rto = {"id": "r", "kind": "rto", "messages": _chat(HARM)}
    safe = [{"id": f"s{i}", "kind": "safe", "messages": _chat(f"I can't help with that, {i}.")} for i in range(2)]
    prefix = {"id": "p", "kind": "prefix", "messages": _chat(PREFIX + " " + SAFE), "masked_prefix": PREFIX}
    targets = lambda feats: {lab for f in feats if f["kind"] == "rto" for lab in f["labels"] if lab != IGNORE}  # noqa: E731
    i_id, sorry_id = refusal_token_id(tok, "I can't"), refusal_token_id(tok, "Sorry")
    start = {"rto_target": "start"}  # one token everywhere, so a set of one id per case
    assert targets(tokenize_rows(tok, [{**rto, "refusal": "I"}], **start)) == {i_id}  # recorded by `data build`
    assert targets(tokenize_rows(tok, [{**rto, "refusal": "I"}], refusal="Sorry", **start)) == {sorry_id}  # explicit
    assert targets(tokenize_rows(tok, [rto, *safe, prefix], **start)) == {i_id}  # derived from the rows' refusals
    with pytest.raises(DataError, match="refusal"):
        tokenize_rows(tok, [rto])


def test_mid_answer_rto_targets_are_the_token_prefix_rows_train_there(tok):
    """RTO's default target after k >= 1 harmful tokens is the refusal's first token exactly as a prefix row trains
    it after k tokens (" I", mid-text), and the turn-start form ("I") only right after the generation prompt."""
    refusal = "I can't help with that."
    rto = tokenize_rows(tok, [{"id": "r", "kind": "rto", "messages": _chat(HARM), "refusal": refusal}])[0]
    prefix = tokenize_row(tok, {"id": "p", "kind": "prefix", "messages": _chat(PREFIX + " " + refusal),
                                "masked_prefix": PREFIX}, IGNORE)
    after_prefix = next(lab for lab in prefix.labels if lab != IGNORE)  # the first token trained after ĥ[:k]
    safe = tokenize_row(tok, {"id": "s", "kind": "safe", "messages": _chat(refusal)}, IGNORE)
    at_start = next(lab for lab in safe.labels if lab != IGNORE)
    labels = [lab for lab in rto["labels"] if lab != IGNORE]
    assert labels[0] == at_start and set(labels[1:]) == {after_prefix}
    assert tok.decode([after_prefix]).strip() == tok.decode([at_start]).strip() == "I"
    old = tokenize_rows(tok, [{"id": "r", "kind": "rto", "messages": _chat(HARM), "refusal": refusal}],
                        rto_target="start")[0]
    assert {lab for lab in old["labels"] if lab != IGNORE} == {at_start}


def test_a_raw_prefix_row_is_a_plain_document_whose_refusal_and_eos_are_trained(tok):
    """No chat template around it (a completion attack's form): request, blank line, masked prefix, trained refusal."""
    row = {"id": "r", "kind": "prefix", "raw": True, "prompt": [{"role": "user", "content": Q}],
           "harmful_prefix": PREFIX, "safe_response": SAFE}
    t = tokenize_row(tok, row, 0)
    text = tok.decode(t.input_ids)
    assert text.startswith(Q + "\n\n" + PREFIX) and "user" not in text and "[INST]" not in text
    assert _trained_text(tok, t).strip() == SAFE + tok.eos_token
    assert PREFIX.split()[-1] not in _trained_text(tok, t) and set(t.kinds) == {0, MLE}
    zero = tokenize_row(tok, {**row, "harmful_prefix": ""}, 0)  # k = 0: the refusal right after the request
    assert _trained_text(tok, zero).strip() == SAFE + tok.eos_token
    with pytest.raises(DataError, match="field 'raw': an RTO row cannot"):
        tokenize_row(tok, {"id": "h", "kind": "rto", "raw": True, "prompt": [{"role": "user", "content": Q}],
                           "harmful_response": HARM}, 0)


def test_a_raw_helpful_row_trains_its_whole_answer_as_a_plain_document(tok):
    """The raw form is not a refusal cue: a helpful answer after a raw request is trained in full, EOS included."""
    t = tokenize_row(tok, {"id": "h", "kind": "helpful", "raw": True, "messages": _chat(SAFE)}, 0)
    text = tok.decode(t.input_ids)
    assert text.startswith(Q + "\n\n" + SAFE) and "user" not in text and "[INST]" not in text
    assert _trained_text(tok, t).strip() == SAFE + tok.eos_token and set(t.kinds) == {0, MLE}
