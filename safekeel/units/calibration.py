"""Calibration sets for unit scoring, tokenized so that statistics see response tokens only.

safety = harmful prompts + refusals (the train split of the bundled uncensorbench triples, or a triples file), or
`own`: the same prompts with the model's own refusals (prompts it answers are dropped), for an aligned model;
utility = benign prompts + helpful answers (a conversations file, or safekeel's benign prompts answered by the model
itself: self-distillation, cached under $SAFEKEEL_HOME/cache/units/ because generation is the slow part).
The prompt is rendered with `add_generation_prompt=True`; every token after it is a response token, so any chat
template works. A content hash of each set goes into the unit map so a map can be traced to its data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import device as devices
from ..errors import SafekeelError
from ..io import append_jsonl, read_jsonl_rows, write_jsonl
from ..sources import home

Pair = tuple[str, str]  # (prompt, response)


@dataclass
class Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    response_mask: torch.Tensor  # True on response tokens (the targets of the losses)
    labels: torch.Tensor  # input_ids on response tokens, -100 elsewhere (HF shifts them)

    @property
    def predicting_mask(self) -> torch.Tensor:
        """True at the positions whose output predicts a response token: the last prompt position (its output is
        the first answer token, the comply-or-refuse decision) up to the one before the last response token. The
        positions snip's loss is computed from, so activation statistics (ssah, wanda) read the same ones."""
        return torch.nn.functional.pad(self.response_mask[:, 1:], (0, 1), value=False)


def pairs_hash(pairs: list[Pair]) -> str:
    return hashlib.sha256(json.dumps(pairs, ensure_ascii=False).encode()).hexdigest()[:16]


def safety_pairs(spec: str = "uncensorbench", n: int | None = None) -> list[Pair]:
    """Harmful prompt + refusal. 'uncensorbench' = its train split (`data.splits`: calibration never sees a
    validation or test request)."""
    if spec == "uncensorbench":
        from ..data.bundled import uncensorbench_triples
        from ..data.splits import select

        triples = select(uncensorbench_triples(), "train")
    else:
        from ..data import load_triples

        triples = load_triples(spec)
    return [(t.prompt, t.safe_response) for t in triples][:n]


def own_refusal_pairs(model, tok, model_id: str, n: int | None = None, max_new_tokens: int = 96,
                      batch_size: int = 16) -> list[Pair]:
    """Harmful TRAIN prompts + the model's OWN refusals (SSAH on an aligned model: its safety units are the ones
    that produce *its* refusals). Prompts the model answers instead of refusing are dropped; none refused is an
    error, because a model that never refuses has no safety units to find."""
    from ..judges.keyword import is_refusal

    prompts = [p for p, _ in safety_pairs("uncensorbench")]
    answers = self_distill(model, tok, prompts, model_id, max_new_tokens, batch_size)
    own = [(p, a) for p, a in answers if is_refusal(a)]
    if not own:
        raise SafekeelError(f"{model_id} refuses none of the {len(prompts)} harmful train prompts: there is no own "
                            "refusal to calibrate safety units on (align the model first, or use --safety "
                            "uncensorbench for the bundled refusals)")
    return own[:n]


def benign_split(heldout: bool = False) -> list[dict]:
    """safekeel's benign prompts of the registry's train split (calibration) or, `heldout`, its test split
    (evaluation): the same prompts every other stage keeps apart."""
    from ..data.bundled import benign_prompts
    from ..data.splits import select

    return select(benign_prompts(), "test" if heldout else "train")


def utility_pairs(spec: str, model=None, tok=None, model_id: str = "", n: int | None = None,
                  max_new_tokens: int = 96, batch_size: int = 16) -> list[Pair]:
    """Benign prompt + helpful answer: from a conversations file, or self-distilled on the benign TRAIN prompts."""
    if spec != "benign":
        from ..data import load_conversations

        out = []
        for c in load_conversations(spec):
            user = [m["content"] for m in c.messages if m["role"] == "user"]
            out.append((user[-1], c.messages[-1]["content"]))
        return out[:n]
    prompts = [r["prompt"] for r in benign_split()][:n]
    return self_distill(model, tok, prompts, model_id, max_new_tokens, batch_size)


