"""Where a model runs and in what precision: one resolution for every verb that loads a model.

`--device auto` is the first GPU when there is one, else the CPU; `--dtype auto` is bf16 on a GPU that has it
(fp16 on an older one) and fp32 on the CPU (bf16 generation on the CPU changes greedy answers and is not faster
there, `benchmarks/cpu_defaults.py`). `--device multi` spreads a model over every visible GPU
(`device_map="auto"`); `auto` does the same when the weights would not fit the first GPU. `--quantize 4bit` loads
the base weights in NF4 (bitsandbytes, GPU only) for LoRA and for evaluating models that would not fit otherwise.
Inputs follow the model: `input_device(model)` is where the first layer's weights live.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import SafekeelError

DEVICES = "auto, cpu, cuda, cuda:N, multi"
DTYPES = {"float32": "float32", "fp32": "float32", "bfloat16": "bfloat16", "bf16": "bfloat16",
          "float16": "float16", "fp16": "float16"}
FIT_MARGIN = 0.85  # share of a GPU's free memory the weights may take before `auto` spreads them


def resolve_device(spec: str | None = "auto") -> str:
    """'cpu', 'cuda:N' or 'multi' (several GPUs) for a --device value; a GPU asked for and absent is an error."""
    import torch

    spec = (spec or "auto").strip().lower()
    has_cuda = torch.cuda.is_available()
    if spec == "auto":
        return "cuda:0" if has_cuda else "cpu"
    if spec == "cpu":
        return "cpu"
    if spec == "multi" or spec == "cuda" or spec.startswith("cuda:"):
        if not has_cuda:
            raise SafekeelError(f"--device {spec}: no CUDA GPU is visible (torch.cuda.is_available() is False)")
        if spec == "multi":
            return "multi"
        index = int(spec.split(":", 1)[1]) if ":" in spec and spec.split(":", 1)[1].isdigit() else 0
        if ":" in spec and not spec.split(":", 1)[1].isdigit():
            raise SafekeelError(f"--device {spec}: expected cuda:N (N a GPU index)")
        if index >= torch.cuda.device_count():
            raise SafekeelError(f"--device {spec}: only {torch.cuda.device_count()} GPU(s) visible")
        return f"cuda:{index}"
    raise SafekeelError(f"unknown --device '{spec}' (use {DEVICES})")


def resolve_dtype(spec: str | None, device: str):
    """The torch dtype for a --dtype value on a resolved device (auto: bf16 / fp16 on a GPU, fp32 on the CPU)."""
    import torch

    spec = (spec or "auto").strip().lower()
    if spec == "auto":
        if device == "cpu":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if spec not in DTYPES:
        raise SafekeelError(f"unknown dtype '{spec}' (use auto, float32, bfloat16, float16)")
    return getattr(torch, DTYPES[spec])


def weights_bytes(path: str | Path, dtype) -> int | None:
    """The model's weight bytes at `dtype`, from its config (attention with grouped KV heads, a gated MLP,
    untied embeddings), None when the config does not say; a placement estimate, not an exact count."""
    import torch

    cfg_path = Path(path) / "config.json"
    if not cfg_path.exists():
        return None
    c = json.loads(cfg_path.read_text())
    c = c.get("text_config", c)
    d, layers, vocab = c.get("hidden_size"), c.get("num_hidden_layers"), c.get("vocab_size")
    if not (d and layers and vocab):
        return None
    ffn = c.get("intermediate_size") or 4 * d
    heads = c.get("num_attention_heads") or 1
    kv = (c.get("num_key_value_heads") or heads) * (c.get("head_dim") or d // heads)
    params = layers * (2 * d * d + 2 * d * kv + 3 * d * ffn) + 2 * vocab * d
    return params * torch.tensor([], dtype=dtype).element_size()


def placement(path: str | Path, device: str, dtype, quantize: str | None = None) -> dict:
    """from_pretrained keyword arguments that put the weights on `device` (device_map when spread or quantized)."""
    import torch

    kw: dict = {"dtype": dtype}
    if quantize:
        if quantize != "4bit":
            raise SafekeelError(f"unknown --quantize '{quantize}' (use 4bit)")
        if device == "cpu":
            raise SafekeelError("--quantize 4bit needs a CUDA GPU (bitsandbytes NF4); use --device cuda")
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise SafekeelError("--quantize 4bit needs the bitsandbytes package (pip install bitsandbytes)") from None
        kw["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype if dtype != torch.float32 else torch.bfloat16)
    if device == "multi":
        kw["device_map"] = "auto"
    elif device.startswith("cuda"):
        need = weights_bytes(path, dtype)
        free = torch.cuda.mem_get_info(int(device.split(":")[1]))[0] if need else None
        if need and free and need > FIT_MARGIN * free and torch.cuda.device_count() > 1:
            kw["device_map"] = "auto"  # does not fit one GPU: spread it
        elif quantize:
            kw["device_map"] = {"": device}
    return kw


def input_device(model):
    """Where a model's inputs go: the device of its first parameter (the embedding under a device_map)."""
    return next(model.parameters()).device
