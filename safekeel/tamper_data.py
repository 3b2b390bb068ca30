"""The training chats of `safekeel tamper`'s attacks, and of the `mix` defense that adds refusals to them.

Kept apart from the verb so what a fine-tune trains on can be read (and tested) without the training loop.
"""

from __future__ import annotations

import random

from .errors import SafekeelError

N_ALIGN_SKIP = 2000  # QA chats skipped: alignment sets take the first round(ratio x safety rows) of sample_qa


def split_triples(heldout: list, train: list, n_attack: int, source: str = "heldout") -> tuple[list, list]:
    """(attack pool, evaluation triples): the first `n_attack` of `source`'s triples (train, or heldout = test) and
    the held-out triples the pool does not use."""
    held_pool = source in ("heldout", "test")
    pool = (heldout if held_pool else train)[:n_attack]
    evaluation = heldout[n_attack:] if held_pool else list(heldout)
    if len(pool) < n_attack or not evaluation:
        raise SafekeelError(f"the harmful attacks need {n_attack} {source} triples and at least one held-out triple "
                            f"left to evaluate; there are {len(heldout)} held-out and {len(train)} train triples "
                            "(use smaller N, --attack-triples train, or a larger --triples file)")
    return pool, evaluation


def harmful_rows(triples: list) -> list[dict]:
    return [{"id": f"tamper-{t.id}", "kind": "helpful", "messages": [
        {"role": "user", "content": t.prompt}, {"role": "assistant", "content": t.harmful_response}]} for t in triples]


def benign_rows(n: int, seed: int = 0, exclude: str | None = None) -> list[dict]:
    """`n` QA chats after the first N_ALIGN_SKIP of `sample_qa` (prefix-stable), none with a prompt of `exclude`."""
    from .data.helpful import sample_qa
    from .train.run import load_rows

    banned = set()
    if exclude:
        banned = {m["content"] for r in load_rows(exclude) for m in r["messages"][:2] if m["role"] == "user"}
    pool = [c for c in sample_qa(N_ALIGN_SKIP + n + len(banned), seed)[N_ALIGN_SKIP:]
            if next(m["content"] for m in c.messages if m["role"] == "user") not in banned]
    if len(pool) < n:
        raise SafekeelError(f"only {len(pool)} QA chats left for a benign attack of {n}")
    return [{"id": f"tamper-{c.id}", "kind": "helpful", "messages": c.messages} for c in pool[:n]]


def mix_rows(rows: list[dict], triples: str, fraction: float, seed: int = 0,
             avoid: frozenset[str] = frozenset()) -> list[dict]:
    """`rows` plus round(fraction x len(rows)) refusal chats, shuffled: Bianchi et al. 2024 ("Safety-Tuned LLaMAs")
    keep a fine-tuned model safe by mixing a few percent of safety examples into its instruction data. The refusals
    are the train-split triples' (prompt, safe response), from the end of the pool and never on a prompt of `avoid`
    (the harmful attacks' prompts: no fine-tune sees one prompt answered both ways)."""
    from .data.build_cli import load_triple_set

    pool = [t for t in load_triple_set(triples, "train") if t.prompt not in avoid]
    k = max(1, round(fraction * len(rows)))
    if k > len(pool):
        raise SafekeelError(f"the mix defense needs {k} train-split refusals of {triples!r} that no harmful attack "
                            f"trains on; there are {len(pool)}")
    refusals = [{"id": f"tamper-mix-{t.id}", "kind": "safe", "messages": [
        {"role": "user", "content": t.prompt}, {"role": "assistant", "content": t.safe_response}]} for t in pool[-k:]]
    out = rows + refusals
    random.Random(seed).shuffle(out)
    return out
