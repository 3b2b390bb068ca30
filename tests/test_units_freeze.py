"""Frozen units stay bit-identical through >= 20 AdamW steps (weight decay, momentum, gradient accumulation), in
one process and under 2-process DDP; the alignment budget (train_only RU) moves nothing outside RU."""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ddp_freeze_script import random_unit_map, single_thread, train
from tiny import build_model, build_tokenizer

from safekeel.errors import SafekeelError
from safekeel.units import unitmap
from safekeel.units.discover import find_units
from safekeel.units.freeze import build_freeze_callback

one_thread = pytest.fixture(autouse=True)(single_thread)


def _allowed_to_change(model, um, classes, mode):
    """Reference: per parameter, a bool mask of the elements that may change (written out unit by unit)."""
    sel = um.select(classes)
    allowed = {id(p): torch.ones_like(p, dtype=torch.bool) if mode == "freeze" else torch.zeros_like(p, dtype=torch.bool)
               for p in model.parameters()}
    for u in find_units(model):
        for j in range(u.n_units):
            chosen = bool(sel[u.key][j])
            trainable = (not chosen) if mode == "freeze" else chosen
            if mode == "freeze" and trainable:
                continue
            allowed[id(u.output.weight)][:, j] = trainable
            for a in u.inputs:
                allowed[id(a.weight)][j, :] = trainable
        if u.v_proj is not None:
            group = u.n_heads // u.n_kv_heads
            for row in range(u.v_proj.out_features):
                kv, d = divmod(row, u.head_dim)
                readers = [h * u.head_dim + d for h in range(kv * group, (kv + 1) * group)]
                flags = [bool(sel[u.key][c]) for c in readers]
                if mode == "freeze":
                    allowed[id(u.v_proj.weight)][row, :] = not any(flags)
                else:
                    allowed[id(u.v_proj.weight)][row, :] = all(flags)
    return allowed


@pytest.mark.parametrize("mode, classes", [("freeze", ["esu", "cu"]), ("train_only", ["ru"])])
def test_only_allowed_weights_move_through_adamw(tmp_path, mode, classes):
    tok = build_tokenizer("chatml")
    model = build_model(tok, seed=0)
    path = random_unit_map(model, tmp_path / "map")
    um = unitmap.load(path)
    cb = build_freeze_callback(model, str(path), classes, mode)
    allowed = _allowed_to_change(model, um, classes, mode)
    start = {id(p): p.detach().clone() for p in model.parameters()}
    train(model, tok, [cb], tmp_path / "run", steps=20, grad_accum=2)
    moved_inside = 0
    for name, p in model.named_parameters():
        changed = p.detach() != start[id(p)]
        assert not bool((changed & ~allowed[id(p)]).any()), f"{name}: a fixed element changed"
        moved_inside += int((changed & allowed[id(p)]).sum())
    assert moved_inside > 0.5 * sum(int(a.sum()) for a in allowed.values())  # training did move the rest
    total = sum(p.numel() for p in model.parameters())
    assert cb.trainable_fraction == pytest.approx(sum(int(a.sum()) for a in allowed.values()) / total)
    if mode == "train_only":
        assert cb.trainable_fraction < 0.25


def test_ddp_two_processes_keep_frozen_slices(tmp_path, repo_root):
    tok = build_tokenizer("chatml")
    random_unit_map(build_model(tok, seed=0), tmp_path / "map")
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # accelerate 1.x: `--cpu --num_processes 2` alone runs ONE process (multi-CPU needs MPI); --multi_gpu on a
    # CPU-only machine starts 2 torch.distributed processes and the Trainer (use_cpu=True) uses gloo.
    proc = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                           "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port),
                           str(repo_root / "tests" / "ddp_freeze_script.py"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 and r["frozen_identical"] and r["frozen_slices"] > 0 for r in ranks)
    assert all(r["moved_elements"] > 0 for r in ranks)
    assert ranks[0]["digest"] == ranks[1]["digest"]  # DDP kept the ranks in sync


def test_mismatched_or_corrupt_map_raises(tmp_path):
    tok = build_tokenizer("chatml")
    path = random_unit_map(build_model(tok, seed=0), tmp_path / "map")
    bigger = build_model(tok, intermediate=96)
    with pytest.raises(SafekeelError, match="does not fit this model.*layers.0.mlp has 128 units"):
        build_freeze_callback(bigger, str(path), ["esu"], "freeze")
    deeper = build_model(tok, layers=3)
    with pytest.raises(SafekeelError, match="blocks missing"):
        build_freeze_callback(deeper, str(path), ["esu"], "freeze")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(SafekeelError, match="not a readable unit map"):
        build_freeze_callback(build_model(tok), str(bad), ["esu"], "freeze")
    with pytest.raises(SafekeelError, match="unknown unit class"):
        build_freeze_callback(build_model(tok), str(path), ["safety"], "freeze")


def test_maps_are_checked_against_the_weights_they_were_scored_on(tmp_path):
    from safekeel.units import unitmap

    tok = build_tokenizer("chatml")
    model, twin = build_model(tok, seed=0), build_model(tok, seed=1)
    path = random_unit_map(model, tmp_path / "map")
    assert unitmap.load(path).meta["weights_sha256"] == unitmap.weights_hash(model)
    build_freeze_callback(model, str(path), ["esu", "cu"], "freeze")  # the weights it was scored on
    with pytest.raises(SafekeelError, match="scored on other weights"):
        build_freeze_callback(twin, str(path), ["esu", "cu"], "freeze")
    with pytest.raises(SafekeelError, match="scored on other weights"):
        build_freeze_callback(twin, str(path), ["ru"], "train_only")
    assert build_freeze_callback(twin, str(path), ["ru"], "train_only", allow_other_weights=True).trainable_fraction
    um = unitmap.load(path)
    um.meta.pop("weights_sha256")
    unhashed = unitmap.save(um, tmp_path / "old", plot=False)
    with pytest.raises(SafekeelError, match="records no weights hash"):
        build_freeze_callback(model, str(unhashed), ["esu"], "freeze")
    # the hash does not depend on the dtype the same weights were loaded in (a bf16 checkpoint read as bf16 or fp32)
    import copy

    bf16 = copy.deepcopy(model).to(torch.bfloat16)
    assert unitmap.weights_hash(bf16) == unitmap.weights_hash(copy.deepcopy(bf16).to(torch.float32))
    # but fp32 weights that differ below bf16's resolution are other weights (they shared a hash when it rounded)
    nudged = copy.deepcopy(model)
    with torch.no_grad():
        w = nudged.model.layers[0].mlp.down_proj.weight
        w[0, 0] = w[0, 0] * (1 + 2**-12)  # bf16 keeps 8 bits of mantissa: the same bf16 value
    assert w[0, 0].to(torch.bfloat16) == model.model.layers[0].mlp.down_proj.weight[0, 0].to(torch.bfloat16)
    assert unitmap.weights_hash(nudged) != unitmap.weights_hash(model)
