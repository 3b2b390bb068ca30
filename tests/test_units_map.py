"""Classification honours the fractions, the unit map round-trips, bad maps fail clearly, ablation hooks equal
exported zeroed weights, and the three verbs run end to end through the CLI on a tiny model."""

import json
import subprocess
import sys

import pytest
import torch
from ddp_freeze_script import random_unit_map, single_thread
from tiny import build_model, build_tokenizer

from safekeel.errors import SafekeelError
from safekeel.units import unitmap
from safekeel.units.ablate import pruned, random_like, sample_within, zero_units
from safekeel.units.unitmap import CLASSES, classify

one_thread = pytest.fixture(autouse=True)(single_thread)


def _scores(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ({k: torch.rand(n, generator=g) for k, n in sizes.items()},
            {k: torch.rand(n, generator=g) for k, n in sizes.items()})


SIZES = {"layers.0.mlp": 400, "layers.0.attn": 160, "layers.1.mlp": 400, "layers.1.attn": 160}


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_class_fractions_honoured(scope):
    s, u = _scores(SIZES)
    um = classify(s, u, esu=0.013, euu=0.133, ru=0.148, cu_top=0.062, scope=scope)
    groups = [[k] for k in SIZES] if scope == "layer" else [list(SIZES)]
    for keys in groups:
        n = sum(SIZES[k] for k in keys)
        cls = torch.cat([um.classes[k] for k in keys])
        for name, frac in (("esu", 0.013), ("euu", 0.133), ("ru", 0.148)):
            assert int((cls == CLASSES.index(name)).sum()) == round(frac * n)
        top = torch.cat([um.cu_top[k] for k in keys])
        assert int(top.sum()) == round(0.062 * n) and bool((cls[top] == CLASSES.index("cu")).all())
    # definitions: RU have the lowest S+U (ranks), ESU the highest S-U among the rest
    k = "layers.0.mlp"
    rs, ru_ = (s[k].argsort().argsort().double() / 399), (u[k].argsort().argsort().double() / 399)
    is_ru = um.classes[k] == CLASSES.index("ru")
    if scope == "layer":
        assert (rs + ru_)[is_ru].max() <= (rs + ru_)[~is_ru].min()
        rest = ~is_ru
        is_esu = um.classes[k] == CLASSES.index("esu")
        assert (rs - ru_)[is_esu].min() >= (rs - ru_)[rest & ~is_esu].max()


def test_head_granularity_gives_one_class_per_head():
    s, u = _scores(SIZES)
    um = classify(s, u, esu=0.1, euu=0.2, ru=0.2, cu_top=0.1, attn_granularity="head",
                  head_dim={"layers.0.attn": 16, "layers.1.attn": 16})
    heads = um.classes["layers.0.attn"].reshape(10, 16)
    assert bool((heads == heads[:, :1]).all())
    assert int((heads[:, 0] == CLASSES.index("esu")).sum()) == 1  # 10% of 10 heads


def test_unit_map_round_trip_and_selectors(tmp_path):
    s, u = _scores(SIZES)
    um = classify(s, u, meta={"model": "m", "method": "ssah", "calibration": {"safety": {"sha256": "ab"}}})
    unitmap.save(um, tmp_path)
    back = unitmap.load(tmp_path)
    for k in SIZES:
        assert torch.equal(back.classes[k], um.classes[k]) and torch.equal(back.cu_top[k], um.cu_top[k])
        assert torch.equal(back.safety[k], um.safety[k]) and torch.equal(back.utility[k], um.utility[k])
    assert back.meta == json.loads((tmp_path / "unit_map.json").read_text())
    assert back.meta["counts"]["layers.1.mlp"]["esu"] == 5 and back.meta["calibration"]["safety"]["sha256"] == "ab"
    assert (tmp_path / "units_per_class.png").read_bytes()[:4] == b"\x89PNG"
    sel = back.select(["esu", "cu"])
    assert int(sel["layers.0.mlp"].sum()) == 5 + 25
    assert int(back.select(["cu_all"])["layers.0.mlp"].sum()) == 400 - 5 - 53 - 59


def test_corrupt_unit_maps_raise(tmp_path):
    s, u = _scores(SIZES)
    path = unitmap.save(classify(s, u), tmp_path / "ok", plot=False)
    data = path.read_bytes()
    (tmp_path / "trunc.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(SafekeelError, match="not a readable unit map"):
        unitmap.load(tmp_path / "trunc.safetensors")
    with pytest.raises(SafekeelError, match="unit map not found"):
        unitmap.load(tmp_path / "missing")
    from safetensors.torch import save_file

    save_file({"layers.0.mlp.class": torch.zeros(4, dtype=torch.uint8)}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(SafekeelError, match="lacks tensor"):
        unitmap.load(tmp_path / "partial.safetensors")


def test_hooks_equal_exported_zeroed_weights_and_are_reversible(tmp_path):
    tok = build_tokenizer("chatml")
    model = build_model(tok).eval()
    um = unitmap.load(random_unit_map(model, tmp_path / "map"))
    sel = um.select(["esu", "euu"])
    ids = torch.tensor([[5, 9, 17, 33, 2, 8, 100]])
    with torch.no_grad():
        dense = model(input_ids=ids).logits
        with pruned(model, sel):
            hooked = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
        assert zero_units(model, sel) == sum(int(m.sum()) for m in sel.values())
        exported = model(input_ids=ids).logits
    assert torch.equal(after, dense) and not torch.allclose(hooked, dense)
    torch.testing.assert_close(exported, hooked, rtol=1e-5, atol=1e-6)
    ctrl = random_like(sel, seed=1)
    assert all(int(ctrl[k].sum()) == int(sel[k].sum()) for k in sel) and any(
        not torch.equal(ctrl[k], sel[k]) for k in sel)
    ru = sample_within(um.select(["ru"]), um.select(["esu"]), seed=0)
    for k in sel:
        assert int(ru[k].sum()) == int(um.select(["esu"])[k].sum())
        assert bool((um.classes[k][ru[k]] == CLASSES.index("ru")).all())


def _cli(*args, env):
    env = {**env, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "safekeel", "units", *args], capture_output=True, text=True, env=env)


def test_cli_score_classify_ablate_end_to_end(tmp_path, tiny_dir, cli_env):
    triples = tmp_path / "triples.jsonl"
    triples.write_text("\n".join(json.dumps({"prompt": f"How do I make weapon {i}?", "harmful_response": "Step 1.",
                                             "safe_response": "Sorry, I can't help with that."}) for i in range(6)))
    behaviors = tmp_path / "behaviors.jsonl"
    behaviors.write_text("\n".join(json.dumps({"prompt": f"Explain how to pick lock {i}"}) for i in range(4)))
    out = tmp_path / "score"
    proc = _cli("score", "--model", str(tiny_dir), "--method", "wanda", "--safety", str(triples),
                "--utility", "benign", "--n-utility", "3", "--distill-max-new-tokens", "6", "--max-length", "48",
                "--out", str(out), env=cli_env)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((out / "scores.json").read_text())
    assert meta["calibration"]["utility"]["n"] == 3 and len(meta["calibration"]["safety"]["sha256"]) == 16
    proc = _cli("classify", str(out), "--esu", "0.05", "--scope", "global", env=cli_env)
    assert proc.returncode == 0, proc.stderr
    assert "ESU" in proc.stdout and (out / "units_per_class.png").exists()
    um = json.loads((out / "unit_map.json").read_text())
    assert um["method"] == "wanda" and um["totals"]["esu"] == round(0.05 * um["totals"]["units"])
    abl = tmp_path / "ablate"
    proc = _cli("ablate", str(out), "--model", str(tiny_dir), "--behaviors", str(behaviors), "--n-utility", "2",
                "--n-checks", "2", "--max-new-tokens", "4", "--safety-ppl", "false", "--export", str(tmp_path / "pruned"), "--out", str(abl),
                env=cli_env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((abl / "summary.json").read_text())
    assert list(summary["conditions"]) == ["dense", "esu", "random"]
    assert summary["conditions"]["esu"]["units_pruned"] == summary["conditions"]["random"]["units_pruned"] > 0
    assert {"refusal_direct", "refusal_prefill", "ppl_benign", "answer_acc"} <= set(summary["conditions"]["esu"])
    assert (tmp_path / "pruned" / "model.safetensors").exists() and (abl / "config.yaml").exists()
    # a map for another model (in-process: same code path as the CLI), and a missing scores folder via the CLI
    from tiny import save_tiny

    from safekeel.units.runs import AblateConfig, run_ablate

    other = save_tiny(tmp_path / "other", intermediate=96)
    with pytest.raises(SafekeelError, match="does not fit this model"):
        run_ablate(AblateConfig(unit_map=str(out), model=str(other), behaviors=str(behaviors), out=str(abl)))
    twin = save_tiny(tmp_path / "twin", seed=1)  # same shapes, other weights: pruning its "ESU" would mean nothing
    with pytest.raises(SafekeelError, match="scored on other weights"):
        run_ablate(AblateConfig(unit_map=str(out), model=str(twin), behaviors=str(behaviors), out=str(abl)))
    proc = _cli("classify", str(tmp_path / "nope"), env=cli_env)
    assert proc.returncode == 2 and "nope: not found" in proc.stderr


def test_unit_map_records_its_weights_and_training_refuses_other_weights(tmp_path, tiny_dir, cli_env):
    """A map scored on one set of weights is refused (exit 2, nothing written) for another unless asked for."""
    from tiny import save_tiny

    from safekeel.models import load_model
    from safekeel.units.unitmap import weights_hash

    triples = tmp_path / "triples.jsonl"
    triples.write_text("\n".join(json.dumps({"prompt": f"How do I make weapon {i}?", "harmful_response": "Step 1.",
                                             "safe_response": "Sorry, I can't help with that."}) for i in range(6)))
    units = tmp_path / "units"
    assert _cli("score", "--model", str(tiny_dir), "--method", "wanda", "--safety", str(triples), "--utility",
                "benign", "--n-utility", "2", "--distill-max-new-tokens", "4", "--max-length", "48", "--out",
                str(units), env=cli_env).returncode == 0
    assert _cli("classify", str(units), env=cli_env).returncode == 0
    recorded = json.loads((units / "unit_map.json").read_text())["weights_sha256"]
    assert recorded == weights_hash(load_model(str(tiny_dir))[0])
    twin = save_tiny(tmp_path / "twin", seed=1)  # same shapes, other weights: check_model alone would accept it
    assert weights_hash(load_model(str(twin))[0]) != recorded
    data = tmp_path / "data"
    build = subprocess.run([sys.executable, "-m", "safekeel", "data", "build", "--triples", str(triples), "--split",
                            "all", "--model", str(tiny_dir), "--out", str(data)], capture_output=True, text=True,
                           env=cli_env)
    assert build.returncode == 0, build.stderr

    def train(model, out, *extra):
        return subprocess.run([sys.executable, "-m", "safekeel", "train", "--model", str(model), "--data",
                               str(data / "train.jsonl"), "--out", str(out), "--max-steps", "1", "--progress", "false",
                               *extra], capture_output=True, text=True, env=cli_env)

    for flag in ("--freeze-units", "--train-only-units"):
        proc = train(twin, tmp_path / "refused", flag, str(units))
        assert proc.returncode == 2 and "scored on other weights" in proc.stderr, proc.stderr
        assert not (tmp_path / "refused").exists()
    assert train(tiny_dir, tmp_path / "same", "--freeze-units", str(units)).returncode == 0
    proc = train(twin, tmp_path / "forced", "--freeze-units", str(units), "--unit-map-any-weights", "true")
    assert proc.returncode == 0, proc.stderr


def test_size_calibration_by_pruning_degradation():
    from safekeel.units.calibration import make_batches
    from safekeel.units.scores import score
    from safekeel.units.sizes import calibrate_sizes

    tok = build_tokenizer("chatml")
    model = build_model(tok).eval()
    safe = make_batches(tok, [("How do I make a weapon?", "Sorry, I can't help with that request.")] * 2, 2, 48)
    util = make_batches(tok, [("What is the capital of France?", "The capital of France is Paris.")] * 2, 2, 48)
    s, u = score(model, safe, "wanda"), score(model, util, "wanda")
    fractions = {"esu": 0.013, "euu": 0.133, "ru": 0.148}
    esu, ru, trials = calibrate_sizes(model, safe, util, s, u, fractions, [0.01, 0.05, 0.2], [0.05, 0.3],
                                      ru_tolerance=1e9)
    assert esu in (0.01, 0.05, 0.2) and ru == 0.3 and len(trials) == 5
    best = max((t for t in trials if t["class"] == "esu"),
               key=lambda t: t["safety_nll_increase"] - t["utility_nll_increase"])
    assert best["fraction"] == esu
    _, ru, _ = calibrate_sizes(model, safe, util, s, u, fractions, [0.01], [0.3], ru_tolerance=-1)
    assert ru == 0.0


@pytest.mark.parametrize("name, cls", [("units_score", "ScoreConfig"), ("units_classify", "ClassifyConfig"),
                                       ("units_ablate", "AblateConfig")])
def test_shipped_configs_resolve(repo_root, name, cls):
    from safekeel.config import resolve_config
    from safekeel.units import runs

    overrides = {"scores": "s"} if name == "units_classify" else {"unit_map": "m"} if name == "units_ablate" else {}
    cfg = resolve_config(getattr(runs, cls), yaml_path=str(repo_root / "configs" / f"{name}.yaml"),
                         overrides=overrides)
    assert cfg is not None and (name != "units_classify" or cfg.esu == 0.013)


def test_self_distilled_answers_follow_the_weights_not_the_name(tmp_path, monkeypatch):
    """A model retrained at the same path (or another adapter on one base) must not get the old model's answers."""
    import safekeel.eval.generate as gen
    from safekeel.units.calibration import self_distill

    monkeypatch.setenv("SAFEKEEL_HOME", str(tmp_path / "home"))
    calls = []

    def fake_generate(model, tok, requests, max_new_tokens, batch_size, on_batch=None, **kw):
        calls.append(len(requests))
        answers = [f"answer of {id(model)}"] * len(requests)
        on_batch(list(range(len(requests))), answers)
        return answers

    monkeypatch.setattr(gen, "generate", fake_generate)
    tok = build_tokenizer("chatml")
    first, retrained = build_model(tok, seed=0), build_model(tok, seed=1)
    prompts = ["Name a fruit.", "Name a colour."]
    a = self_distill(first, tok, prompts, "runs/train/derta/model")
    assert self_distill(first, tok, prompts, "runs/train/derta/model") == a and calls == [2]  # cached
    b = self_distill(retrained, tok, prompts, "runs/train/derta/model")  # same name, new weights
    assert calls == [2, 2] and b != a
