"""Gold-answer helpful conversations (`data/helpful.py`): conversion, cleaning, evaluation overlap, balanced samples."""

from __future__ import annotations

import json

import pytest

from safekeel.data import helpful
from safekeel.data.splits import RequestIndex


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


def test_piqa_goals_become_how_to_requests_with_the_gold_solution(tmp_path, monkeypatch):
    rows = [{"question": "To cream butter and sugar together, you can", "answer": "B. Place in a bowl and mix"},
            {"question": "How to kill fruit flies easily.", "answer": "A. Set out a dish of cider vinegar"},
            {"question": "Remove soap scum from shower door.", "answer": "B. Rub hard with dryer sheets."},
            {"question": "how do you put eyelashes on?", "answer": "B. put eyelash glue on them"},
            {"question": "What is the capital of France?", "answer": "A. It is Paris of course"},  # an eval prompt
            {"question": "dresser", "answer": "B. finish, woodgrain with bobby pin"},  # a bare noun goal
            {"question": "Open a stuck jar lid.", "answer": "A. tap it"},  # a two-word solution
            {"question": "How to hang a picture frame up?", "answer": "A. Use a nail and a level"}]  # ~ a test one
    p = tmp_path / "PIQA" / "validation.jsonl"
    p.parent.mkdir()
    p.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    monkeypatch.setattr(helpful, "source_files", lambda name: [p] if name == "howto-qa" else [])
    monkeypatch.setattr(helpful, "evaluation_prompts", lambda: {helpful.normalize("What is the capital of France?")})
    monkeypatch.setattr(helpful, "test_index", lambda: RequestIndex(["How do I hang a picture frame on a drywall?"]))
    convs = helpful.howto_conversations()
    assert [(c.messages[0]["content"], c.messages[1]["content"]) for c in convs] == [
        ("How do I cream butter and sugar together?", "Place in a bowl and mix."),
        ("How do I kill fruit flies easily?", "Set out a dish of cider vinegar."),
        ("How do I remove soap scum from shower door?", "Rub hard with dryer sheets."),
        ("How do you put eyelashes on?", "Put eyelash glue on them.")]
    assert [c.id for c in convs] == ["howto-piqa-0000", "howto-piqa-0001", "howto-piqa-0002", "howto-piqa-0003"]
    assert {c.source for c in convs} == {"howto-qa/PIQA"}
    assert [c.id for c in helpful.sample_howto(3, seed=1)] == [c.id for c in helpful.sample_howto(3, seed=1)]
    assert len(helpful.sample_howto(3, seed=1)) == 3 and len(helpful.sample_howto(99)) == 4


def test_non_answers_and_cleaning():
    assert helpful.non_answer("I have no comment.") and helpful.non_answer("I'm sorry, I can't help with that.")
    assert not helpful.non_answer("The answer is 4 books.")
    assert helpful.clean("Itâ€™s fine") == "It’s fine" and helpful.clean("16Â\xa0March") == "16 March"


@pytest.mark.slow
@pytest.mark.parametrize("make, rows", [("qa_conversations", "HELPFUL_QA_ROWS"), ("howto_conversations", "HOWTO_ROWS")])
def test_real_sets_are_disjoint_from_every_evaluation_prompt(make, rows):
    from safekeel import sources
    from safekeel.data.bundled import own_set, utility_questions

    convs = getattr(helpful, make)()
    assert len(convs) == getattr(sources, rows)
    train = {helpful.normalize(c.messages[0]["content"]) for c in convs}
    evaluation = {helpful.normalize(q["question"]) for q in utility_questions()}
    evaluation |= {helpful.normalize(r["prompt"]) for s in ("benign", "benign-scary") for r in own_set(s)}
    assert not train & evaluation
    assert not any(helpful.non_answer(c.messages[1]["content"]) for c in convs)
