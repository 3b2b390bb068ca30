"""Judges by name, so the CLI, YAML configs and `run_eval` all build them the same way.

Every judge maps items {behavior, response[, prompt_text]} to verdicts {unsafe, refusal, score, error,
refusal_token[, detail]}. `unsafe` is attack success (True), safe (False) or unknown (None, with `error`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..config import field
from ..errors import SafekeelError

JUDGES = ("keyword", "refusal-clf", "harm", "harm-clf", "llm", "llamaguard")
ALIASES = {"derta": "harm", "refusal_clf": "refusal-clf", "harm_clf": "harm-clf", "strongreject": "llm"}
MAIN_JUDGE = "harm-clf"  # the default safety judge: measured against human labels (benchmarks/judge_agreement.py)
DEFAULT_JUDGES = ["keyword", MAIN_JUDGE]


@dataclass
class JudgeOptions:
    judge_model: str | None = None  # HF id / folder / embedded name for `llm`
    judge_endpoint: str | None = None  # OpenAI-compatible base URL for `llm`
    judge_endpoint_model: str = "default"
    judge_rubric: str = "strongreject"  # or harmbench
    judge_threshold: float = 0.5
    judge_retries: int = 3
    judge_timeout: float = 60.0
    judge_concurrency: int = 8  # endpoint requests in flight at once
    judge_api_key_env: str = "OPENAI_API_KEY"  # environment variable holding the endpoint's API key
    judge_device: str = "auto"  # model judges (harm-clf's encoder, llm, llamaguard): `safekeel.device`
    judge_batch_size: int = 8
    guard_model: str = "meta-llama/Llama-Guard-3-1B"


@dataclass
class JudgeSettings:
    """The judge options of every verb that judges (eval, judge, calibrate): one definition, one set of flags."""

    judge_model: str | None = field(None, help="llm judge: HF id / folder")
    judge_endpoint: str | None = field(None, help="llm judge: OpenAI-compatible base URL (e.g. http://host:8000/v1)")
    judge_endpoint_model: str = field("default", help="llm judge: model name sent to the endpoint (vllm serve NAME)")
    judge_api_key_env: str = field("OPENAI_API_KEY", help="environment variable holding the endpoint's API key")
    judge_concurrency: int = field(8, help="endpoint requests in flight at once")
    judge_retries: int = field(3, help="endpoint retries (exponential backoff on 429 / 5xx) before a row counts as "
                                       "an error; a 4xx stops the run")
    judge_timeout: float = field(60.0, help="endpoint timeout per request (s)")
    judge_rubric: str = field("strongreject", help="llm judge rubric: strongreject or harmbench")
    judge_threshold: float = field(0.5, help="llm judge: StrongREJECT score at or above which a row is unsafe")
    judge_device: str = field("auto", help="model judges (harm-clf's encoder, llm, llamaguard): auto, cpu, cuda[:N], "
                                           "multi")
    judge_batch_size: int = field(8, help="model judges: rows per forward pass / generation batch")
    guard_model: str = field("meta-llama/Llama-Guard-3-1B", help="llamaguard judge: HF id / folder")

    def judge_options(self) -> JudgeOptions:
        return JudgeOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(JudgeOptions)})


def canonical(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in JUDGES:
        raise SafekeelError(f"unknown judge '{name}' (known: {', '.join(JUDGES)}; 'derta' = harm)")
    return name


def make_judge(name: str, opts: JudgeOptions | None = None, tokenizer=None):
    opts = opts or JudgeOptions()
    name = canonical(name)
    if name == "keyword":
        from .keyword import KeywordJudge

        return KeywordJudge(tokenizer=tokenizer)
    if name == "harm":
        from .harm import HarmJudge

        return HarmJudge(tokenizer=tokenizer)
    if name == "harm-clf":
        from .harm_clf import HarmClfJudge

        return HarmClfJudge(tokenizer=tokenizer, device=opts.judge_device, batch_size=opts.judge_batch_size)
    if name == "refusal-clf":
        from .refusal_clf import MiniLMEmbedder, RefusalClfJudge

        return RefusalClfJudge(embed=MiniLMEmbedder(device=opts.judge_device), tokenizer=tokenizer)
    if name == "llm":
        from .endpoint import ChatEndpoint
        from .llm import LLMJudge

        if not (opts.judge_model or opts.judge_endpoint):
            raise SafekeelError("the llm judge needs --judge-model (HF id/folder) or --judge-endpoint (URL)")
        endpoint = None
        if opts.judge_endpoint:
            endpoint = ChatEndpoint(opts.judge_endpoint, model=opts.judge_endpoint_model, retries=opts.judge_retries,
                                    timeout=opts.judge_timeout, concurrency=opts.judge_concurrency,
                                    api_key_env=opts.judge_api_key_env)
        try:
            return LLMJudge(model=None if endpoint else opts.judge_model, endpoint=endpoint, rubric=opts.judge_rubric,
                            threshold=opts.judge_threshold, tokenizer=tokenizer, device=opts.judge_device,
                            batch_size=opts.judge_batch_size)
        except ValueError as e:
            raise SafekeelError(str(e)) from None
    from .llamaguard import LlamaGuardJudge

    return LlamaGuardJudge(opts.guard_model, tokenizer=tokenizer, device=opts.judge_device,
                           batch_size=opts.judge_batch_size)
