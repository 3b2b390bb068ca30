"""Batched chat generation with left padding (HF backend).

Prompts are rendered with the model's chat template; an optional assistant prefill is appended after the
generation prompt (prefill and harmful-prefix attacks), and `raw=True` skips the template (completion attack).
Batches are formed from length-sorted prompts so little compute is spent on padding.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from .. import device as devices


@dataclass
class GenerationRequest:
    messages: list[dict[str, str]]
    prefill: str = ""
    raw: bool = False  # messages[0]["content"] is plain text, no chat template


def render(tok, req: GenerationRequest) -> str:
    if req.raw:
        return req.messages[-1]["content"] + req.prefill
    text = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
    return text + req.prefill


@torch.no_grad()
def generate(model, tok, requests: Sequence[GenerationRequest], max_new_tokens: int = 128, batch_size: int = 8,
             do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
             on_batch: Callable[[list[int], list[str]], None] | None = None, stop_strings: Sequence[str] = ()
             ) -> list[str]:
    """Responses (continuations only, special tokens removed) in the order of `requests`. A row stops at its first
    `stop_strings` hit (kept in its text): a batch then runs only as long as its longest unfinished row."""
    texts = [render(tok, r) for r in requests]
    # The template already holds BOS where the model wants one; do not add a second.
    encoded = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    order = sorted(range(len(texts)), key=lambda i: -len(encoded[i]))
    out: list[str | None] = [None] * len(texts)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    device = devices.input_device(model)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            seq = encoded[i]
            ids[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = 1
        if do_sample:
            torch.manual_seed(seed + start)
        gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=max_new_tokens,
                             do_sample=do_sample, temperature=temperature if do_sample else None,
                             top_p=top_p if do_sample else None, top_k=None, pad_token_id=pad_id,
                             **({"stop_strings": list(stop_strings), "tokenizer": tok} if stop_strings else {}))
        decoded = tok.batch_decode(gen[:, width:], skip_special_tokens=True)
        for i, text in zip(idx, decoded, strict=True):
            out[i] = text.strip()
        if on_batch:
            on_batch(idx, [out[i] for i in idx])
    return out  # type: ignore[return-value]
