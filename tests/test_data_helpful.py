"""Gold-answer helpful conversations (`data/helpful.py`): conversion, cleaning, evaluation overlap, balanced samples."""

from __future__ import annotations

import json

import pytest

from safekeel.data import helpful


@pytest.fixture
def fake_sets(tmp_path, monkeypatch):
    """The four QA files in the wheel's layout, small, with the cases that must be dropped or repaired."""
    files = {
        "NQ-open": [{"question": "who wrote hamlet", "answer": ["William Shakespeare"]},
                    {"question": "when did it open", "answer": ["16Â\xa0March 2018"]},
                    {"question": "what is the capital of france", "answer": ["Paris"]},  # = a benign eval prompt
                    {"question": "who wrote hamlet", "answer": ["Shakespeare"]},  # duplicate question
                    {"question": "no answer here", "answer": []}],
        "TruthfulQA": [{"question": "Do bears wear clothes?", "answer": ["Bears don't wear clothes"]},
                       {"question": "What did I learn?", "answer": ["I have no comment"]}],
        "ASDiv": [{"passage": "Ann has 2 apples.", "question": "How many apples?", "answer": "2 apples"},
                  {"passage": "Seven red apples.", "question": "How many in all?", "answer": "7 apples"}],
        "CommonsenseQA": [{"question": "Where is fog?", "options": "\nA. marsh\nB. desert", "answer": "A. marsh"}],
    }
    paths = []
    for task, rows in files.items():
        p = tmp_path / task / "test.jsonl"
        p.parent.mkdir()
        p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(p)
    monkeypatch.setattr(helpful, "source_files", lambda name: paths)
    monkeypatch.setattr(helpful, "evaluation_prompts", lambda: {
        helpful.normalize("What is the capital of France?"), helpful.normalize("Seven red apples. How many in all?")})
    return files


def test_conversations_are_cleaned_and_never_contain_an_evaluation_prompt(fake_sets):
    convs = helpful.qa_conversations()
    pairs = {c.messages[0]["content"]: c.messages[1]["content"] for c in convs}
    assert pairs == {
        "Who wrote hamlet?": "The answer is William Shakespeare.",
        "When did it open?": "The answer is 16 March 2018.",  # mojibake repaired, no-break space gone
        "Do bears wear clothes?": "Bears don't wear clothes.",
        "Ann has 2 apples. How many apples?": "The answer is 2 apples.",
        "Where is fog?\nA. marsh\nB. desert": "The answer is A. marsh.",
    }
    assert all(c.id.startswith("hqa-") and c.source.startswith("helpful-qa/") for c in convs)
    assert len({c.id for c in convs}) == len(convs)


def test_samples_are_balanced_over_tasks_and_deterministic(fake_sets):
    sample = helpful.sample_qa(4, seed=3)
    assert len({c.source for c in sample}) == 4  # one per task before any task gets a second
    assert [c.id for c in sample] == [c.id for c in helpful.sample_qa(4, seed=3)]
    assert len(helpful.sample_qa(100)) == 5  # never more than there is


def test_non_answers_and_cleaning():
    assert helpful.non_answer("I have no comment.") and helpful.non_answer("I'm sorry, I can't help with that.")
    assert not helpful.non_answer("The answer is 4 books.")
    assert helpful.clean("Itâ€™s fine") == "It’s fine" and helpful.clean("16Â\xa0March") == "16 March"


@pytest.mark.slow
def test_real_sets_are_disjoint_from_every_evaluation_prompt():
    from safekeel.data.bundled import own_set, utility_questions
    from safekeel.sources import HELPFUL_QA_ROWS

    convs = helpful.qa_conversations()
    assert len(convs) == HELPFUL_QA_ROWS
    train = {helpful.normalize(c.messages[0]["content"]) for c in convs}
    evaluation = {helpful.normalize(q["question"]) for q in utility_questions()}
    evaluation |= {helpful.normalize(r["prompt"]) for s in ("benign", "benign-scary") for r in own_set(s)}
    assert not train & evaluation
    assert not any(helpful.non_answer(c.messages[1]["content"]) for c in convs)
