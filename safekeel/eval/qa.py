"""QA accuracy on the bundled utility set (`utility-qa`: MMLU, OpenBookQA, ASDiv): does a safety recipe cost utility?

Multiple choice (MMLU, OpenBookQA) is scored the lm-eval way, without generation: the option whose text is likeliest
(mean log-probability of its tokens) as the start of the assistant's answer is the model's choice. ASDiv (arithmetic)
is answered by greedy generation and scored by its first number. Items are taken in file order per task, so every
model sees the same questions. No training set of safekeel contains these items (see `data/helpful.py`).
"""

from __future__ import annotations

import re

import torch

from .. import device as devices
from .generate import GenerationRequest, generate
from .metrics import rate

NUMBER = re.compile(r"-?\d[\d,]*\.?\d*")


def qa_items(per_task: dict[str, int] | None = None) -> list[dict]:
    """The first N items of each task (default: MMLU 100, OpenBookQA 50, ASDiv 50)."""
    from ..data.bundled import utility_questions

    per_task = per_task or {"MMLU": 100, "OpenBookQA": 50, "ASDiv": 50}
    out, seen = [], {}
    for q in utility_questions():
        if seen.get(q["task"], 0) < per_task.get(q["task"], 0):
            seen[q["task"]] = seen.get(q["task"], 0) + 1
            out.append(q)
    return out


def _options(q: dict) -> list[str]:
    return [o.strip() for o in (q["options"] or "").splitlines() if o.strip()]


def _number(text: str) -> float | None:
    m = NUMBER.search(text.replace(",", ""))
    try:
        return float(m.group().rstrip(".")) if m else None
    except ValueError:
        return None


@torch.no_grad()
def option_scores(model, tok, prompt: str, options: list[str]) -> list[float]:
    """Mean log-probability of each option's tokens as the assistant's answer to `prompt`."""
    device = devices.input_device(model)
    head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    head_ids = tok(head, add_special_tokens=False)["input_ids"]
    seqs = [head_ids + tok(o, add_special_tokens=False)["input_ids"] for o in options]
    width = max(len(s) for s in seqs)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in seqs]).to(device)
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs]).to(device)
    logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), -1)
    out = []
    for row, s in enumerate(seqs):
        targets = torch.tensor(s[len(head_ids):]).to(logp.device)
        picked = logp[row, len(head_ids) - 1: len(s) - 1].gather(1, targets[:, None])
        out.append(float(picked.mean()))
    return out


def qa_accuracy(model, tok, items: list[dict], max_new_tokens: int = 32, batch_size: int = 16) -> dict:
    """{overall, per task: rate with Wilson CI} and the per-item rows {task, question, pred, answer, correct}."""
    rows, gen_items = [], []
    for q in items:
        opts = _options(q)
        if opts:
            scores = option_scores(model, tok, f"{q['question'].strip()}\n" + "\n".join(opts), opts)
            pred = opts[max(range(len(opts)), key=scores.__getitem__)]
            rows.append({"task": q["task"], "question": q["question"], "pred": pred, "answer": q["answer"],
                         "correct": pred.strip() == q["answer"].strip()})
        else:
            gen_items.append(q)
    if gen_items:
        reqs = [GenerationRequest(messages=[{"role": "user", "content": q["question"]}]) for q in gen_items]
        answers = generate(model, tok, reqs, max_new_tokens=max_new_tokens, batch_size=batch_size)
        for q, a in zip(gen_items, answers, strict=True):
            want, got = _number(q["answer"]), _number(a)
            rows.append({"task": q["task"], "question": q["question"], "pred": a, "answer": q["answer"],
                         "correct": want is not None and got is not None and abs(want - got) < 1e-6})
    tasks = sorted({r["task"] for r in rows})
    return {"overall": rate([r["correct"] for r in rows]),
            "tasks": {t: rate([r["correct"] for r in rows if r["task"] == t]) for t in tasks}, "rows": rows}
