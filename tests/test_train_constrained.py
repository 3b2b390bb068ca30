"""Qi et al.'s token-wise constrained objective: positions, the loss and its gradient weight, and a real training run."""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_train import built  # noqa: F401  (module fixture: a tiny saved model + a built DeRTa set)

from safekeel.train.constrained import QI_BETAS, constrained_token_loss, segment_positions


def test_segment_positions_restart_at_every_trained_run():
    mask = torch.tensor([0, 1, 1, 1, 0, 0, 1, 1, 0, 1], dtype=torch.bool)
    pos = segment_positions(mask)
    assert pos[mask].tolist() == [0, 1, 2, 0, 1, 0]


def test_loss_is_cross_entropy_like_at_the_reference_and_fades_past_it():
    betas = [0.5, 2.0, 0.1]
    mask = torch.ones(4, dtype=torch.bool)
    ref = torch.log(torch.full((4,), 0.2))
    # at the reference (delta = 0): loss (2/beta) log 2 and the gradient of plain CE (weight 2 (1 - sigmoid(0)) = 1)
    logp = ref.clone().requires_grad_(True)
    loss = constrained_token_loss(logp, ref, mask, betas)
    expected = [2 / b * math.log(2) for b in (0.5, 2.0, 0.1, 0.1)]
    assert loss.tolist() == pytest.approx(expected, rel=1e-5)
    loss.sum().backward()
    assert logp.grad.tolist() == pytest.approx([-1.0] * 4, rel=1e-5)
    # once theta is likelier than the reference, the weight 2 (1 - sigmoid(beta delta)) falls, fastest at large beta
    logp = (ref + 1.0).requires_grad_(True)
    constrained_token_loss(logp, ref, mask, betas).sum().backward()
    w = [-g for g in logp.grad.tolist()]
    assert w == pytest.approx([2 * (1 - 1 / (1 + math.exp(-b))) for b in (0.5, 2.0, 0.1, 0.1)], rel=1e-5)
    assert w[1] < w[0] < w[2] < 1.0
    # below the reference it pushes up harder than CE (weight -> 2), and untrained positions cost nothing
    logp = (ref - 3.0).requires_grad_(True)
    masked = torch.tensor([True, True, False, True])
    out = constrained_token_loss(logp, ref, masked, betas)
    out.sum().backward()
    assert out[2] == 0 and logp.grad[2] == 0 and all(1.0 < -g <= 2.0 for g in logp.grad[[0, 1, 3]].tolist())


def test_paper_betas_are_the_default():
    from safekeel.train.run import TrainConfig

    assert QI_BETAS == [0.5, 2.0, 2.0, 2.0, 2.0, 0.1] == TrainConfig().constrained_betas


def test_constrained_run_trains_against_the_frozen_start_and_records_it(built, tmp_path):  # noqa: F811
    from transformers import TrainerCallback

    from safekeel.config import resolve_config
    from safekeel.train.run import TrainConfig, run_train

    model_dir, data = built
    seen = {}

    class Spy(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kw):
            seen["start"] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    cfg = resolve_config(TrainConfig, overrides=dict(model=str(model_dir), data=str(data), out=str(tmp_path / "c"),
                                                      max_steps=3, batch_size=4, lr=1e-3, objective="constrained",
                                                      progress=False, save_steps=10))
    out = run_train(cfg, callbacks=[Spy()])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["objective"] == "constrained" and summary["steps"] == 3
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in log)
    from safetensors.torch import load_file

    final = load_file(str(out / "model" / "model.safetensors"))
    moved = [k for k, v in final.items() if k in seen["start"] and not torch.equal(v, seen["start"][k])]
    assert moved, "the constrained objective must still train the model"


def test_bad_betas_are_a_config_error():
    from safekeel.config import resolve_config
    from safekeel.errors import ConfigError
    from safekeel.train.run import TrainConfig

    with pytest.raises(ConfigError, match="constrained_betas"):
        resolve_config(TrainConfig, overrides=dict(data="x.jsonl", constrained_betas=[0.5, 0.0]))


def test_trainer_loss_at_the_reference_is_the_mean_of_2_over_beta_log_2(tiny_tokenizer, tiny_model, tmp_path):
    """With the reference equal to the model, every delta is 0: the loss is exactly mean_t (2 / beta_t) log 2."""
    import copy

    from test_train import _helpful, _triples
    from transformers import TrainingArguments

    from safekeel.data.derta import build_examples
    from safekeel.data.tokenize import IGNORE, tokenize_rows
    from safekeel.train.collator import DertaCollator
    from safekeel.train.trainer import DertaTrainer

    rows = build_examples(_triples(3), _helpful(), "prefix_only", tokenizer=tiny_tokenizer, seed=0)
    batch = DertaCollator(tiny_tokenizer.pad_token_id)(tokenize_rows(tiny_tokenizer, rows))
    betas = [0.5, 2.0, 0.1]
    trainer = DertaTrainer(model=tiny_model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                    report_to="none"),
                           ref_model=copy.deepcopy(tiny_model), betas=betas)
    tiny_model.eval()
    loss = trainer.compute_loss(tiny_model, dict(batch))
    shift = torch.nn.functional.pad(batch["labels"], (0, 1), value=IGNORE)[..., 1:].reshape(-1)
    pos = segment_positions(shift != IGNORE)[shift != IGNORE].clamp(max=len(betas) - 1)
    expected = sum(2 / betas[p] * math.log(2) for p in pos.tolist()) / len(pos)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert (pos == 0).sum() >= len(rows)  # every answer (and every recovery after a masked prefix) starts at 0
