"""`safekeel data build` (DeRTa training sets) and `safekeel data distill` (self-distilled helpful answers).

Registered under the existing `safekeel data` group by `safekeel/data/cli.py`. Each verb has a dataclass config,
a plain Python function (`run_build`, `run_distill`) the CLI and the demo call, and writes its resolved config next
to its outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import add_config_args, field, resolve_config, save_config
from ..errors import ConfigError
from .splits import select


@dataclass
class BuildConfig:
    triples: str = field("uncensorbench", help="safety triples: 'uncensorbench' (bundled) or a JSONL/JSON/CSV file")
    helpful: str | None = field(None, help="helpful conversations file ({messages} or {prompt,response}); optional")
    helpful_ratio: float = field(1.0, help="top the helpful data up with gold-answer QA conversations (source "
                                           "helpful-qa) until helpful rows = this x safety rows (0 = none; 1 was "
                                           "measured best, benchmarks/derta_recipe.py)")
    howto_fraction: float = field(0.0, help="share of that top-up drawn from everyday how-to requests with people's "
                                            "solutions (source howto-qa, PIQA) instead of QA: the safety rows' "
                                            "harmful requests are how-tos, and QA never asks one")
    recipe: Literal["derta", "vanilla", "prefix_only", "rto_only"] = field("derta", help="which training set to build")
    split: Literal["train", "val", "test", "heldout", "all"] = field(
        "train", help="which split of the triples to use (safekeel.data.splits; heldout = test, evaluation only)")
    prefix_unit: Literal["tokens", "words"] = field(
        "tokens", help="harmful prefix length unit: tokens (paper: k ~ U{0..|h|}) or words (reference: 1..n-2; "
                           "no prefix row under 3 words)")
    zero_prefix_fraction: float = field(1 / 3, help="fraction of prefix examples forced to k = 0, a plain refusal at "
                                                    "the turn start (the reference's data code: every third)")
    opener_fraction: float = field(0.0, help="share of prefix and RTO rows (prefix rows only for first_person) whose "
                                             "harmful answer starts with an opener (--opener-style), with the same "
                                             "share of helpful rows opening the same way and going on helpfully")
    opener_style: Literal["compliant", "first_person"] = field(
        "compliant", help="which openers: compliant ('Sure, here is'), or first_person commitments ('I will "
                          "explain ...', what a completion attack makes the model echo; prefix and helpful rows only)")
    helpful_opener_fraction: float | None = field(None, help="share of helpful rows that open with an opener (default: "
                                                            "opener_fraction)")
    raw_prefix_fraction: float = field(0.0, help="share of prefix rows written as a plain document, no chat "
                                                 "template (request, blank line, harmful prefix + refusal): the "
                                                 "refusal outside a chat, where a completion attack asks")
    raw_helpful_fraction: float = field(0.0, help="share of single-turn helpful rows written as a plain document "
                                                  "too, so raw documents do not always end in a refusal")
    refusal_lead: str | None = field(None, help="a word every training refusal opens with ('Sorry': 'Sorry, I cannot "
                                                "...'), so the RTO token is not the 'I' a completion attack makes "
                                                "the model echo ('I will I I I'); measured: no collapse, but raw "
                                                "benign documents refused (docs/derta.md); default: as given")
    refusal: str | None = field(None, help="refusal string whose first assistant-turn token is the RTO target "
                                           "(default: the most common first token of the training refusals)")
    model: str = field("smollm2-135m", help="tokenizer used for token-unit prefixes, the refusal token and the stats")
    seed: int = field(0, help="seed: same inputs + seed give a byte-identical file")
    out: str = field("runs/data/derta", help="output directory (train.jsonl, stats.json, config.yaml)")

    def validate(self) -> None:
        for name in ("zero_prefix_fraction", "howto_fraction", "opener_fraction", "raw_prefix_fraction", "helpful_opener_fraction",
                     "raw_helpful_fraction"):
            if getattr(self, name) is not None and not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"'{name}' must be in [0, 1]")
        if self.helpful_ratio < 0:
            raise ConfigError("'helpful_ratio' must be >= 0")
        if self.refusal_lead is not None and (not self.refusal_lead.strip() or " " in self.refusal_lead.strip()):
            raise ConfigError("'refusal_lead' must be one word")


@dataclass
class DistillConfig:
    model: str = field("smollm2-135m", help="model that answers the prompts (embedded name, HF id or folder)")
    adapter: str | None = field(None, help="optional PEFT adapter for the model")
    prompts: str = field("benign,benign-scary", help="bundled 'benign', 'benign-scary', 'benign-scary-more' "
                                                   "(comma-joined: several) or a JSONL/JSON/CSV file with a 'prompt' "
                                                   "field")
    split: Literal["train", "val", "test", "heldout", "all"] = field(
        "train", help="split of the prompts to answer (train keeps benign validation and test prompts unseen)")
    max_new_tokens: int = field(160, help="tokens per answer")
    batch_size: int = field(8, help="generation batch size")
    device: str = field("auto", help="auto (the first GPU when there is one, else the CPU), cpu, cuda[:N], multi")
    min_chars: int = field(20, help="drop answers shorter than this (truncated or empty)")
    drop_refusals: bool = field(True, help="drop answers the keyword judge reads as refusals (no helpful example)")
    out: str = field("runs/data/helpful.jsonl", help="output JSONL of {messages} conversations")


def register(dsub) -> None:
    b = dsub.add_parser("build", help="build a DeRTa / baseline training set from safety triples + helpful data")
    add_config_args(b, BuildConfig)
    b.set_defaults(func=_build)
    d = dsub.add_parser("distill", help="have a model answer benign prompts to make helpful conversations")
    add_config_args(d, DistillConfig)
    d.set_defaults(func=_distill)


def load_triple_set(spec: str, part: str = "train") -> list:
    """Triples from the bundled uncensorbench set or a file, restricted to one split of the registry
    (`safekeel.data.splits`: train, val, test = heldout, or all)."""
    from . import bundled
    from .readers import load_triples

    triples = bundled.uncensorbench_triples() if spec == "uncensorbench" else load_triples(spec)
    return select(triples, part)


def load_prompt_set(spec: str, part: str = "train") -> list[dict]:
    """Prompts of a bundled set or a file, restricted to one split; "benign,benign-scary" joins bundled sets."""
    from . import bundled
    from .eval_sets import OWN_SETS
    from .readers import load_behaviors

    if "," in spec and all(p.strip() in OWN_SETS for p in spec.split(",")):
        return [r for p in spec.split(",") for r in load_prompt_set(p.strip(), part)]
    if spec in OWN_SETS:
        rows = bundled.own_set(spec)
    else:
        rows = [{"id": b.id, "prompt": b.prompt} for b in load_behaviors(spec)]
    return select(rows, part)


def run_build(cfg: BuildConfig) -> Path:
    """Write train.jsonl + stats.json + config.yaml into cfg.out; returns the train.jsonl path.

    The RTO refusal token (derived or `cfg.refusal`) is recorded in stats.json (`refusal`), as `refusal` in the saved
    config (so the config rebuilds the same set) and on every RTO row.
    """
    from dataclasses import replace

    from ..io import write_json, write_jsonl
    from ..models import load_tokenizer
    from .derta import build_examples, dataset_stats, lead_refusal
    from .readers import load_conversations
    from .tokenize import derive_refusal

    triples = load_triple_set(cfg.triples, cfg.split)
    if cfg.refusal_lead:
        triples = [replace(t, safe_response=lead_refusal(cfg.refusal_lead, t.safe_response)) for t in triples]
    helpful = load_conversations(cfg.helpful) if cfg.helpful else []
    if cfg.helpful_ratio > 0:
        from .derta import RECIPES
        from .helpful import sample_howto, sample_qa

        safety_rows = len(RECIPES[cfg.recipe]) * len(triples)
        top_up = max(0, round(cfg.helpful_ratio * safety_rows) - len(helpful))
        howto = sample_howto(round(cfg.howto_fraction * top_up), cfg.seed) if cfg.howto_fraction else []
        helpful += howto + sample_qa(top_up - len(howto), cfg.seed)
    tok = load_tokenizer(cfg.model)
    refusal = derive_refusal(tok, [t.safe_response for t in triples], cfg.refusal)
    rows = build_examples(triples, helpful, recipe=cfg.recipe, tokenizer=tok, prefix_unit=cfg.prefix_unit,
                          zero_prefix_fraction=cfg.zero_prefix_fraction, seed=cfg.seed, refusal=refusal["text"],
                          opener_fraction=cfg.opener_fraction, raw_prefix_fraction=cfg.raw_prefix_fraction,
                          opener_style=cfg.opener_style, helpful_opener_fraction=cfg.helpful_opener_fraction,
                          raw_helpful_fraction=cfg.raw_helpful_fraction)
    out = Path(cfg.out)
    path = out / "train.jsonl"
    write_jsonl(path, rows)
    write_json(out / "stats.json", {**dataset_stats(rows, tok), "refusal": refusal})
    save_config(replace(cfg, refusal=refusal["text"]), out)
    return path


def run_distill(cfg: DistillConfig) -> Path:
    """Answer prompts with the model (batched, greedy) and write {messages} conversations; returns the file."""
    from ..eval.generate import GenerationRequest, generate
    from ..io import write_jsonl
    from ..judges.keyword import is_refusal
    from ..models import load_model

    prompts = load_prompt_set(cfg.prompts, cfg.split)
    model, tok = load_model(cfg.model, adapter=cfg.adapter, device=cfg.device)
    requests = [GenerationRequest(messages=[{"role": "user", "content": p["prompt"]}]) for p in prompts]
    answers = generate(model, tok, requests, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size)
    rows = [{"id": p["id"], "source": f"distill:{cfg.model}",
             "messages": [{"role": "user", "content": p["prompt"]}, {"role": "assistant", "content": a}]}
            for p, a in zip(prompts, answers, strict=True)
            if len(a.strip()) >= cfg.min_chars and not (cfg.drop_refusals and is_refusal(a))]
    out = Path(cfg.out)
    write_jsonl(out, rows)
    save_config(cfg, out.parent, name=out.stem + ".config.yaml")
    return out


def _build(args) -> int:
    import json

    cfg = resolve_config(BuildConfig, args)
    path = run_build(cfg)
    stats = json.loads((path.parent / "stats.json").read_text(encoding="utf-8"))
    print(f"{cfg.recipe}: {stats['n']} examples {stats['counts']} -> {path}")
    r = stats["refusal"]
    share = "" if r["share"] is None else f", first token of {100 * r['share']:.0f}% of the refusals"
    print(f"RTO refusal token: {r['text']!r} (id {r['token_id']}, {r['source']}{share})")
    return 0


def _distill(args) -> int:
    cfg = resolve_config(DistillConfig, args)
    path = run_distill(cfg)
    n = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    print(f"distilled {n} helpful conversations -> {path}")
    return 0
