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
    """Mean log-probability of each option's tokens as the assistant's answer to `prompt`.

    The shared head (prompt + generation prompt) runs once; its KV cache is repeated for the options, which then
    run as one right-padded batch: one pass over the question instead of one per option."""
    device = devices.input_device(model)
    head = tok.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
    head_ids = tok(head, add_special_tokens=False)["input_ids"]
    opts = [tok(o, add_special_tokens=False)["input_ids"] for o in options]
    first = model(input_ids=torch.tensor([head_ids]).to(device), use_cache=True)
    first_logp = torch.log_softmax(first.logits[0, -1].float(), -1)
    out = [first_logp[o[0]] for o in opts]
    rest = [o[:-1] for o in opts]  # option token i predicts token i + 1
    width = max(len(r) for r in rest)
    if width:
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        cache = first.cache
        cache.batch_repeat_interleave(len(opts))
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rest]).to(device)
        mask = torch.tensor([[1] * (len(head_ids) + len(r)) + [0] * (width - len(r)) for r in rest]).to(device)
        logp = torch.log_softmax(model(input_ids=ids, attention_mask=mask, cache=cache,
                                       use_cache=True).logits.float(), -1)
        for row, o in enumerate(opts):
            if len(o) > 1:
                targets = torch.tensor(o[1:]).to(logp.device)
                out[row] = out[row] + logp[row, : len(o) - 1].gather(1, targets[:, None]).sum()
    return [float(total) / len(o) for total, o in zip(out, opts, strict=True)]


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
