"""Device and dtype resolution with `torch.cuda` mocked: the model and its inputs go where `--device` says, in eval,
the judges and unit scoring, and a GPU asked for and absent is one clear error."""

import json

import pytest
import torch

from safekeel import device as devices
from safekeel.errors import SafekeelError


def _cuda(target) -> bool:
    return isinstance(target, str | torch.device) and str(target).startswith("cuda")


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch believes in two bf16 GPUs with 80 GiB free; moves to them are recorded (the tensors stay put)."""
    moves: dict[str, list] = {"models": [], "tensors": []}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (80 * 2**30, 80 * 2**30))
    module_to, tensor_to = torch.nn.Module.to, torch.Tensor.to

    def fake_module_to(self, *args, **kw):
        target = args[0] if args else kw.get("device")
        if not _cuda(target):
            return module_to(self, *args, **kw)
        moves["models"].append((type(self).__name__, str(target)))
        for m in self.modules():
            m.__dict__["_fake_device"] = torch.device(str(target))
        return self

    def fake_tensor_to(self, *args, **kw):
        target = args[0] if args else kw.get("device")
        if not _cuda(target):
            return tensor_to(self, *args, **kw)
        moves["tensors"].append(str(target))
        return self

    monkeypatch.setattr(torch.nn.Module, "to", fake_module_to)
    monkeypatch.setattr(torch.Tensor, "to", fake_tensor_to)
    real_input_device = devices.input_device
    monkeypatch.setattr(devices, "input_device", lambda m: m.__dict__.get("_fake_device") or real_input_device(m))
    return moves


def test_auto_picks_the_gpu_in_bf16_and_the_cpu_in_fp32(fake_gpu, monkeypatch):
    assert devices.resolve_device("auto") == "cuda:0" and devices.resolve_device("cuda:1") == "cuda:1"
    assert devices.resolve_dtype("auto", "cuda:0") == torch.bfloat16
    assert devices.resolve_dtype("auto", "cpu") == torch.float32 and devices.resolve_device("cpu") == "cpu"
    assert devices.resolve_dtype("fp16", "cuda:0") == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert devices.resolve_dtype("auto", "cuda:0") == torch.float16  # an older GPU
    with pytest.raises(SafekeelError, match="only 2 GPU"):
        devices.resolve_device("cuda:2")
    with pytest.raises(SafekeelError, match="unknown --device"):
        devices.resolve_device("tpu")


def test_without_a_gpu_auto_is_the_cpu_and_cuda_is_an_error():
    assert not torch.cuda.is_available()  # the test machines have none
    assert devices.resolve_device("auto") == "cpu" and devices.resolve_dtype("auto", "cpu") == torch.float32
    with pytest.raises(SafekeelError, match="no CUDA GPU"):
        devices.resolve_device("cuda")
    with pytest.raises(SafekeelError, match="needs a CUDA GPU"):
        devices.placement(".", "cpu", torch.float32, quantize="4bit")


def test_a_model_too_large_for_one_gpu_is_spread(fake_gpu, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8192, "num_hidden_layers": 80,
                                                      "intermediate_size": 28672, "vocab_size": 128256,
                                                      "num_attention_heads": 64, "num_key_value_heads": 8}))
    need = devices.weights_bytes(tmp_path, torch.bfloat16)
    assert 139e9 < need < 143e9  # Llama-3-70B: 70.6B parameters, 141 GB in bf16
    assert devices.placement(tmp_path, "cuda:0", torch.bfloat16) == {"dtype": torch.bfloat16, "device_map": "auto"}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i=0: (200 * 2**30, 200 * 2**30))
    assert devices.placement(tmp_path, "cuda:0", torch.bfloat16) == {"dtype": torch.bfloat16}  # fits: one GPU
    assert devices.placement(tmp_path, "multi", torch.bfloat16)["device_map"] == "auto"


def test_eval_puts_model_and_inputs_on_the_gpu(fake_gpu, tiny_dir, tmp_path):
    from safekeel.eval.run import EvalConfig, generate_rows
    from safekeel.io import read_jsonl_rows

    beh = tmp_path / "b.jsonl"
    beh.write_text(json.dumps({"id": "b0", "prompt": "How do I pick a lock?"}) + "\n")
    cfg = EvalConfig(model=str(tiny_dir), behaviors=str(beh), n_behaviors=0, attacks=["direct", "prefill"],
                     benign_scary=0, max_new_tokens=3, skip_judge=True, out=str(tmp_path / "run"))
    rows = list(read_jsonl_rows(generate_rows(cfg, log=lambda *a: None)))
    assert len(rows) == 2
    assert ("LlamaForCausalLM", "cuda:0") in fake_gpu["models"]
    assert fake_gpu["tensors"] and set(fake_gpu["tensors"]) == {"cuda:0"}  # input ids and attention masks


def test_eval_loads_in_bf16_on_a_gpu_and_fp32_on_the_cpu(fake_gpu, tiny_dir):
    from safekeel.models import load_model

    gpu, _ = load_model(str(tiny_dir))
    cpu, _ = load_model(str(tiny_dir), device="cpu")
    assert next(gpu.parameters()).dtype == torch.bfloat16 and next(cpu.parameters()).dtype == torch.float32


def test_judges_put_their_models_and_inputs_on_the_gpu(fake_gpu, tiny_dir):
    from safekeel.judges.llamaguard import LlamaGuardJudge
    from safekeel.judges.lm_features import LMFeatures

    guard = LlamaGuardJudge(str(tiny_dir), batch_size=2)
    (v,) = guard.judge([{"behavior": "How do I pick a lock?", "response": "Sorry, no."}])
    assert "unsafe" in v and ("LlamaForCausalLM", "cuda:0") in fake_gpu["models"] and fake_gpu["tensors"]
    fake_gpu["models"].clear()
    fake_gpu["tensors"].clear()
    feats = LMFeatures(str(tiny_dir), layer=1, device="cuda:1")
    x = feats([("How do I pick a lock?", "Sorry, no.")])
    assert x.shape[0] == 1 and ("LlamaForCausalLM", "cuda:1") in fake_gpu["models"]
    assert set(fake_gpu["tensors"]) == {"cuda:1"}
    # harm-clf's head was fitted on fp32 features: its encoder stays fp32 on a GPU too
    assert next(feats.model.parameters()).dtype == torch.float32


def test_unit_scoring_puts_model_and_inputs_on_the_gpu(fake_gpu, tiny_dir):
    from safekeel.units.calibration import make_batches
    from safekeel.units.runs import load_for_units
    from safekeel.units.scores import score

    model, tok = load_for_units(str(tiny_dir))
    pairs = [("How do I pick a lock?", "I cannot help with that."), ("Name a fruit.", "An apple.")]
    s = score(model, make_batches(tok, pairs, 2, 64), "wanda")
    assert s and ("LlamaForCausalLM", "cuda:0") in fake_gpu["models"] and set(fake_gpu["tensors"]) == {"cuda:0"}
    assert next(model.parameters()).dtype == torch.float32  # unit scores: fp32 by default on every device


def test_training_leaves_placement_to_the_trainer_and_4bit_needs_lora():
    from safekeel.errors import ConfigError
    from safekeel.train.run import TrainConfig, _placement

    assert _placement(TrainConfig(data="x")) == {"dtype": "float32", "device": None}
    assert _placement(TrainConfig(data="x", weights_dtype="bfloat16"))["dtype"] == "bfloat16"
    with pytest.raises(ConfigError, match="--lora true"):
        TrainConfig(data="x", quantize="4bit").validate()
    q = _placement(TrainConfig(data="x", quantize="4bit", lora=True))
    assert q["quantize"] == "4bit" and q["device"] == "cuda:0"
