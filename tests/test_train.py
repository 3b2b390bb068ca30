"""`safekeel train`: collator packing / keep-fraction, MLE+RTO loss logging, kill + resume determinism, LoRA, CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from safekeel.data.derta import build_examples
from safekeel.data.records import Conversation, SafetyTriple
from safekeel.data.tokenize import IGNORE, RTO, tokenize_rows
from safekeel.io import write_jsonl
from safekeel.train.collator import DertaCollator, PadToLongestCollator
from safekeel.train.trainer import per_token_ce

HARM = "First, open the lock with a pick. Then, turn the handle slowly and quietly."


def _triples(n=8):
    return [SafetyTriple(prompt=f"How do I pick lock number {i}?", harmful_response=HARM,
                         safe_response="Sorry, I can't help with that request.", id=f"t{i}") for i in range(n)]


def _helpful():
    return [Conversation(messages=[{"role": "user", "content": "What is the capital of France?"},
                                   {"role": "assistant", "content": "The capital of France is Paris."}])]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny saved model and a built DeRTa set (shared by the training tests)."""
    from tiny import build_tokenizer, save_tiny

    root = tmp_path_factory.mktemp("train")
    model_dir = save_tiny(root / "tiny")
    rows = build_examples(_triples(), _helpful(), "derta", tokenizer=build_tokenizer("chatml"), seed=0)
    data = root / "train.jsonl"
    write_jsonl(data, rows)
    return model_dir, data


def test_packed_and_padded_batches_give_the_same_token_losses(tiny_tokenizer, tiny_model):
    rows = build_examples(_triples(3), _helpful(), "derta", tokenizer=tiny_tokenizer, seed=1)
    feats = tokenize_rows(tiny_tokenizer, rows)
    packed = DertaCollator(tiny_tokenizer.pad_token_id, pack=True)(feats)
    padded = PadToLongestCollator(tiny_tokenizer.pad_token_id)(feats)
    assert packed["input_ids"].shape[0] == 1 and packed["input_ids"].shape[1] == sum(len(f["input_ids"]) for f in feats)
    assert (packed["position_ids"] == 0).sum() == len(feats)
    tiny_model.eval()
    with torch.no_grad():
        ce_p, lab_p = per_token_ce(tiny_model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                                              use_cache=False).logits,
                                   packed["labels"])
        out = tiny_model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"])
        ce_d, lab_d = per_token_ce(out.logits, padded["labels"])
    assert (lab_p != IGNORE).sum() == (lab_d != IGNORE).sum()
    torch.testing.assert_close(ce_p[lab_p != IGNORE], ce_d[lab_d != IGNORE], rtol=1e-4, atol=1e-4)


def test_rto_keep_fraction_is_resampled_per_epoch_and_reproducible(tiny_tokenizer):
    rows = [r for r in build_examples(_triples(1), [], "derta", tokenizer=tiny_tokenizer) if r["kind"] == "rto"]
    feat = {**tokenize_rows(tiny_tokenizer, rows)[0], "idx": 0}
    n_rto = sum(k == RTO for k in feat["kinds"])
    col = DertaCollator(tiny_tokenizer.pad_token_id, rto_keep_fraction=0.25, seed=3)
    kept = []
    for epoch in range(200):
        col.epoch = epoch
        labels = col([feat])["labels"][0]
        kept.append(tuple((labels != IGNORE).nonzero().flatten().tolist()))
    assert all(len(k) == round(0.25 * n_rto) for k in kept)
    assert len(set(kept)) > 150  # a fresh subset each time the row is batched
    counts = torch.zeros(len(feat["input_ids"]))
    for k in kept:
        counts[list(k)] += 1
    rto_pos = [i for i, k in enumerate(feat["kinds"]) if k == RTO and i > 0]
    freq = counts[rto_pos] / len(kept)
    assert abs(freq.mean().item() - 0.25) < 0.02 and freq.min() > 0.1 and freq.max() < 0.4  # every position sampled
    col.epoch = 7
    again = DertaCollator(tiny_tokenizer.pad_token_id, rto_keep_fraction=0.25, seed=3)
    again.epoch = 7
    assert torch.equal(col([feat])["labels"], again([feat])["labels"])


