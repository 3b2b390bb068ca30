"""On the embedded default model: units are found by structure (30 layers, 1536 MLP / 576 attention channels,
9 query heads over 3 kv heads), ssah scoring + classification + freezing work end to end on a few examples."""

import pytest
import torch

pytestmark = pytest.mark.slow


def test_default_model_units_score_classify_freeze(tmp_path):
    from safekeel.units import calibration as cal
    from safekeel.units import unitmap
    from safekeel.units.discover import find_units
    from safekeel.units.freeze import build_freeze_callback
    from safekeel.units.runs import load_for_units
    from safekeel.units.scores import score

    model, tok = load_for_units("smollm2-135m")
    units = find_units(model)
    assert len(units) == 60
    mlp, attn = units[0], units[1]
    assert (mlp.n_units, attn.n_units, attn.n_heads, attn.n_kv_heads, attn.head_dim) == (1536, 576, 9, 3, 64)
    assert attn.v_rows(torch.tensor([0, 64 * 3, 64 * 3 + 5, 64 * 8])).tolist() == [0, 64, 69, 128]
    safety = cal.safety_pairs("uncensorbench", 4)
    utility = [("What is the capital of France?", "The capital of France is Paris."),
               ("Give me a tip for baking bread.", "Use fresh yeast and let the dough rise in a warm place."),
               ("How many days are in a week?", "There are seven days in a week."),
               ("Name a primary color.", "Red is a primary color.")]
    s = score(model, cal.make_batches(tok, safety, 4, 128), "ssah")
    u = score(model, cal.make_batches(tok, utility, 4, 128), "ssah")
    assert all(bool(torch.isfinite(v).all()) and float(v.sum()) > 0 for v in s.values())
    um = unitmap.classify(s, u, meta={"model": "smollm2-135m", "method": "ssah",
                                      "weights_sha256": unitmap.weights_hash(model)})
    assert um.meta["totals"]["esu"] == 30 * (round(0.013 * 1536) + round(0.013 * 576))
    path = unitmap.save(um, tmp_path)
    cb = build_freeze_callback(model, str(path), ["esu", "cu"], "freeze")
    assert 0.9 < cb.trainable_fraction < 0.99
    budget = build_freeze_callback(model, str(path), ["ru"], "train_only")
    assert 0.01 < budget.trainable_fraction < 0.2
