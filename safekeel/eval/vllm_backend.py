"""Optional vLLM generation backend (imported only when `backend: vllm` is asked for).

Same contract as `generate.generate`: prompts rendered by `generate.render` (chat template, prefill, raw text),
continuations returned in request order. One `VllmEngine` per run serves every sample and attack (building an
engine loads the weights and captures CUDA graphs: minutes for a large model). The caller holds only the tokenizer;
the weights live in vLLM alone. A PEFT adapter is served as a LoRA adapter with `max_lora_rank` read from its
config (vLLM's default, 16, rejects a larger rank).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..errors import SafekeelError
from .generate import GenerationRequest, render

LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def lora_rank(adapter: str) -> int:
    """The smallest max_lora_rank vLLM accepts that holds the adapter's rank (adapter_config.json `r`)."""
    path = Path(adapter) / "adapter_config.json"
    try:
        r = int(json.loads(path.read_text())["r"])
    except (OSError, ValueError, KeyError, TypeError):
        raise SafekeelError(f"{path}: cannot read the LoRA rank 'r' (is this a PEFT adapter folder?)") from None
    fits = [v for v in LORA_RANKS if v >= r]
    if not fits:
        raise SafekeelError(f"{path}: LoRA rank {r} is above vLLM's largest max_lora_rank ({LORA_RANKS[-1]})")
    return fits[0]


def vllm_dtype(dtype: str) -> str:
    """safekeel's --dtype as vLLM's: auto = bf16 on a GPU that has it, else fp16 (as `safekeel.device`)."""
    from ..device import resolve_dtype

    return str(resolve_dtype(dtype, "cuda:0")).removeprefix("torch.")


class VllmEngine:
    """One vLLM engine for a run (weights loaded once), an optional LoRA adapter on top."""

    def __init__(self, model_path: str, adapter: str | None = None, dtype: str = "auto", seed: int = 0,
                 **engine_kw):
        try:
            from vllm import LLM
        except ImportError:
            raise SafekeelError("backend 'vllm' needs the vllm package (pip install vllm, on a GPU machine)") from None
        kw = dict(model=model_path, seed=seed, dtype=vllm_dtype(dtype), **engine_kw)
        if adapter:
            kw.update(enable_lora=True, max_lora_rank=lora_rank(adapter))
        self.llm, self.adapter = LLM(**kw), adapter

    def generate(self, tok, requests: Sequence[GenerationRequest], max_new_tokens: int = 128,
                 do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0) -> list[str]:
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature if do_sample else 0.0,
                                top_p=top_p if do_sample else 1.0, seed=seed)
        lora = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest("adapter", 1, self.adapter)
        # token ids, not text: vLLM would otherwise add a second BOS to templates that already hold one
        prompts = [{"prompt_token_ids": tok(render(tok, r), add_special_tokens=False)["input_ids"]} for r in requests]
        outs = self.llm.generate(prompts, params, lora_request=lora)
        return [o.outputs[0].text.strip() for o in outs]
