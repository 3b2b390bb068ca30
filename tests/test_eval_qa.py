"""QA accuracy (`eval/qa.py`): option log-likelihoods equal unbatched ones, choice and scoring, number matching."""

from __future__ import annotations

import pytest
import torch

from safekeel.eval import qa


def test_batched_option_scores_equal_one_sequence_at_a_time(tiny_tokenizer, tiny_model):
    tiny_model.eval()
    prompt, options = "Which is a fruit?\nA. apple\nB. hammer stone", ["A. apple", "B. hammer stone"]
    scores = qa.option_scores(tiny_model, tiny_tokenizer, prompt, options)
    head = tiny_tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                              add_generation_prompt=True)
    h = tiny_tokenizer(head, add_special_tokens=False)["input_ids"]
    for opt, score in zip(options, scores, strict=True):
        o = tiny_tokenizer(opt, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = torch.log_softmax(tiny_model(input_ids=torch.tensor([h + o])).logits[0].float(), -1)
        manual = sum(float(logp[len(h) - 1 + i, t]) for i, t in enumerate(o)) / len(o)
        assert score == pytest.approx(manual, abs=1e-4)


def test_accuracy_picks_the_likeliest_option_and_matches_numbers(tiny_tokenizer, tiny_model, monkeypatch):
    items = [{"task": "MMLU", "question": "q1", "options": "A. x\nB. y", "answer": "B. y"},
             {"task": "MMLU", "question": "q2", "options": "A. x\nB. y", "answer": "B. y"},
             {"task": "ASDiv", "question": "2 + 2?", "options": None, "answer": "4 apples"},
             {"task": "ASDiv", "question": "3 + 3?", "options": None, "answer": "6 pears"}]
    monkeypatch.setattr(qa, "option_scores", lambda m, t, p, o: [0.0, -1.0] if p.startswith("q1") else [-2.0, -1.0])
    monkeypatch.setattr(qa, "generate", lambda m, t, reqs, **kw: ["The answer is 4.", "It is 1,006 pears."])
    res = qa.qa_accuracy(tiny_model, tiny_tokenizer, items)
    assert [r["correct"] for r in res["rows"]] == [False, True, True, False]
    assert res["overall"]["k"] == 2 and res["overall"]["n"] == 4
    assert res["tasks"]["MMLU"]["rate"] == 0.5 and res["tasks"]["ASDiv"]["rate"] == 0.5


def test_number_parsing():
    assert qa._number("The answer is 1,234 balls.") == 1234.0
    assert qa._number("about -3.5 degrees") == -3.5
    assert qa._number("no digits") is None


def test_items_are_the_first_n_of_each_task(monkeypatch):
    from safekeel.data import bundled

    fake = [{"task": t, "question": f"{t}{i}", "options": None, "answer": "1"} for t in ("A", "B") for i in range(5)]
    monkeypatch.setattr(bundled, "utility_questions", lambda: fake)
    got = qa.qa_items({"A": 2, "B": 3})
    assert [g["question"] for g in got] == ["A0", "A1", "B0", "B1", "B2"]
