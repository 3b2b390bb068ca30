"""The three verbs as plain functions with their configs: `run_score`, `run_classify`, `run_ablate` (-> out dir).

score    : calibration sets -> scores.safetensors (`<block>.score_safety`, `<block>.score_utility`) + scores.json
classify : scores -> unit map (unit_map.safetensors + unit_map.json + units_per_class.png)
ablate   : unit map -> refusal rate (direct, prefill) and utility of the dense model, the pruned model and a
           random-units control of equal size per block; optional export of the zeroed weights.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..config import field, save_config
from ..errors import SafekeelError
from ..io import write_bytes, write_json, write_jsonl


def _required(help: str):  # noqa: A002
    return dataclasses.field(default=None, metadata={"help": help, "required": True})


@dataclass
class ScoreConfig:
    model: str = field("smollm2-135m", help="model: embedded name, HF id or local folder")
    adapter: str | None = field(None, help="PEFT adapter to merge before scoring")
    method: Literal["ssah", "wanda", "snip"] = field("ssah", help="ssah (variance x column norm^2), wanda, snip")
    safety: str = field("uncensorbench", help="safety set: 'uncensorbench' (TRAIN split: prompt + refusal), 'own' "
                                              "(the same prompts + the model's own refusals; for an aligned model) "
                                              "or a triples file (prompt + safe_response)")
    utility: str = field("benign", help="utility set: 'benign' (TRAIN split, self-distilled answers) or a "
                                        "conversations file")
    n_safety: int = field(128, help="at most this many safety examples")
    n_utility: int = field(128, help="at most this many utility examples")
    max_length: int = field(256, help="tokens per example (responses are cut to fit)")
    batch_size: int = field(8, help="examples per forward pass")
    distill_max_new_tokens: int = field(96, help="length of self-distilled helpful answers")
    distill_batch_size: int = field(16, help="generation batch size for self-distillation")
    dtype: str = field("float32", help="float32, bfloat16, float16, auto (scores are sums of small products: fp32 "
                                       "by default on every device)")
    device: str = field("auto", help="auto (the first GPU when there is one, else the CPU), cpu, cuda[:N], multi")
    out: str = field("runs/units/score", help="output directory")


@dataclass
class ClassifyConfig:
    scores: str = _required("folder written by `units score` (or its scores.safetensors)")
    esu: float = field(0.013, help="fraction of units that are exclusive safety units (paper 1.3%)")
    euu: float = field(0.133, help="fraction of exclusive utility units (paper 13.3%)")
    ru: float = field(0.148, help="fraction of redundant units (paper 14.8%)")
    cu_top: float = field(0.062, help="fraction marked as safety-critical CU (top safety score among CU); "
                                      "ESU + cu_top ~ 7.5% is what freezing keeps fixed")
    normalize: Literal["rank", "max"] = field("rank", help="score normalisation: rank (in [0,1]) or divide by max")
    scope: Literal["layer", "global"] = field("layer", help="normalise and apply fractions per block or globally")
    attn_granularity: Literal["channel", "head"] = field("channel", help="classify attention channels or heads")
    calibrate_sizes: bool = field(False, help="choose the ESU and RU sizes by pruning degradation on the "
                                              "calibration sets (loads the scored model)")
    esu_candidates: list[float] = field([0.005, 0.01, 0.013, 0.02, 0.04], help="ESU fractions to try")
    ru_candidates: list[float] = field([0.05, 0.1, 0.148, 0.2, 0.3], help="RU fractions to try")
    ru_tolerance: float = field(0.02, help="largest NLL increase (nats) that still counts as redundant")
    calibrate_examples: int = field(32, help="calibration examples per set used for size calibration")
    out: str | None = field(None, help="output directory (default: the scores folder)")

    def validate(self) -> None:
        if min(self.esu, self.euu, self.ru, self.cu_top) < 0 or self.esu + self.euu + self.ru + self.cu_top > 1:
            raise SafekeelError("fractions must be >= 0 and sum to at most 1")


@dataclass
class AblateConfig:
    unit_map: str = _required("unit map folder or .safetensors")
    model: str = field("smollm2-135m", help="model the map was made for")
    adapter: str | None = field(None, help="PEFT adapter to merge first")
    classes: list[str] = field(["esu"], help="classes to prune: esu, euu, ru, cu (top CU), cu_all")
    match: str | None = field(None, help="prune only as many units per block as this class has (e.g. classes=ru "
                                         "match=esu: an ESU-sized random subset of RU)")
    control: bool = field(True, help="also evaluate a random-units control of the same size per block")
    dense: bool = field(True, help="also evaluate the unpruned model")
    seed: int = field(0, help="seed for random units")
    behaviors: str = field("harmbench", help="harmful behaviors (bundled name or file); not the calibration set")
    n_behaviors: int = field(100, help="behaviors asked per attack")
    attacks: list[str] = field(["direct", "prefill"], help="direct, prefill, system (direct under a safety "
                                                            "system prompt: a more refusing state)")
    safety_ppl: bool = field(True, help="perplexity of refusals / harmful answers on held-out uncensorbench triples")
    n_utility: int = field(48, help="held-out benign prompts for response perplexity (0 = skip)")
    n_checks: int = field(1000, help="benign prompts with answer checks to ask (0 = skip)")
    max_new_tokens: int = field(48, help="tokens generated per answer")
    batch_size: int = field(16, help="generation batch size")
    export: str | None = field(None, help="save the pruned model (zeroed weights) into this folder")
    device: str = field("auto", help="auto (the first GPU when there is one, else the CPU), cpu, cuda[:N], multi")
    unit_map_any_weights: bool = field(False, help="prune with a map scored on other weights than --model's (refused "
                                                   "by default: its units are another model's)")
    out: str = field("runs/units/ablate", help="output directory")


def load_for_units(model: str, adapter: str | None = None, dtype: str = "float32", device: str = "auto"):
    from ..models import load_model

    lm, tok = load_model(model, adapter=adapter, dtype=dtype, device=device)
    if adapter:
        lm = lm.merge_and_unload()
    return lm, tok


def run_score(cfg: ScoreConfig) -> Path:
    from safetensors.torch import save

    from . import calibration as cal
    from .discover import find_units
    from .scores import score

    out = Path(cfg.out)
    save_config(cfg, out)
    model, tok = load_for_units(cfg.model, cfg.adapter, cfg.dtype, cfg.device)
    units = find_units(model)
    safety = cal.own_refusal_pairs(model, tok, cfg.model, cfg.n_safety, cfg.distill_max_new_tokens,
                                   cfg.distill_batch_size) if cfg.safety == "own" else \
        cal.safety_pairs(cfg.safety, cfg.n_safety)
    utility = cal.utility_pairs(cfg.utility, model, tok, cfg.model, cfg.n_utility, cfg.distill_max_new_tokens,
                                cfg.distill_batch_size)
    cal.save_pairs(out / "calibration_safety.jsonl", safety)
    cal.save_pairs(out / "calibration_utility.jsonl", utility)
    t0 = time.time()
    s = score(model, cal.make_batches(tok, safety, cfg.batch_size, cfg.max_length), cfg.method)
    u = score(model, cal.make_batches(tok, utility, cfg.batch_size, cfg.max_length), cfg.method)
    tensors = {}
    for k in s:
        tensors[f"{k}.score_safety"], tensors[f"{k}.score_utility"] = s[k].contiguous(), u[k].contiguous()
    from .unitmap import weights_hash

    meta = {"model": cfg.model, "adapter": cfg.adapter, "method": cfg.method, "weights_sha256": weights_hash(model),
            "calibration": {"safety": {"source": cfg.safety, "n": len(safety), "sha256": cal.pairs_hash(safety)},
                            "utility": {"source": cfg.utility, "n": len(utility), "sha256": cal.pairs_hash(utility)}},
            "max_length": cfg.max_length, "seconds": round(time.time() - t0, 1),
            "blocks": {x.key: {"kind": x.kind, "units": x.n_units, "head_dim": x.head_dim, "heads": x.n_heads,
                               "kv_heads": x.n_kv_heads} for x in units}}
    write_bytes(out / "scores.safetensors", save(tensors, metadata={"safekeel": json.dumps(meta)}))
    write_json(out / "scores.json", meta)
    return out


def load_scores(path: str | Path) -> tuple[dict, dict, dict]:
    """(safety, utility, metadata) from a `units score` folder."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    p = Path(path)
    if not p.exists():
        raise SafekeelError(f"{p}: not found (expected a `units score` output folder)")
    folder = p if p.is_dir() else p.parent
    try:
        tensors = load_file(str(folder / "scores.safetensors"))
        meta = json.loads((folder / "scores.json").read_text(encoding="utf-8"))
    except (SafetensorError, OSError, ValueError) as e:
        raise SafekeelError(f"{folder}: not a readable `units score` output ({str(e).splitlines()[0]})") from None
    keys = {k.rsplit(".", 1)[0] for k in tensors}
    try:
        return ({k: tensors[f"{k}.score_safety"] for k in keys}, {k: tensors[f"{k}.score_utility"] for k in keys},
                meta)
    except KeyError as e:
        raise SafekeelError(f"{folder}: scores lack tensor {e}") from None


