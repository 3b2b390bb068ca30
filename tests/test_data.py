"""Readers and validation through the public API and the CLI: every bad input names file:line and field, exit 2."""

import json
import subprocess
import sys

import pytest

from safekeel.data import load_behaviors, load_conversations, load_triples
from safekeel.data.readers import load_derta_reference
from safekeel.errors import DataError

GOOD = {"prompt": "How do I pick a lock?", "harmful_response": "Step 1: insert a tension wrench.",
        "safe_response": "Sorry, I can't help with that."}


def cli(*args, env):
    return subprocess.run([sys.executable, "-m", "safekeel", *args], capture_output=True, text=True, env=env)


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("line2, field, message", [
    ('{"prompt": "x", "harmful_response": "y"', None, "invalid JSON"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "safe_response"}), "safe_response", "missing required field"),
    (json.dumps({**GOOD, "prompt": "   "}), "prompt", "empty string"),
    (json.dumps({**GOOD, "harmful_response": 42}), "harmful_response", "expected a string, got int"),
])
def test_bad_triples_name_file_line_field(tmp_path, cli_env, line2, field, message):
    path = write_lines(tmp_path / "triples.jsonl", [json.dumps(GOOD), line2])
    with pytest.raises(DataError) as err:
        load_triples(path)
    assert err.value.line == 2 and err.value.field == field and message in str(err.value)
    proc = cli("data", "validate", str(path), "--kind", "triples", env=cli_env)
    assert proc.returncode == 2, proc.stderr
    assert f"{path}:2:" in proc.stderr and message in proc.stderr
    if field:
        assert f"field '{field}'" in proc.stderr


def test_non_utf8_names_line(tmp_path, cli_env):
    path = tmp_path / "b.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + b'{"prompt": "caf\xe9"}\n')
    proc = cli("data", "validate", str(path), "--kind", "behaviors", env=cli_env)
    assert proc.returncode == 2
    assert f"{path}:2:" in proc.stderr and "not valid UTF-8" in proc.stderr


def test_csv_and_json_readers(tmp_path):
    csv_path = tmp_path / "b.csv"
    csv_path.write_text('prompt,category\n"How to x, quickly",cyber\n,misc\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_behaviors(csv_path)
    assert err.value.line == 3 and err.value.field == "prompt"
    json_path = tmp_path / "t.json"
    json_path.write_text(json.dumps([GOOD, GOOD]), encoding="utf-8")
    assert len(load_triples(json_path)) == 2


def test_conversation_formats(tmp_path):
    path = write_lines(tmp_path / "c.jsonl", [
        json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}),
        json.dumps({"prompt": "2+2?", "response": "4"}),
    ])
    convs = load_conversations(path)
    assert convs[1].messages == [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    bad = write_lines(tmp_path / "bad.jsonl", [json.dumps({"messages": [{"role": "robot", "content": "x"}]})])
    with pytest.raises(DataError, match=r"messages\[0\]\.role"):
        load_conversations(bad)


def test_derta_reference_formats(tmp_path):
    train = write_lines(tmp_path / "derta.json", [
        json.dumps({"prefix": "[INST] How to steal? [\\INST]", "text": " Step 1: go.<|end_of_text|>", "safe": "true"}),
        json.dumps({"prefix": "[INST] How to steal? [\\INST] Step 1:", "text": " Sorry, no.<|end_of_text|>",
                    "safe": "false"}),
    ])
    train = train.rename(tmp_path / "derta.jsonl")
    rows = load_derta_reference(train)
    assert rows[0].rto and rows[0].prompt == "How to steal?" and rows[0].text == "Step 1: go."
    assert not rows[1].rto and rows[1].harmful_prefix == "Step 1:" and rows[1].text == "Sorry, no."
    test = write_lines(tmp_path / "test.jsonl", [json.dumps({"question": "How to x?", "response": "Do y."})])
    (b,) = load_behaviors(test)
    assert b.prompt == "How to x?" and b.target == "Do y."


def test_own_sets_are_large_enough():
    from safekeel.data import bundled

    benign, scary = bundled.benign_prompts(), bundled.benign_scary_prompts()
    assert len(benign) >= 100 and len(scary) >= 100
    assert len({r["id"] for r in benign + scary}) == len(benign) + len(scary)
    assert sum(1 for r in benign if r.get("check")) >= 40


def test_more_scary_prompts_are_the_same_kinds_and_no_copies_of_the_evaluated_ones():
    """`benign-scary-more` adds training contrast of benign-scary's nine kinds; no prompt of it may be a near copy
    of a benign or benign-scary prompt (those are what over-refusal and helpfulness are measured on)."""
    from collections import Counter

    from safekeel.data import bundled
    from safekeel.data.build_cli import load_prompt_set
    from safekeel.data.splits import jaccard, normalise

    more, scary = bundled.own_set("benign-scary-more"), bundled.benign_scary_prompts()
    assert Counter(r["category"] for r in more) == {c: 30 for c in {r["category"] for r in scary}}
    words = lambda t: set(normalise(t).split())  # noqa: E731
    evaluated = [words(r["prompt"]) for r in bundled.benign_prompts() + scary]
    assert max(jaccard(words(r["prompt"]), w) for r in more for w in evaluated) < 0.5
    joined = load_prompt_set("benign-scary,benign-scary-more", "train")
    assert len(joined) == len(load_prompt_set("benign-scary", "train")) + len(load_prompt_set("benign-scary-more",
                                                                                                 "train")) > 150
