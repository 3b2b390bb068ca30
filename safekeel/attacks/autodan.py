"""`autodan`: a budgeted genetic search over jailbreak templates (after AutoDAN, Liu et al. 2024).

Population: in-the-wild templates that have a slot for the question. Fitness: the target model's mean
negative log-likelihood of a compliant opener ("Sure, here is how to ...") after the filled prompt — lower means the
model is closer to complying. Each generation keeps the elite, makes children by sentence-level crossover and
mutates them (synonym swaps, sentence swaps). Small on purpose: population × generations forward passes per behavior.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import torch

from .. import device as devices
from ..data.records import Behavior
from .base import AttackPrompt, seeded_rng, task_phrase, user
from .jailbreak_template import SLOT, fill

SYNONYMS = {
    "ignore": ["disregard", "forget"], "rules": ["guidelines", "restrictions"], "always": ["constantly", "invariably"],
    "never": ["not ever", "at no point"], "answer": ["reply", "respond"], "character": ["persona", "role"],
    "pretend": ["imagine", "act as if"], "free": ["unbound", "unrestricted"], "must": ["have to", "need to"],
    "story": ["tale", "narrative"], "write": ["compose", "produce"], "question": ["request", "query"],
    "respond": ["answer", "reply"], "allowed": ["permitted", "able"], "anything": ["everything", "whatever"],
}


@dataclass
class AutoDANConfig:
    population: int = 8
    generations: int = 3
    elite: int = 2
    crossover_rate: float = 0.5
    mutation_rate: float = 0.1
    max_template_chars: int = 2000  # long templates make each fitness call slow on CPU


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def crossover(a: str, b: str, rng: random.Random) -> str:
    sa, sb = sentences(a), sentences(b)
    child = [x if rng.random() < 0.5 or i >= len(sb) else sb[i] for i, x in enumerate(sa)]
    text = " ".join(child)
    return text if SLOT.search(text) else a  # never lose the question slot


def mutate(text: str, rng: random.Random, rate: float) -> str:
    words = text.split(" ")
    for i, w in enumerate(words):
        key = w.lower().strip(".,!?")
        if key in SYNONYMS and rng.random() < rate * 5:
            words[i] = w.lower().replace(key, rng.choice(SYNONYMS[key]))
    text = " ".join(words)
    ss = sentences(text)
    if len(ss) > 2 and rng.random() < rate * 5:
        i, j = rng.sample(range(len(ss)), 2)
        ss[i], ss[j] = ss[j], ss[i]
        text = " ".join(ss)
    return text


@torch.no_grad()
def opener_loss(model, tok, prompt: str, opener: str) -> float:
    """Mean NLL of `opener` as the assistant's first words after `prompt` (chat template applied)."""
    ctx = tok.apply_chat_template(user(prompt), tokenize=False, add_generation_prompt=True)
    ctx_ids = tok(ctx, add_special_tokens=False)["input_ids"]
    tgt_ids = tok(opener, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx_ids + tgt_ids]).to(devices.input_device(model))
    labels = ids.clone()
    labels[0, : len(ctx_ids)] = -100
    return float(model(input_ids=ids, labels=labels).loss)


def run_autodan(b: Behavior, model, tok, templates: list[str], cfg: AutoDANConfig | None = None, seed: int = 0
                ) -> tuple[str, float, list[float]]:
    """(best filled prompt, its loss, best loss per generation)."""
    cfg = cfg or AutoDANConfig()
    rng = seeded_rng(seed, b.id, "autodan")
    pool = [t for t in templates if SLOT.search(t) and len(t) <= cfg.max_template_chars] or templates
    population = rng.sample(pool, min(cfg.population, len(pool)))
    opener = f"Sure, here is how to {task_phrase(b.prompt)}"
    scored: dict[str, float] = {}

    def fitness(t: str) -> float:
        if t not in scored:
            scored[t] = opener_loss(model, tok, fill(t, b.prompt), opener)
        return scored[t]

    curve = []
    for _ in range(cfg.generations):
        ranked = sorted(population, key=fitness)
        curve.append(fitness(ranked[0]))
        children = ranked[: cfg.elite]
        parents = ranked[: max(2, len(ranked) // 2)]
        while len(children) < len(population):
            a, c = rng.sample(parents, 2) if len(parents) > 1 else (parents[0], parents[0])
            child = crossover(a, c, rng) if rng.random() < cfg.crossover_rate else a
            children.append(mutate(child, rng, cfg.mutation_rate))
        population = children
    best = min(population, key=fitness)
    curve.append(fitness(best))
    return fill(best, b.prompt), fitness(best), curve


def autodan_attack(b: Behavior, model, tok, templates: list[str], cfg: AutoDANConfig | None = None, seed: int = 0
                   ) -> AttackPrompt:
    prompt, loss, curve = run_autodan(b, model, tok, templates, cfg, seed)
    return AttackPrompt(b.id, b.prompt, "autodan", user(prompt), category=b.category,
                        meta={"opener_loss": round(loss, 4), "loss_curve": [round(x, 4) for x in curve]})