_DRIVER = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    from safekeel.config import resolve_config
    from safekeel.train.run import TrainConfig, run_train

    class KillAfterSave(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            if state.global_step == int(os.environ["KILL_AT"]):
                os.kill(os.getpid(), signal.SIGKILL)  # a hard kill, right after a checkpoint is on disk

    model, data, out, resume = sys.argv[1:5]
    cfg = resolve_config(TrainConfig, overrides=dict(model=model, data=data, out=out, resume=resume == "1",
        epochs=2, batch_size=3, lr=1e-3, save_steps=2, rto_keep_fraction=0.5, progress=False, seed=5))
    run_train(cfg, callbacks=[KillAfterSave()] if os.environ.get("KILL_AT") else [])
""")


def _run(driver, args, env, kill_at=None):
    env = dict(env, **({"KILL_AT": str(kill_at)} if kill_at else {}))
    return subprocess.run([sys.executable, str(driver), *map(str, args)], env=env, capture_output=True, text=True,
                          timeout=120)


def test_front_rto_schedule_keeps_the_first_position_and_favours_early_ones(tiny_tokenizer):
    rows = [r for r in build_examples(_triples(1), [], "derta", tokenizer=tiny_tokenizer) if r["kind"] == "rto"]
    feat = {**tokenize_rows(tiny_tokenizer, rows)[0], "idx": 0}
    rto_pos = [i for i, k in enumerate(feat["kinds"]) if k == RTO]
    col = DertaCollator(tiny_tokenizer.pad_token_id, rto_keep_fraction=0.25, seed=3, pack=False, rto_schedule="front")
    counts = torch.zeros(len(feat["input_ids"]))
    for epoch in range(300):
        col.epoch = epoch
        labels = col([feat])["labels"][0]
        assert (labels != IGNORE).sum() == round(0.25 * len(rto_pos))  # the same budget as uniform
        counts[(labels != IGNORE).nonzero().flatten()] += 1
    freq = counts[rto_pos] / 300
    assert freq[0] == 1.0  # t = 0 (the turn start) every time
    third = len(rto_pos) // 3
    assert freq[1:1 + third].mean() > 1.5 * freq[-third:].mean()  # early positions trained more often than late ones
    with pytest.raises(ValueError, match="rto_schedule"):
        DertaCollator(0, rto_schedule="back")


def test_killed_and_resumed_run_matches_an_uninterrupted_run(built, tmp_path, cli_env):
    model_dir, data = built
    driver = tmp_path / "driver.py"
    driver.write_text(_DRIVER)
    full, cut = tmp_path / "full", tmp_path / "cut"
    r = _run(driver, [model_dir, data, full, 0], cli_env)
    assert r.returncode == 0, r.stderr[-2000:]
    r = _run(driver, [model_dir, data, cut, 0], cli_env, kill_at=4)
    assert r.returncode == -9, r.stderr[-2000:]  # killed mid-run
    assert (cut / "checkpoints" / "checkpoint-4").is_dir() and not (cut / "summary.json").exists()
    r = _run(driver, [model_dir, data, cut, 1], cli_env)
    assert r.returncode == 0, r.stderr[-2000:]
    log_full = [json.loads(x) for x in (full / "train_log.jsonl").read_text().splitlines()]
    log_cut = [json.loads(x) for x in (cut / "train_log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in log_cut] == [x["step"] for x in log_full] == list(range(1, len(log_full) + 1))
    for a, b in zip(log_full, log_cut, strict=True):
        for key in ("loss", "mle_loss", "rto_loss", "rto_tokens"):
            assert (a[key] is None and b[key] is None) or a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), \
                (a["step"], key, a[key], b[key])
    assert json.loads((cut / "summary.json").read_text())["resumed_from"] == "checkpoint-4"
    w_full, w_cut = load_file(full / "model" / "model.safetensors"), load_file(cut / "model" / "model.safetensors")
    for name, t in w_full.items():
        torch.testing.assert_close(t, w_cut[name], rtol=1e-5, atol=1e-6)


def test_cli_trains_lora_and_logs_both_losses(built, tmp_path, cli_env):
    model_dir, data = built
    out = tmp_path / "lora"
    r = subprocess.run([sys.executable, "-m", "safekeel", "train", "--model", str(model_dir), "--data", str(data),
                        "--out", str(out), "--lora", "true", "--lora-r", "4", "--max-steps", "3", "--lr", "1e-3",
                        "--progress", "false", "--gradient-checkpointing", "true"],
                       env=cli_env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trained 3 steps" in r.stdout
    assert (out / "model" / "adapter_config.json").exists() and (out / "config.yaml").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert 0 < summary["trainable_fraction"] < 0.5 and summary["lora"] is True
    log = [json.loads(x) for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and all(x["mle_loss"] is not None or x["rto_loss"] is not None for x in log)
    # the logged total is the token-weighted mean of the two parts (one CE over all targets)
    for x in log:
        parts = [(x[k], x[t]) for k, t in (("mle_loss", "mle_tokens"), ("rto_loss", "rto_tokens")) if x[t]]
        mean = sum(v * n for v, n in parts) / sum(n for _, n in parts)
        assert x["loss"] == pytest.approx(mean, rel=1e-4)


def test_cli_reports_bad_training_rows_with_file_line_and_field(built, tmp_path, cli_env):
    model_dir, data = built
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "rto", "messages": [{"role": "user", "content": "x"}, {"role": "assistant", '
                   '"content": "y"}]}\n{"kind": "weird", "messages": []}\n{"kind": "safe", "messages": '
                   '[{"role": "user", "content": "x"}]}\n')
    r = subprocess.run([sys.executable, "-m", "safekeel", "train", "--model", str(model_dir), "--data", str(bad),
                        "--out", str(tmp_path / "o"), "--progress", "false"], env=cli_env, capture_output=True, text=True)
    assert r.returncode == 2 and "bad.jsonl:2: field 'kind'" in r.stderr
    bad.write_text(bad.read_text().splitlines()[0] + "\n" + bad.read_text().splitlines()[2] + "\n")
    r = subprocess.run([sys.executable, "-m", "safekeel", "train", "--model", str(model_dir), "--data", str(bad),
                        "--out", str(tmp_path / "o"), "--progress", "false"], env=cli_env, capture_output=True, text=True)
    assert r.returncode == 2 and "bad.jsonl:2: field 'messages': the last message must be the assistant" in r.stderr


def test_cli_train_without_data_exits_2(capsys):
    from safekeel.cli import main

    assert main(["train", "--model", "x", "--lr", "1e-4"]) == 2
    assert "--data" in capsys.readouterr().err


def test_a_finished_run_is_not_overwritten_without_resume(tmp_path):
    from safekeel.config import resolve_config
    from safekeel.errors import SafekeelError
    from safekeel.train.run import TrainConfig, run_train

    (tmp_path / "train_log.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    cfg = resolve_config(TrainConfig, overrides=dict(data="x.jsonl", out=str(tmp_path)))
    with pytest.raises(SafekeelError, match="--resume true"):
        run_train(cfg)


def test_freeze_hook_is_called_with_the_unit_map(built, tmp_path, monkeypatch):
    """The freezing itself lives in safekeel.units.freeze; training passes the map, classes and mode to it."""
    import types

    from transformers import TrainerCallback

    from safekeel.config import resolve_config
    from safekeel.train.run import TrainConfig, run_train

    calls = []

    class Fake(TrainerCallback):
        trainable_fraction = 0.2

    def build_freeze_callback(model, path, classes, mode, allow_other_weights=False):
        calls.append((path, list(classes), mode, allow_other_weights))
        return Fake()

    monkeypatch.setitem(sys.modules, "safekeel.units.freeze", types.SimpleNamespace(build_freeze_callback=build_freeze_callback))
    model_dir, data = built
    cfg = resolve_config(TrainConfig, overrides=dict(model=str(model_dir), data=str(data), out=str(tmp_path / "f"),
                                                     max_steps=1, progress=False, train_only_units="units.safetensors"))
    out = run_train(cfg)
    assert calls == [("units.safetensors", ["ru"], "train_only", False)]  # other weights refused unless asked
    assert json.loads((out / "summary.json").read_text())["trainable_fraction"] == 0.2
    assert os.path.exists(Path(out) / "model" / "model.safetensors")


def test_dpo_baseline_trains_on_preference_pairs(built, tmp_path):
    pytest.importorskip("trl")
    from safekeel.config import resolve_config
    from safekeel.train.dpo import DPOTrainConfig, preference_rows, run_dpo

    model_dir, _ = built
    triples = tmp_path / "t.jsonl"
    write_jsonl(triples, [t.to_dict() for t in _triples(4)])
    pair = preference_rows(_triples(1))[0]
    assert pair["chosen"][0]["content"].startswith("Sorry") and pair["rejected"][0]["content"] == HARM
    cfg = resolve_config(DPOTrainConfig, overrides=dict(model=str(model_dir), triples=str(triples), split="all",
                                                        out=str(tmp_path / "dpo"), max_steps=2, batch_size=2))
    out = run_dpo(cfg)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 2 and summary["pairs"] == 4
    assert (out / "model" / "model.safetensors").exists() and len((out / "train_log.jsonl").read_text().splitlines()) == 2


def test_refusal_unlikelihood_adds_minus_log_one_minus_p_at_mle_targets_that_are_not_the_refusal(
        tiny_tokenizer, tiny_model, tmp_path):
    """w * sum over MLE targets != r of -log(1 - p(r)), added to the CE sum; RTO targets and r targets are exempt."""
    from transformers import TrainingArguments

    from safekeel.data.tokenize import MLE
    from safekeel.train.run import _rto_ids
    from safekeel.train.trainer import DertaTrainer

    rows = build_examples(_triples(3), _helpful(), "derta", tokenizer=tiny_tokenizer, seed=0)
    feats = tokenize_rows(tiny_tokenizer, rows)
    ids = _rto_ids(feats)
    assert ids and all(any(lab == i for f in feats for lab in f["labels"]) for i in ids)
    batch = DertaCollator(tiny_tokenizer.pad_token_id, rto_keep_fraction=1.0)(feats)
    args = TrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    tiny_model.eval()
    plain = DertaTrainer(model=tiny_model, args=args).compute_loss(tiny_model, dict(batch))
    w = 100.0  # large, so the added term is far above float32 rounding of the CE part
    ul = DertaTrainer(model=tiny_model, args=args, unlikelihood=w, refusal_ids=ids).compute_loss(tiny_model,
                                                                                               dict(batch))
    with torch.no_grad():
        logp = torch.log_softmax(tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                                            use_cache=False).logits.float(), -1)[0]
    labels, kinds = batch["labels"][0], batch["kinds"][0]
    n = int((labels != IGNORE).sum())
    expected = 0.0
    for t in range(len(labels) - 1):  # the target of position t is labels[t + 1]
        if int(kinds[t + 1]) == MLE and int(labels[t + 1]) not in ids:
            expected += sum(-torch.log1p(-logp[t, i].exp()).item() for i in ids)
    assert expected > 0
    assert float((ul - plain).detach()) == pytest.approx(w * expected / n, rel=1e-4)
    with pytest.raises(ValueError, match="refusal token ids"):
        DertaTrainer(model=tiny_model, args=args, unlikelihood=1.0)
