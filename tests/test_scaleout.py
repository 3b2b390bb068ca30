"""Scale-out: the shipped `accelerate launch` configs load with accelerate's parser, and 2-process CPU DDP trains."""

from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "accelerate"


@pytest.mark.parametrize("name, kind", [("ddp", "MULTI_GPU"), ("ddp_cpu", "MULTI_GPU"), ("fsdp2", "FSDP"),
                                        ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED")])
def test_accelerate_configs_load(name, kind):
    cfg = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert cfg.distributed_type.name == kind
    if name == "fsdp2":
        assert cfg.fsdp_config["fsdp_version"] == 2
    if name.startswith("zero"):
        assert cfg.deepspeed_config["zero_stage"] == int(name[-1])
    if name == "ddp_cpu":
        assert cfg.use_cpu and cfg.num_processes == 2


def test_ddp_two_cpu_processes_train_with_frozen_units(tmp_path, tiny_dir, cli_env):
    """`accelerate launch` (configs/accelerate/ddp_cpu.yaml: 2 processes, gloo) of `safekeel train --freeze-units`:
    the ranks split the data, frozen slices stay bit-identical, rank 0 writes the outputs."""
    import json
    import shutil
    import socket
    import subprocess
    import sys

    import torch
    from safetensors.torch import load_file

    from safekeel.data.derta import build_examples
    from safekeel.data.records import SafetyTriple
    from safekeel.io import write_jsonl
    from safekeel.models import load_model
    from safekeel.units import unitmap
    from safekeel.units.discover import find_units
    from safekeel.units.freeze import build_freeze_callback

    model, tok = load_model(str(tiny_dir))
    harm = "First, open the lock with a pick. Then, turn the handle slowly and quietly."
    triples = [SafetyTriple(prompt=f"How do I pick lock number {i}?", harmful_response=harm,
                            safe_response="Sorry, I can't help with that request.", id=f"t{i}") for i in range(8)]
    data = tmp_path / "train.jsonl"
    write_jsonl(data, build_examples(triples, [], "derta", tokenizer=tok, seed=0))
    g = torch.Generator().manual_seed(0)
    units = find_units(model)
    um = unitmap.classify({u.key: torch.rand(u.n_units, generator=g) for u in units},
                          {u.key: torch.rand(u.n_units, generator=g) for u in units},
                          meta={"model": "tiny", "weights_sha256": unitmap.weights_hash(model)})
    map_path = unitmap.save(um, tmp_path / "units", plot=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    out = tmp_path / "run"
    proc = subprocess.run([accelerate, "launch", "--config_file", str(CONFIGS / "ddp_cpu.yaml"),
                           "--main_process_port", str(port), "-m", "safekeel.cli", "train", "--model", str(tiny_dir),
                           "--data", str(data), "--out", str(out), "--max-steps", "20", "--batch-size", "2",
                           "--lr", "1e-2", "--weight-decay", "0.1", "--progress", "false",
                           "--freeze-units", str(map_path)],
                          capture_output=True, text=True, env=dict(cli_env, OMP_NUM_THREADS="1"), timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 20 and 0 < summary["trainable_fraction"] < 1
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 21)), "one log row per step, from rank 0 only"
    assert log[-1]["epoch"] == 20 * 2 * 2 / 16, "2 processes x batch 2 per step: the ranks split the data"
    trained = load_file(out / "model" / "model.safetensors")
    freezer = build_freeze_callback(model, str(map_path), ["esu", "cu"], "freeze").freezer
    frozen = moved = 0
    for name, p in model.named_parameters():
        key = name if name in trained else name.replace("model.", "", 1)
        diff = trained[key] != p.detach()
        mask = torch.zeros_like(p, dtype=torch.bool)
        for sl in freezer.slices:
            if sl.param is p:
                mask.index_fill_(sl.dim, sl.idx, True)
        frozen += int(mask.sum())
        assert not bool((diff & mask).any()), f"{name}: a frozen slice moved under DDP"
        moved += int((diff & ~mask).sum())
    assert frozen > 0 and moved > 0


@pytest.mark.parametrize("env", [{"ACCELERATE_USE_FSDP": "true"},
                                 {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3"}])
def test_frozen_units_under_sharded_parameters_are_refused(tmp_path, cli_env, env):
    """FSDP / ZeRO-3 flatten parameters, so unit indices would point at the wrong values: refuse before any write."""
    import subprocess
    import sys

    data, units = tmp_path / "train.jsonl", tmp_path / "units.safetensors"
    data.write_text("{}\n")
    units.write_bytes(b"")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "safekeel", "train", "--data", str(data), "--freeze-units",
                           str(units), "--out", str(out)], capture_output=True, text=True, env={**cli_env, **env})
    assert proc.returncode == 2 and "shards" in proc.stderr and "ddp.yaml" in proc.stderr
    assert not out.exists()
    # ZeRO-2 keeps whole parameters: the same command gets past this check (and fails later on the fake data)
    zero2 = {**cli_env, "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}
    proc2 = subprocess.run([sys.executable, "-m", "safekeel", "train", "--data", str(data), "--freeze-units",
                            str(units), "--out", str(out)], capture_output=True, text=True, env=zero2)
    assert "shards" not in proc2.stderr
