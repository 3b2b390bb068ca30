"""Real harmful prefixes for any behavior set: a model's own compliant answers, kept where the judge calls them unsafe.

The k-token recovery attack needs the start of a genuinely harmful answer; only uncensorbench ships one per prompt
(150). A model that complies (the un-aligned base model) writes them for HarmBench, StrongREJECT, AdvBench and
Do-Not-Answer too. The answers are generated once per (weights, prompt, length) and cached under a key of the
weights' hash, so a retrained model at the same path never reuses another model's answers; an answer becomes a
`target` only if the judge calls it unsafe, so a refusal or a vague answer never poses as a harmful prefix.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..data.records import Behavior
from ..io import read_jsonl_rows, write_jsonl


def own_answers(model, tok, behaviors: list[Behavior], cache_dir: str | Path, max_new_tokens: int = 64,
                batch_size: int = 16, sample_seed: int | None = None, temperature: float = 0.8) -> dict[str, str]:
    """{behavior id: the model's greedy answer}, generated once per weights hash and cached. With `sample_seed`, a
    sampled answer instead (its own cache file per seed and temperature): a prompt the greedy answer refused may
    still be answered harmfully by a sample, which is how a harvest finds more harmful answers per prompt."""
    from ..eval.generate import GenerationRequest, generate
    from ..units.unitmap import weights_hash

    sampled = "" if sample_seed is None else f"-s{sample_seed}-T{temperature:g}"
    path = Path(cache_dir) / f"own-answers-{weights_hash(model)[:16]}-t{max_new_tokens}{sampled}.jsonl"
    cached = {r["prompt"]: r["answer"] for r in read_jsonl_rows(path)} if path.exists() else {}
    todo = [b for b in dict.fromkeys(b.prompt for b in behaviors) if b not in cached]
    if todo:
        answers = generate(model, tok, [GenerationRequest([{"role": "user", "content": p}]) for p in todo],
                           max_new_tokens=max_new_tokens, batch_size=batch_size, do_sample=sample_seed is not None,
                           temperature=temperature, seed=sample_seed or 0)
        cached.update(zip(todo, answers, strict=True))
        write_jsonl(path, [{"prompt": p, "answer": a} for p, a in cached.items()])
    return {b.id: cached[b.prompt] for b in behaviors}


def with_own_targets(behaviors: list[Behavior], answers: dict[str, str], judge) -> tuple[list[Behavior], dict]:
    """(behaviors whose own answer the judge calls unsafe, with that answer as `target`; counts)."""
    items = [{"behavior": b.prompt, "response": answers[b.id]} for b in behaviors]
    verdicts = judge.judge(items) if items else []
    kept = [replace(b, target=answers[b.id]) for b, v in zip(behaviors, verdicts, strict=True) if v.get("unsafe")]
    by_source: dict[str, list[int]] = {}
    for b, v in zip(behaviors, verdicts, strict=True):
        by_source.setdefault(b.source or "-", [0, 0])
        by_source[b.source or "-"][0] += 1
        by_source[b.source or "-"][1] += bool(v.get("unsafe"))
    return kept, {"asked": len(behaviors), "kept": len(kept),
                  "by_source": {s: {"asked": a, "kept": k} for s, (a, k) in sorted(by_source.items())}}