def self_distill(model, tok, prompts: list[str], model_id: str, max_new_tokens: int = 96,
                 batch_size: int = 16) -> list[Pair]:
    """The model's own greedy answers to `prompts`; cached per (weights, length) and prompt, so subsets and supersets
    of earlier calls only generate what is missing. Keyed by the weights hash, not the model's name: a model
    retrained at the same path, or the same base with an adapter, must not get another model's answers."""
    from .unitmap import weights_hash

    if model is None or tok is None:
        raise SafekeelError("self-distilled utility answers need the model")
    key = hashlib.sha256(json.dumps([weights_hash(model), max_new_tokens]).encode()).hexdigest()[:16]
    cache = home() / "cache" / "units" / f"distill-{key}.jsonl"
    known = {r["prompt"]: r["response"] for r in read_jsonl_rows(cache)}
    missing = list(dict.fromkeys(p for p in prompts if p not in known))
    if missing:
        from ..eval.generate import GenerationRequest, generate

        reqs = [GenerationRequest(messages=[{"role": "user", "content": p}]) for p in missing]

        def save(idx: list[int], answers: list[str]) -> None:
            for i, a in zip(idx, answers, strict=True):
                known[missing[i]] = a if a.strip() else "OK."
                append_jsonl(cache, {"prompt": missing[i], "response": known[missing[i]]})

        generate(model, tok, reqs, max_new_tokens=max_new_tokens, batch_size=batch_size, on_batch=save)
    return [(p, known[p]) for p in prompts]


def encode_pair(tok, prompt: str, response: str, max_length: int) -> tuple[list[int], int]:
    """(token ids, index of the first response token); the response is cut to fit `max_length`."""
    msgs = [{"role": "user", "content": prompt}]
    head = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(msgs + [{"role": "assistant", "content": response}], tokenize=False)
    if not full.startswith(head):
        raise SafekeelError("chat template: the rendered conversation does not start with the rendered prompt")
    head_ids = tok(head, add_special_tokens=False)["input_ids"]
    ids = head_ids + tok(full[len(head):], add_special_tokens=False)["input_ids"]
    ids = ids[:max_length]
    if len(ids) <= len(head_ids):
        raise SafekeelError(f"prompt longer than max_length={max_length} tokens: {prompt[:60]!r}")
    return ids, len(head_ids)


def make_batches(tok, pairs: list[Pair], batch_size: int = 8, max_length: int = 256) -> list[Batch]:
    """Right-padded batches of similar length; response tokens marked in `response_mask` and `labels`."""
    if not pairs:
        raise SafekeelError("empty calibration set")
    encoded = [encode_pair(tok, p, r, max_length) for p, r in pairs]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i][0]))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    batches = []
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        width = max(len(encoded[i][0]) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        resp = torch.zeros((len(idx), width), dtype=torch.bool)
        for row, i in enumerate(idx):
            seq, start = encoded[i]
            ids[row, :len(seq)] = torch.tensor(seq)
            att[row, :len(seq)] = 1
            resp[row, start:len(seq)] = True
        labels = torch.where(resp, ids, torch.full_like(ids, -100))
        batches.append(Batch(ids, att, resp, labels))
    return batches


@torch.no_grad()
def mean_nll(model, batches: list[Batch]) -> float:
    """Mean token NLL of the response tokens (`labels`) over `batches`."""
    device = devices.input_device(model)
    total, n = 0.0, 0
    for b in batches:
        logits = model(input_ids=b.input_ids.to(device), attention_mask=b.attention_mask.to(device),
                       use_cache=False).logits.float()
        labels = b.labels.to(device)[:, 1:]
        total += float(torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                         labels.reshape(-1), ignore_index=-100, reduction="sum"))
        n += int((labels != -100).sum())
    return total / max(n, 1)


def save_pairs(path: str | Path, pairs: list[Pair]) -> None:
    write_jsonl(path, [{"prompt": p, "response": r} for p, r in pairs])
