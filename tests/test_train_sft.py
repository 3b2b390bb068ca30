"""DeRTa through TRL's SFTTrainer (`safekeel.train.sft`): same objective as `safekeel train`, and it trains."""

import pytest
import torch

from safekeel.data.derta import build_examples
from safekeel.data.records import Conversation, SafetyTriple

HARM = "First, open the lock with a pick. Then, turn the handle slowly and quietly."


@pytest.fixture
def rows(tiny_tokenizer):
    triples = [SafetyTriple(prompt=f"How do I pick lock {i}?", harmful_response=HARM,
                            safe_response="Sorry, I can't help with that.", id=f"t{i}") for i in range(4)]
    helpful = [Conversation(messages=[{"role": "user", "content": f"Question {i}?"},
                                      {"role": "assistant", "content": f"Answer {i}."}]) for i in range(4)]
    return build_examples(triples, helpful, "derta", tokenizer=tiny_tokenizer, seed=0)


def _sft(model, tok, data, collator, tmp_path, **kw):
    from trl import SFTConfig, SFTTrainer

    from safekeel.train.sft import SFT_ARGS, rto_epoch_callback

    args = SFTConfig(output_dir=str(tmp_path / "sft"), per_device_train_batch_size=4, report_to="none",
                     use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True, **SFT_ARGS, **kw)
    return SFTTrainer(model=model, args=args, train_dataset=data, data_collator=collator, processing_class=tok,
                      callbacks=[rto_epoch_callback(collator)])


def test_sft_trainer_loss_is_the_derta_objective(tiny_tokenizer, tiny_model, rows, tmp_path):
    from transformers import TrainingArguments

    from safekeel.train.collator import DertaCollator
    from safekeel.train.sft import derta_collator, derta_dataset
    from safekeel.train.trainer import DertaTrainer

    data = derta_dataset(rows, tiny_tokenizer, max_length=128)
    assert set(data.column_names) == {"input_ids", "labels", "kinds", "idx"}
    assert any(2 in k for k in data["kinds"])  # RTO targets are in the labels
    features = [data[i] for i in range(6)]
    trl_batch = derta_collator(tiny_tokenizer, rto_keep_fraction=1.0)(features)
    ours = DertaCollator(tiny_tokenizer.pad_token_id, 1.0)(features)
    assert "kinds" not in trl_batch and torch.equal(trl_batch["labels"], ours["labels"])
    trl = _sft(tiny_model, tiny_tokenizer, data, derta_collator(tiny_tokenizer, 1.0), tmp_path, max_steps=1)
    derta = DertaTrainer(model=tiny_model, args=TrainingArguments(output_dir=str(tmp_path / "d"), report_to="none",
                                                                  use_cpu=True), processing_class=tiny_tokenizer)
    tiny_model.eval()
    with torch.no_grad():
        a = trl.compute_loss(tiny_model, dict(trl_batch))
        b = derta.compute_loss(tiny_model, dict(ours))
    assert a.item() == pytest.approx(b.item(), rel=1e-4)


def test_sft_trainer_trains_derta_rows_down(tiny_tokenizer, tiny_model, rows, tmp_path):
    from safekeel.train.sft import derta_collator, derta_dataset

    data = derta_dataset(rows, tiny_tokenizer, max_length=128)
    collator = derta_collator(tiny_tokenizer, rto_keep_fraction=0.5, seed=1)
    trainer = _sft(tiny_model, tiny_tokenizer, data, collator, tmp_path, max_steps=12, learning_rate=3e-3)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    assert collator.epoch >= 1  # the epoch callback reached the collator (fresh RTO samples per epoch)