def run_classify(cfg: ClassifyConfig) -> Path:
    from . import unitmap

    safety, utility, meta = load_scores(cfg.scores)
    out = Path(cfg.out or (cfg.scores if Path(cfg.scores).is_dir() else Path(cfg.scores).parent))
    save_config(cfg, out, "classify_config.yaml")
    head_dim = {k: b["head_dim"] for k, b in meta.get("blocks", {}).items() if b.get("head_dim")}
    esu, ru, trials = cfg.esu, cfg.ru, None
    if cfg.calibrate_sizes:
        esu, ru, trials = _calibrate(cfg, safety, utility, meta, head_dim)
    um = unitmap.classify(safety, utility, esu, cfg.euu, ru, cfg.cu_top, cfg.normalize, cfg.scope,
                          cfg.attn_granularity, head_dim,
                          meta={k: meta.get(k) for k in ("model", "adapter", "method", "weights_sha256", "calibration")})
    if trials is not None:
        um.meta["size_calibration"] = {"esu": esu, "ru": ru, "ru_tolerance": cfg.ru_tolerance, "trials": trials}
    unitmap.save(um, out)
    return out


def _calibrate(cfg: ClassifyConfig, safety, utility, meta: dict, head_dim: dict):
    from ..io import read_jsonl_rows
    from .calibration import make_batches
    from .sizes import calibrate_sizes

    folder = Path(cfg.scores) if Path(cfg.scores).is_dir() else Path(cfg.scores).parent
    sets = []
    for name in ("safety", "utility"):
        rows = list(read_jsonl_rows(folder / f"calibration_{name}.jsonl"))[:cfg.calibrate_examples]
        if not rows:
            raise SafekeelError(f"{folder}: calibration_{name}.jsonl missing or empty; cannot calibrate sizes")
        sets.append([(r["prompt"], r["response"]) for r in rows])
    model, tok = load_for_units(meta["model"], meta.get("adapter"))
    max_length = meta.get("max_length", 256)
    return calibrate_sizes(model, make_batches(tok, sets[0], 8, max_length), make_batches(tok, sets[1], 8, max_length),
                           safety, utility, {"esu": cfg.esu, "euu": cfg.euu, "ru": cfg.ru}, cfg.esu_candidates,
                           cfg.ru_candidates, cfg.ru_tolerance, normalize=cfg.normalize, scope=cfg.scope,
                           attn_granularity=cfg.attn_granularity, head_dim=head_dim)


