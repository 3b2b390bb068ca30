"""The vLLM backend with a fake `vllm` module: one engine per run, the tokenizer alone on the side, the adapter's
rank and the dtype forwarded."""

import json
import sys
import types

import pytest

from safekeel.errors import SafekeelError


@pytest.fixture
def fake_vllm(monkeypatch):
    engines = []

    class LLM:
        def __init__(self, **kw):
            self.kw, self.calls = kw, []
            engines.append(self)

        def generate(self, prompts, params, lora_request=None):
            self.calls.append((prompts, params, lora_request))
            out = types.SimpleNamespace(text=f" answer {len(self.calls)} ")
            return [types.SimpleNamespace(outputs=[out]) for _ in prompts]

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LoRARequest:
        def __init__(self, name, idx, path):
            self.name, self.idx, self.path = name, idx, path

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    lora = types.ModuleType("vllm.lora")
    req = types.ModuleType("vllm.lora.request")
    req.LoRARequest = LoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", req)
    return engines


def test_one_engine_per_run_and_no_hf_weights(fake_vllm, tiny_dir, tmp_path, monkeypatch):
    import torch

    import safekeel.models
    from safekeel.eval.run import EvalConfig, generate_rows
    from safekeel.io import read_jsonl_rows

    def no_weights(*a, **k):
        raise AssertionError("the HF model was loaded beside vLLM")

    monkeypatch.setattr(safekeel.models, "load_model", no_weights)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 96, "peft_type": "LORA"}))
    beh = tmp_path / "b.jsonl"
    beh.write_text("".join(json.dumps({"id": f"b{i}", "prompt": f"How do I pick lock {i}?"}) + "\n" for i in range(2)))
    cfg = EvalConfig(model=str(tiny_dir), adapter=str(adapter), behaviors=str(beh), n_behaviors=0,
                     attacks=["direct", "prefill", "cipher"], ciphers=["caesar"], benign_scary=0, samples=2,
                     do_sample=True, backend="vllm", skip_judge=True, out=str(tmp_path / "run"))
    rows = list(read_jsonl_rows(generate_rows(cfg, log=lambda *a: None)))
    assert len(rows) == 2 * 3 * 2 and {r["response"] for r in rows} == {"answer 1", "answer 2"}
    (engine,) = fake_vllm  # one engine for both samples and every attack
    assert engine.kw["max_lora_rank"] == 128 and engine.kw["enable_lora"] is True  # r = 96 rounds up
    assert engine.kw["dtype"] == "bfloat16" and engine.kw["model"] == str(tiny_dir)
    assert len(engine.calls) == 2 and all(lora.path == str(adapter) for _, _, lora in engine.calls)
    assert [c[1].kw["seed"] for c in engine.calls] == [0, 1000]  # one seed per sample index
    assert all("prompt_token_ids" in p for p in engine.calls[0][0])


def test_lora_rank_beyond_vllm_and_a_missing_config_are_clear_errors(tmp_path):
    from safekeel.eval.vllm_backend import lora_rank

    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 1024}))
    with pytest.raises(SafekeelError, match="above vLLM's largest"):
        lora_rank(str(tmp_path))
    with pytest.raises(SafekeelError, match="cannot read the LoRA rank"):
        lora_rank(str(tmp_path / "nowhere"))
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 16}))
    assert lora_rank(str(tmp_path)) == 16
