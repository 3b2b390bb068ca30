"""The evaluation items training data must never contain: the QA accuracy questions (source `utility-qa`) and
safekeel's own prompt sets (`safekeel/resources/`). Below both `bundled` (which loads every set) and `helpful` (which
drops these items from its training chats), so neither imports the other back."""

from __future__ import annotations

import json
from importlib import resources

from ..sources import source_files

OWN_SETS = {
    "benign": ("benign_prompts.jsonl", "everyday harmless requests (helpfulness; some with answer checks)"),
    "benign-scary": ("benign_scary.jsonl", "safe prompts that look harmful, XSTest-style (over-refusal)"),
    # the same nine kinds, written later so the helpful rows have more than benign-scary's 72 train prompts to
    # contrast the harmful requests with; split by the registry like every set, so its test third stays unseen
    "benign-scary-more": ("benign_scary_more.jsonl", "more safe-but-scary prompts, XSTest-style (over-refusal "
                                                     "contrast for training)"),
}


def utility_questions() -> list[dict]:
    """Multiple-choice / short-answer utility items: {task, question, options, answer}."""
    out = []
    for path in source_files("utility-qa"):
        task = path.parent.name
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                r = json.loads(line)
                q = r["question"] if "passage" not in r else f"{r['passage']} {r['question']}"
                out.append({"task": task, "question": q, "options": r.get("options"),
                            "answer": r.get("answer_key") or r.get("answer")})
    return out


def own_set(name: str) -> list[dict]:
    fname = OWN_SETS[name][0]
    text = resources.files("safekeel.resources").joinpath(fname).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]