def refusal_eval_pairs() -> tuple[list, list]:
    """Test-split uncensorbench triples as (prompt, refusal) and (prompt, harmful answer) pairs: perplexity of each
    is a continuous safety signal that works even when a model rarely refuses."""
    from ..data.bundled import uncensorbench_triples
    from ..data.splits import select

    held = select(uncensorbench_triples(), "test")
    return [(t.prompt, t.safe_response) for t in held], [(t.prompt, t.harmful_response) for t in held]


def utility_eval_set(model, tok, model_id: str, n: int, max_new_tokens: int = 64, batch_size: int = 16):
    """(held-out benign prompt + the dense model's answer pairs, benign items with answer checks)."""
    from ..data.bundled import benign_prompts
    from .calibration import benign_split, self_distill

    held = [r["prompt"] for r in benign_split(heldout=True)][:n]
    pairs = self_distill(model, tok, held, model_id, max_new_tokens, batch_size) if n else []
    return pairs, [r for r in benign_prompts() if r.get("check")]


def evaluate(model, tok, prompts: list[str], attacks: list[str], ppl_pairs, check_items, max_new_tokens: int,
             batch_size: int, safety_ppl: bool = True) -> tuple[dict, list[dict]]:
    """Refusal rate per attack, refusal/harmful-answer perplexity on held-out triples, benign response perplexity
    and answer-check accuracy of the model as it is now."""
    from .calibration import benign_split
    from .evaluate import answer_accuracy, refusals, response_perplexity

    metrics, rows = {}, []
    if safety_ppl:
        refusal_pairs, harmful_pairs = refusal_eval_pairs()
        metrics["ppl_refusal_heldout"] = response_perplexity(model, tok, refusal_pairs, batch_size=8)
        metrics["ppl_harmful_heldout"] = response_perplexity(model, tok, harmful_pairs, batch_size=8)
    for attack in attacks:
        rate, r = refusals(model, tok, prompts, attack, max_new_tokens, batch_size)
        metrics[f"refusal_{attack}"] = rate
        rows += r
    if ppl_pairs:
        metrics["ppl_benign"] = response_perplexity(model, tok, ppl_pairs, batch_size=8)
    if check_items:
        acc, r = answer_accuracy(model, tok, check_items, max_new_tokens, batch_size)
        held = {x["id"] for x in benign_split(heldout=True)}
        metrics["answer_acc"] = acc
        metrics["answer_acc_heldout"] = sum(x["correct"] for x in r if x["id"] in held) / max(
            sum(x["id"] in held for x in r), 1)
        rows += [{**x, "attack": "benign-check"} for x in r]
    return metrics, rows


