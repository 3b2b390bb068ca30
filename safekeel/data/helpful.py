"""Helpful training conversations with gold answers, from QA sets that ship in a pinned wheel (source `helpful-qa`).

Why: a safety recipe that sees a few dozen helpful chats next to hundreds of refusals learns "refuse" as the default
answer (DeRTa on 48 helpful chats refused 94% of benign-but-scary prompts). These sets give thousands of everyday
questions with human answers: NQ-open (search questions), TruthfulQA (misconceptions, full-sentence answers), ASDiv
(arithmetic word problems), CommonsenseQA (multiple choice). Every item whose question is also an evaluation item
(the `utility-qa` QA accuracy set, safekeel's benign prompts) is dropped, so training never sees an evaluation prompt,
and so is every gold answer that declines (TruthfulQA's "I have no comment.").
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

from ..sources import source_files
from .eval_sets import OWN_SETS, own_set, utility_questions
from .records import Conversation
from .splits import test_index


def normalize(text: str) -> str:
    """Lower case, letters and digits only: the key that decides whether two prompts are the same question."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def clean(text: str) -> str:
    """Undo UTF-8 read as cp1252 / Latin-1 ("Â\xa0", "â€™", found in NQ-open) and turn no-break spaces into spaces."""
    if any(m in text for m in ("Â", "Ã", "â€")):
        for codec in ("cp1252", "latin-1"):
            try:
                text = text.encode(codec).decode("utf-8")
                break
            except (UnicodeEncodeError, UnicodeDecodeError):
                continue
        text = text.replace("Â\xa0", " ")
    return re.sub(r"[ \xa0]+", " ", text.replace("\xa0", " ")).strip()


def _sentence(text: str) -> str:
    text = clean(text)
    text = text[:1].upper() + text[1:]
    return text if text[-1:] in ".!?" else text + "."


DECLINES = ("i have no comment", "no comment", "i m sorry", "i am sorry", "sorry", "i cannot", "i can t",
            "i won t", "i will not")


def non_answer(answer: str) -> bool:
    """A gold answer that declines (TruthfulQA's "I have no comment."): never teach it as the helpful answer."""
    return normalize(answer).startswith(DECLINES)


def _jsonl(path: Path) -> Iterator[dict]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def _nq(r: dict) -> tuple[str, str] | None:
    q = r["question"].strip()
    return (_sentence(q)[:-1] + "?", f"The answer is {clean(r['answer'][0])}.") if r.get("answer") else None


def _truthfulqa(r: dict) -> tuple[str, str] | None:
    return (r["question"].strip(), _sentence(r["answer"][0])) if r.get("answer") else None


def _asdiv(r: dict) -> tuple[str, str]:
    return f"{r['passage'].strip()} {r['question'].strip()}", f"The answer is {r['answer'].strip()}."


def _csqa(r: dict) -> tuple[str, str]:
    options = "\n".join(o.strip() for o in r["options"].strip().splitlines() if o.strip())
    return f"{r['question'].strip()}\n{options}", f"The answer is {r['answer'].strip()}."


CONVERTERS = {"NQ-open": _nq, "TruthfulQA": _truthfulqa, "ASDiv": _asdiv, "CommonsenseQA": _csqa}

QUESTION_START = re.compile(r"^(how|what|which|when|where|why|who|can|should|is|are|do|does)\b", re.I)


def _piqa(r: dict) -> tuple[str, str] | None:
    """A PIQA goal as the request a user would type, its gold solution as the answer; None for bare noun goals
    ("dresser") and one- or two-word solutions. Goals come as questions, "How to X", "To X, you can" or "X.":
    all but questions become "How do I x?"."""
    goal, answer = clean(r["question"]), re.sub(r"^[AB]\.\s*", "", clean(r.get("answer") or ""))
    if len(goal.split()) < 3 or len(answer.split()) < 3:
        return None
    goal = re.sub(r"(,\s*(you can|you should|you)?|[.,:;])$", "", goal.strip()).strip()
    if re.match(r"^how to\b", goal, re.I):
        goal = "How do I" + goal[6:]
    elif re.match(r"^to\b", goal, re.I):
        goal = "How do I" + goal[2:]
    elif not (goal.endswith("?") or QUESTION_START.match(goal)):
        goal = "How do I " + goal[:1].lower() + goal[1:]
    return goal[:1].upper() + goal[1:].rstrip("?") + "?", _sentence(answer)


def evaluation_prompts() -> set[str]:
    """Normalized questions of every evaluation set that could overlap: QA accuracy items and benign prompts."""
    keys = {normalize(q["question"]) for q in utility_questions()}
    keys |= {normalize(r["prompt"]) for name in OWN_SETS for r in own_set(name)}
    return keys


def qa_conversations() -> list[Conversation]:
    """Every usable gold-answer conversation, in file order; ids `hqa-<task>-<line>`; evaluation overlaps dropped."""
    return _conversations("helpful-qa", CONVERTERS, "hqa")


def howto_conversations() -> list[Conversation]:
    """Everyday how-to requests with their gold solution (PIQA, source `howto-qa`), ids `howto-piqa-<line>`.

    Why: the QA sets ask "what is", never "how do I", while every harmful request in the safety rows is a how-to,
    so a refusal recipe learns "how do I <verb>" -> refuse ("How do I kill weeds in my garden?" refused). PIQA's
    goals are physical how-tos, many with the same verbs (cut, burn, crush, kill), answered by people. How-tos are
    what the benign test prompts ask too, so a near-duplicate of any registered test request is dropped as well
    ("How do I hang a picture frame up?").
    """
    return _conversations("howto-qa", {"PIQA": _piqa}, "howto", quarantine=test_index())


def _conversations(source: str, converters: dict, prefix: str, quarantine=None) -> list[Conversation]:
    banned, seen, out = evaluation_prompts(), set(), []
    for path in source_files(source):
        task = path.parent.name
        convert = converters[task]
        for i, r in enumerate(_jsonl(path)):
            pair = convert(r)
            if pair is None:
                continue
            prompt, answer = clean(pair[0]), clean(pair[1])
            key = normalize(prompt)
            # ASDiv's evaluation items ask "passage question"; utility-qa stores that joined text as the question
            if key in banned or key in seen or not key or non_answer(answer):
                continue
            if quarantine is not None and quarantine.match(prompt):
                continue
            seen.add(key)
            out.append(Conversation(messages=[{"role": "user", "content": prompt},
                                              {"role": "assistant", "content": answer}],
                                    id=f"{prefix}-{task.lower()}-{i:04d}", source=f"{source}/{task}"))
    return out


def sample_howto(n: int, seed: int = 0) -> list[Conversation]:
    """`n` how-to conversations, a seeded shuffle of `howto_conversations` (never more than there are)."""
    rows = howto_conversations()
    random.Random(f"{seed}:howto").shuffle(rows)
    return rows[:n]


def sample_qa(n: int, seed: int = 0) -> list[Conversation]:
    """`n` conversations spread evenly over the tasks (seeded shuffle within each, then round robin)."""
    by_task: dict[str, list[Conversation]] = {}
    for c in qa_conversations():
        by_task.setdefault(c.source, []).append(c)
    for name, rows in by_task.items():
        random.Random(f"{seed}:{name}").shuffle(rows)
    out, queues = [], [list(v) for _, v in sorted(by_task.items())]
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out
