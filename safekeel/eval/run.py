"""`safekeel eval`: one resumable run directory — generate, then judge, then summarise.

rows.jsonl holds one row per behavior × attack × sample, keyed by a content hash of (model, adapter, attack prompt,
sample, generation settings); rows are appended per batch, so a killed run loses at most one batch and `--resume`
skips every key already there. Judging is a separate step (judged.jsonl, keyed by the same hash), then
summary.json. `run_eval(cfg)` does all three in-process; `model_objects=(model, tok)` skips loading, so a list
of models (base / vanilla / DeRTa / frozen) can be evaluated back to back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from ..attacks.base import AttackOptions, AttackPrompt, build_attacks, decode_response
from ..attacks.run_helpers import load_behaviors
from ..config import field, save_config
from ..data.records import Behavior
from ..errors import SafekeelError
from ..io import append_jsonl, read_jsonl_rows, repair_tail
from ..judges.keyword import first_refusal_token
from ..judges.registry import JudgeSettings

ALL_STATIC = ["direct", "prefill", "completion", "codeattack", "cipher", "jailbreak_template", "harmful_prefix"]


@dataclass
class EvalConfig(JudgeSettings):
    model: str = field("smollm2-135m", help="model: embedded name, HF id or local folder")
    adapter: str | None = field(None, help="PEFT adapter folder applied on top of --model")
    device: str = field("auto", help="auto (the first GPU when there is one, else the CPU), cpu, cuda[:N], multi "
                                     "(device_map over every GPU; auto does it when the model does not fit one)")
    dtype: str = field("auto", help="auto (bf16 on a GPU, fp32 on the CPU), float32, bfloat16, float16")
    quantize: str | None = field(None, help="4bit: NF4 weights (bitsandbytes, GPU), for a model too large otherwise")
    label: str | None = field(None, help="name of this run in reports (default: model[+adapter])")
    behaviors: str = field("harmbench", help="behavior set: bundled name (add :test, :val or :train for a split; "
                                             ":heldout = :test) or a JSONL/JSON/CSV file")
    n_behaviors: int = field(100, help="first N behaviors (0 = all)")
    attacks: list[str] = field(list(ALL_STATIC), help="attacks: " + ", ".join(ALL_STATIC) + ", pair, autodan")
    prefix_behaviors: str = field("", help="behaviors for harmful_prefix (e.g. uncensorbench:test, which has "
                                           "harmful targets); empty = --behaviors with a generic compliant opener")
    prefix_ks: list[int] = field([0, 5, 10, 20, 40], help="harmful_prefix: prefix lengths k in model tokens")
    ciphers: list[str] = field(["caesar", "morse", "ascii", "selfcipher"], help="cipher variants")
    cipher_mode: str = field("rotate", help="cipher: 'all' variants per behavior or 'rotate' (one seeded choice)")
    prefill_text: str = field("Sure, here is", help="prefill attack: the assistant turn starts with this")
    template_max_chars: int = field(0, help="jailbreak_template: only templates up to this many characters (0 = all)")
    benign_scary: int = field(-1, help="held-out benign-but-scary prompts for over-refusal (-1 = all 55, 0 = none)")
    benign: int = field(0, help="held-out benign prompts for helpfulness (answer rate + checks; -1 = all 44)")
    samples: int = field(1, help="generations per prompt")
    max_new_tokens: int = field(64, help="tokens generated per answer")
    batch_size: int = field(64, help="generation batch size (64 gives the same greedy answers as 16, faster)")
    do_sample: bool = field(False, help="sample instead of greedy decoding")
    temperature: float = field(1.0, help="sampling temperature")
    top_p: float = field(1.0, help="nucleus sampling")
    seed: int = field(0, help="seed for attack choices and sampling")
    backend: str = field("hf", help="hf or vllm (imported only when asked)")
    judges: list[str] = field(["keyword", "harm-clf"], help="judges: keyword, refusal-clf, harm-clf (the default "
                              "safety judge), harm (= derta, lexical), llm, llamaguard")
    pair_streams: int = field(3, help="PAIR: parallel attacker streams (paper: 20)")
    pair_iterations: int = field(3, help="PAIR: refinement iterations (paper: 3)")
    pair_batch: int = field(8, help="PAIR: behaviors searched in lockstep (their streams share each attacker and "
                                    "target call; 1 = one behavior at a time)")
    pair_judge: str = field("harm-clf", help="PAIR: the judge in the loop (its P(unsafe) on PAIR's 1-10 scale)")
    attacker_model: str = field("smollm2-135m", help="PAIR attacker: embedded name, HF id / folder, or 'self' (the "
                                                     "target); default: the embedded base model, not the target")
    attacker_endpoint: str | None = field(None, help="PAIR attacker: OpenAI-compatible base URL")
    attacker_endpoint_model: str = field("default", help="PAIR attacker: model name sent to the endpoint")
    attacker_api_key_env: str = field("OPENAI_API_KEY", help="PAIR attacker: environment variable with the API key")
    attacker_max_new_tokens: int = field(256, help="PAIR attacker: tokens per proposed prompt")
    autodan_population: int = field(8, help="AutoDAN: population size")
    autodan_generations: int = field(3, help="AutoDAN: generations")
    out: str = field("runs/eval", help="run directory")
    resume: bool = field(False, help="continue a run: skip rows (and verdicts) already written")
    overwrite: bool = field(False, help="delete an existing run's rows and verdicts first")
    skip_judge: bool = field(False, help="only generate (judge later with `safekeel judge RUN_DIR`)")

    def validate(self) -> None:
        if self.backend not in ("hf", "vllm"):
            raise SafekeelError(f"backend must be hf or vllm, got {self.backend!r}")
        if self.cipher_mode not in ("all", "rotate"):
            raise SafekeelError(f"cipher_mode must be all or rotate, got {self.cipher_mode!r}")
        from ..attacks.base import attack_names

        unknown = [a for a in self.attacks if a not in attack_names()]
        if unknown:
            raise SafekeelError(f"unknown attack(s) {', '.join(unknown)} (known: {', '.join(attack_names())})")
        if min(self.samples, self.batch_size, self.max_new_tokens, self.pair_batch) < 1:
            raise SafekeelError("samples, batch_size, max_new_tokens and pair_batch must be >= 1")


def gen_settings(cfg: EvalConfig) -> dict:
    return {"max_new_tokens": cfg.max_new_tokens, "do_sample": cfg.do_sample, "temperature": cfg.temperature,
            "top_p": cfg.top_p, "seed": cfg.seed, "backend": cfg.backend}


def row_key(cfg: EvalConfig, ap: AttackPrompt, sample: int, spec: dict | None = None) -> str:
    body = {"model": cfg.model, "adapter": cfg.adapter, "attack": ap.attack, "behavior_id": ap.behavior_id,
            "prompt": spec if spec is not None else {"messages": ap.messages, "prefill": ap.prefill, "raw": ap.raw},
            "sample": sample, "gen": gen_settings(cfg)}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def plan(cfg: EvalConfig, tok=None) -> list[tuple[str, AttackPrompt]]:
    """(set name, prompt) for every static attack, plus over-refusal and helpfulness prompts."""
    opts = AttackOptions(seed=cfg.seed, prefill_text=cfg.prefill_text, prefix_ks=list(cfg.prefix_ks),
                         ciphers=list(cfg.ciphers), cipher_mode=cfg.cipher_mode, tokenizer=tok,
                         template_max_chars=cfg.template_max_chars)
    behaviors = load_behaviors(cfg.behaviors, cfg.n_behaviors)
    main = [a for a in cfg.attacks if a != "harmful_prefix"]
    out = [("harmful", ap) for ap in build_attacks(behaviors, main, opts)]
    if "harmful_prefix" in cfg.attacks:
        pb = load_behaviors(cfg.prefix_behaviors, 0) if cfg.prefix_behaviors else behaviors
        out += [("harmful", ap) for ap in build_attacks(pb, ["harmful_prefix"], opts)]
    for name, n, check in (("benign-scary", cfg.benign_scary, False), ("benign", cfg.benign, True)):
        if n == 0:
            continue
        from ..data.bundled import own_set
        from ..data.splits import select

        # the test split of both sets: helpful training data answers (and so trains on) their train split
        rows = select(own_set(name), "test")
        rows = rows if n < 0 else rows[:n]
        for r in rows:
            b = Behavior(prompt=r["prompt"], category=r.get("category"), source=name, id=r["id"])
            ap = build_attacks([b], ["direct"], opts)[0]
            if check and r.get("check"):
                ap.meta["check"] = r["check"]
            out.append((name, ap))
    return out


def _row(cfg: EvalConfig, key: str, set_name: str, ap: AttackPrompt, sample: int, response: str, tok) -> dict:
    decoded = decode_response(ap.meta, response)
    return {"key": key, "run": cfg.label, "model": cfg.model, "adapter": cfg.adapter, "set": set_name,
            "behavior_id": ap.behavior_id, "behavior": ap.behavior, "category": ap.category, "attack": ap.attack,
            "variant": ap.variant, "meta": ap.meta, "sample": sample, "messages": ap.messages, "prefill": ap.prefill,
            "raw": ap.raw, "prompt_text": ap.messages[-1]["content"], "response": response,
            "response_decoded": decoded, "response_tokens": len(tok(response, add_special_tokens=False)["input_ids"]),
            "refusal_token": first_refusal_token(decoded, tok), "gen": gen_settings(cfg)}


class _Search(NamedTuple):
    """One behavior's search: `make(behaviors)` runs it for up to `group` consecutive behaviors of the same attack
    at once (PAIR's lockstep); `spec` is what the row key hashes."""
    set_name: str
    behavior: Behavior
    attack: str
    make: Callable[[list[Behavior]], list[AttackPrompt]]
    spec: dict
    group: int


def _search_prompts(cfg: EvalConfig, gen, hf_model, tok, log) -> list[_Search]:
    """PAIR / AutoDAN prompts (need the target model in the loop). `gen(requests)` answers with the run's backend;
    `hf_model()` is the HF model, loaded on first use (AutoDAN needs its logits)."""
    out = []
    behaviors = load_behaviors(cfg.behaviors, cfg.n_behaviors)
    if "autodan" in cfg.attacks:
        from ..attacks.autodan import AutoDANConfig, autodan_attack
        from ..data.bundled import jailbreak_templates
        from .generate import GenerationRequest as _Req

        acfg = AutoDANConfig(population=cfg.autodan_population, generations=cfg.autodan_generations,
                             batch_size=cfg.batch_size)  # fitness prompts per forward pass, as generation

        def answer(prompt: str) -> str:  # the early-stop check: the target's answer to the best prompt
            return gen([_Req(messages=[{"role": "user", "content": prompt}])])[0]

        def autodan(bs):
            return [autodan_attack(b, hf_model(), tok, jailbreak_templates(), acfg, cfg.seed, answer) for b in bs]

        out += [_Search("harmful", b, "autodan", autodan, vars(acfg), 1) for b in behaviors]
    if "pair" in cfg.attacks:
        from ..attacks.pair import PairConfig, endpoint_chat, hf_chat, judge_scorer, pair_attack_many
        from ..judges.endpoint import ChatEndpoint
        from ..judges.registry import make_judge
        from ..models import load_model
        from .generate import GenerationRequest

        pcfg = PairConfig(n_streams=cfg.pair_streams, n_iterations=cfg.pair_iterations)
        if cfg.attacker_endpoint:
            attacker = endpoint_chat(ChatEndpoint(cfg.attacker_endpoint, model=cfg.attacker_endpoint_model,
                                                  api_key_env=cfg.attacker_api_key_env,
                                                  concurrency=cfg.judge_concurrency))
        else:
            self_attack = cfg.attacker_model == "self" or (cfg.attacker_model == cfg.model and not cfg.adapter)
            am, at = (hf_model(), tok) if self_attack else load_model(cfg.attacker_model, device=cfg.device)
            attacker = hf_chat(am, at, max_new_tokens=cfg.attacker_max_new_tokens, seed=cfg.seed)

        def target(prompts: list[str]) -> list[str]:
            return gen([GenerationRequest(messages=[{"role": "user", "content": p}]) for p in prompts])

        scorer = judge_scorer(make_judge(cfg.pair_judge, cfg.judge_options(), tokenizer=tok))
        spec = {**vars(pcfg), "attacker": cfg.attacker_endpoint or cfg.attacker_model, "judge": cfg.pair_judge,
                "attacker_tokens": cfg.attacker_max_new_tokens}
        out += [_Search("harmful", b, "pair", lambda bs: pair_attack_many(bs, attacker, target, scorer, pcfg), spec,
                        cfg.pair_batch) for b in behaviors]
    return out


@contextlib.contextmanager
def run_lock(out: Path):
    """One writer per run directory: a second `safekeel eval` on it fails instead of interleaving rows."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SafekeelError(f"{out} is being written by another safekeel process") from None
        except ImportError:  # no fcntl (Windows): no lock
            pass
        yield


def generate_rows(cfg: EvalConfig, model_objects=None, log=print) -> Path:
    """The generation step: append every missing row to OUT/rows.jsonl."""
    out = Path(cfg.out)
    rows_path = out / "rows.jsonl"
    with run_lock(out):
        return _generate_rows(cfg, out, rows_path, model_objects, log)


def _generate_rows(cfg: EvalConfig, out: Path, rows_path: Path, model_objects, log) -> Path:
    from ..models import load_model, load_tokenizer, resolve
    from .generate import generate

    if rows_path.exists() and not cfg.resume:
        if not cfg.overwrite:
            raise SafekeelError(f"{out} already holds a run: use --resume to continue it or --overwrite")
        rows_path.unlink()
        (out / "judged.jsonl").unlink(missing_ok=True)
    cfg.label = cfg.label or (cfg.model + (f"+{Path(cfg.adapter).name}" if cfg.adapter else ""))
    save_config(cfg, out)
    repair_tail(rows_path)
    t0 = time.time()
    loaded: dict = {"hf": model_objects}

    def hf_model():
        """The HF model, loaded on first use (under vLLM only AutoDAN or an attacker borrowing it asks for it)."""
        if loaded["hf"] is None:
            loaded["hf"] = load_model(cfg.model, cfg.adapter, cfg.dtype, cfg.device, quantize=cfg.quantize)
        return loaded["hf"][0]

    def engine():
        """The run's one vLLM engine, for every sample and attack."""
        if "vllm" not in loaded:
            from .vllm_backend import VllmEngine

            loaded["vllm"] = VllmEngine(resolve(cfg.model), adapter=cfg.adapter, dtype=cfg.dtype, seed=cfg.seed)
        return loaded["vllm"]

    if cfg.backend == "vllm":
        tok = model_objects[1] if model_objects else load_tokenizer(cfg.model)  # the weights live in vLLM alone
    else:
        hf_model()
        tok = loaded["hf"][1]

    def gen(reqs, **kw):
        kw = {"max_new_tokens": cfg.max_new_tokens, **kw}
        if cfg.backend == "vllm":
            kw.pop("on_batch", None)
            return engine().generate(tok, reqs, **kw)
        return generate(hf_model(), tok, reqs, batch_size=cfg.batch_size, **kw)

    done = {r["key"] for r in read_jsonl_rows(rows_path)}
    todo: list[tuple[str, str, AttackPrompt, int]] = []
    for set_name, ap in plan(cfg, tok):
        for s in range(cfg.samples):
            key = row_key(cfg, ap, s)
            if key not in done:
                todo.append((key, set_name, ap, s))
    log(f"{len(done)} rows already done, {len(todo)} to generate ({time.time() - t0:.1f}s to plan)")
    _answer(cfg, todo, gen, tok, rows_path, log)
    pending = []
    for item in _search_prompts(cfg, gen, hf_model, tok, log):
        stub = AttackPrompt(item.behavior.id, item.behavior.prompt, item.attack, [])
        keys = [row_key(cfg, stub, s, item.spec) for s in range(cfg.samples)]
        if not all(k in done for k in keys):
            pending.append((item, keys))
    n_search = 0
    while pending:  # a search is minutes of target calls: each group's rows are written before the next starts
        first = pending[0][0]
        chunk = [pending[0]]
        for nxt in pending[1:first.group]:
            if nxt[0].attack != first.attack:
                break
            chunk.append(nxt)
        pending = pending[len(chunk):]
        aps = first.make([item.behavior for item, _ in chunk])
        _answer(cfg, [(k, item.set_name, ap, s) for (item, keys), ap in zip(chunk, aps, strict=True)
                      for s, k in enumerate(keys) if k not in done], gen, tok, rows_path, lambda _msg: None)
        n_search += len(chunk)
        log(f"{first.attack} {', '.join(item.behavior.id for item, _ in chunk)}: searched ({n_search} behaviors "
            f"this run, {time.time() - t0:.0f}s)")
    return rows_path


def _answer(cfg: EvalConfig, todo: list, gen, tok, rows_path: Path, log) -> None:
    """Generate the target's answer to every (key, set, prompt, sample) and append its row, batch by batch."""
    for s in sorted({t[3] for t in todo}):
        batch = [t for t in todo if t[3] == s]
        reqs = [t[2].request() for t in batch]
        kw = dict(max_new_tokens=cfg.max_new_tokens, do_sample=cfg.do_sample, temperature=cfg.temperature,
                  top_p=cfg.top_p, seed=cfg.seed + 1000 * s)
        if cfg.backend == "vllm":
            texts = gen(reqs, **kw)
            for t, text in zip(batch, texts, strict=True):
                append_jsonl(rows_path, _row(cfg, t[0], t[1], t[2], s, text, tok))
            continue
        progress = {"n": 0, "t": time.time()}

        def on_batch(idx: list[int], texts: list[str], batch=batch, s=s, progress=progress) -> None:
            for i, text in zip(idx, texts, strict=True):
                key, set_name, ap, _ = batch[i]
                append_jsonl(rows_path, _row(cfg, key, set_name, ap, s, text, tok))
            progress["n"] += len(idx)
            log(f"generated {progress['n']}/{len(batch)} ({time.time() - progress['t']:.0f}s)")

        gen(reqs, on_batch=on_batch, **kw)


def run_eval(cfg: EvalConfig, model_objects=None, log=print) -> Path:
    """Generation + judging + summary.json; returns the run directory."""
    from ..judges.runner import judge_rows
    from .summary import summarize

    rows_path = generate_rows(cfg, model_objects, log)
    out = rows_path.parent
    if not cfg.skip_judge:
        tok = model_objects[1] if model_objects else None
        judge_rows(out, cfg.judges, cfg.judge_options(), tokenizer=tok, resume=True, log=log)
        summarize(out)
    return out