def run_ablate(cfg: AblateConfig) -> Path:
    from rich.console import Console
    from rich.table import Table

    from ..data.bundled import load_behavior_set
    from . import unitmap
    from .ablate import count, pruned, random_like, sample_within, zero_units
    from .evaluate import ATTACKS

    bad = [a for a in cfg.attacks if a not in ATTACKS]
    if bad:
        raise SafekeelError(f"unknown attack {bad[0]!r} (use {', '.join(ATTACKS)})")
    out = Path(cfg.out)
    save_config(cfg, out)
    um = unitmap.load(cfg.unit_map)
    model, tok = load_for_units(cfg.model, cfg.adapter, device=cfg.device)
    um.check_model(model)
    um.check_weights(model, cfg.unit_map_any_weights)
    selection = um.select(cfg.classes)
    if cfg.match:
        selection = sample_within(selection, um.select([cfg.match]), cfg.seed)
    conditions: list[tuple[str, dict | None]] = [("dense", None)] if cfg.dense else []
    conditions.append(("+".join(cfg.classes) + (f"(~{cfg.match})" if cfg.match else ""), selection))
    if cfg.control:
        conditions.append(("random", random_like(selection, cfg.seed)))
    prompts = [b.prompt for b in load_behavior_set(cfg.behaviors)[:cfg.n_behaviors]]
    ppl_pairs, checks = utility_eval_set(model, tok, cfg.model, cfg.n_utility, batch_size=cfg.batch_size)
    checks = checks[:cfg.n_checks]
    summary = {"model": cfg.model, "unit_map": str(cfg.unit_map), "method": um.meta.get("method"),
               "behaviors": cfg.behaviors, "n_behaviors": len(prompts), "conditions": {}}
    all_rows = []
    for name, sel in conditions:
        t0 = time.time()
        with pruned(model, sel or {}):
            metrics, rows = evaluate(model, tok, prompts, cfg.attacks, ppl_pairs if cfg.n_utility else [], checks,
                                     cfg.max_new_tokens, cfg.batch_size, cfg.safety_ppl)
        metrics["units_pruned"] = count(sel) if sel else 0
        metrics["seconds"] = round(time.time() - t0, 1)
        summary["conditions"][name] = metrics
        all_rows += [{"condition": name, **r} for r in rows]
    write_jsonl(out / "rows.jsonl", all_rows)
    write_json(out / "summary.json", summary)
    if cfg.export:
        n = zero_units(model, selection)
        model.save_pretrained(cfg.export)
        tok.save_pretrained(cfg.export)
        write_json(Path(cfg.export) / "safekeel_pruned.json", {"unit_map": str(cfg.unit_map),
                                                               "classes": cfg.classes, "units": n})
    table = Table(title=f"{cfg.model}: pruning {'+'.join(cfg.classes)} ({um.meta.get('method')})")
    cols = ["condition", "units_pruned", *[f"refusal_{a}" for a in cfg.attacks], "ppl_refusal_heldout",
            "ppl_benign", "answer_acc"]
    for c in cols:
        table.add_column(c)
    for name, m in summary["conditions"].items():
        table.add_row(name, *[_fmt(m.get(c)) for c in cols[1:]])
    Console(width=160).print(table)
    return out


def _fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def unit_fraction(selection: dict) -> float:
    n = sum(m.numel() for m in selection.values())
    return sum(int(m.sum()) for m in selection.values()) / max(n, 1)
