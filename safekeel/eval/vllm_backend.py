"""Optional vLLM generation backend (imported only when `backend: vllm` is asked for).

Same contract as `generate.generate`: prompts rendered by `generate.render` (chat template, prefill, raw text),
continuations returned in request order. A PEFT adapter is served as a LoRA adapter.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import SafekeelError
from .generate import GenerationRequest, render


def generate_vllm(model_path: str, tok, requests: Sequence[GenerationRequest], max_new_tokens: int = 128,
                  do_sample: bool = False, temperature: float = 1.0, top_p: float = 1.0, seed: int = 0,
                  adapter: str | None = None, llm=None) -> list[str]:
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise SafekeelError("backend 'vllm' needs the vllm package (pip install vllm, on a GPU machine)") from None
    llm = llm or LLM(model=model_path, enable_lora=bool(adapter), seed=seed)
    params = SamplingParams(max_tokens=max_new_tokens, temperature=temperature if do_sample else 0.0,
                            top_p=top_p if do_sample else 1.0, seed=seed)
    lora = None
    if adapter:
        from vllm.lora.request import LoRARequest

        lora = LoRARequest("adapter", 1, adapter)
    # token ids, not text: vLLM would otherwise add a second BOS to templates that already hold one
    prompts = [{"prompt_token_ids": tok(render(tok, r), add_special_tokens=False)["input_ids"]} for r in requests]
    outs = llm.generate(prompts, params, lora_request=lora)
    return [o.outputs[0].text.strip() for o in outs]
