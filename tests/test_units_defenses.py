"""Freezing-defense maps: each freezes exactly the set it promises (ssah = ESU + top CU; random and top_safety the
same number per block), keeps the source map's weights hash, and its frozen slices stay bit-identical through AdamW."""

import pytest
import torch
from ddp_freeze_script import random_unit_map, single_thread, train
from tiny import build_model, build_tokenizer

from safekeel.errors import SafekeelError
from safekeel.units import unitmap
from safekeel.units.defenses import DEFENSES, derive, write_defense_maps
from safekeel.units.discover import find_units
from safekeel.units.freeze import build_freeze_callback

one_thread = pytest.fixture(autouse=True)(single_thread)


@pytest.fixture
def scored(tmp_path):
    tok = build_tokenizer("chatml")
    model = build_model(tok, seed=0)
    path = random_unit_map(model, tmp_path / "map")
    return tok, model, path, unitmap.load(path)


def _frozen(um):
    return um.select(["esu"])


def test_each_defense_freezes_what_it_promises(scored):
    _, _, _, um = scored
    ssah_src, all_src = um.select(["esu", "cu"]), um.select(["esu", "cu_all"])
    lower_src = {k: torch.full_like(v, k.startswith("layers.0.")) for k, v in ssah_src.items()}  # 2-layer model
    ru_src = um.select(["ru"])
    source = {"ssah": ssah_src, "random": ssah_src, "top_safety": ssah_src, "ssah_all": all_src,
              "random_all": all_src, "lower": lower_src, "ru": ru_src, "random_ru": ru_src}
    assert sorted(source) == sorted(DEFENSES)
    maps = {d: derive(um, d, seed=0) for d in DEFENSES}
    for d, m in maps.items():
        assert m.keys == um.keys and all(m.classes[k].shape == um.classes[k].shape for k in um.keys)
        assert set(torch.cat(list(m.classes.values())).unique().tolist()) <= {unitmap.CLASSES.index("esu"),
                                                                           unitmap.CLASSES.index("ru")}
        assert not any(bool(t.any()) for t in m.cu_top.values())
        frozen, src = _frozen(m), source[d]
        assert {k: int(v.sum()) for k, v in frozen.items()} == {k: int(v.sum()) for k, v in src.items()}, d
        assert m.meta["defense"] == d and m.meta["frozen_units"] == sum(int(v.sum()) for v in src.values())
        assert m.meta["weights_sha256"] == um.meta["weights_sha256"]
    for d in ("ssah", "ssah_all", "lower", "ru"):
        assert all(torch.equal(_frozen(maps[d])[k], source[d][k]) for k in um.keys), d
    assert 0 < sum(int(v.sum()) for v in ssah_src.values()) < sum(int(v.sum()) for v in all_src.values())
    for twin in ("random", "random_all", "random_ru"):  # same count per block, other units
        assert not all(torch.equal(_frozen(maps[twin])[k], source[twin][k]) for k in um.keys)
    for k in um.keys:  # top_safety: no unfrozen unit scores higher on safety than a frozen one
        f, s = _frozen(maps["top_safety"])[k], um.safety[k]
        assert s[f].min() >= s[~f].max()
    assert not all(torch.equal(_frozen(maps["top_safety"])[k], ssah_src[k]) for k in um.keys)


def test_random_is_seeded(scored):
    _, _, _, um = scored
    a, b, c = (_frozen(derive(um, "random", seed=s)) for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in um.keys)
    assert not all(torch.equal(a[k], c[k]) for k in um.keys)
    assert derive(um, "random", seed=1).meta["seed"] == 1 and "seed" not in derive(um, "ssah").meta
    with pytest.raises(SafekeelError, match="unknown freezing defense"):
        derive(um, "everything")


def test_saved_maps_fit_the_scored_weights(scored, tmp_path):
    _, model, path, _ = scored
    paths = write_defense_maps(path, tmp_path / "maps", seed=3)
    assert sorted(paths) == sorted(DEFENSES)
    for d, p in paths.items():
        m = unitmap.load(p)
        m.check_model(model)
        m.check_weights(model)  # the derived map is accepted for the weights the source map was scored on
        assert m.meta["defense"] == d and m.meta["source_map"] == str(path)
    assert unitmap.load(paths["random"]).meta["seed"] == 3


@pytest.mark.parametrize("defense", DEFENSES)
def test_frozen_slices_stay_bit_identical_through_adamw(scored, tmp_path, defense):
    tok, _, path, _ = scored
    model = build_model(tok, seed=0)  # the weights the map was scored on
    mp = write_defense_maps(path, tmp_path / "maps", seed=0, defenses=[defense])[defense]
    frozen = _frozen(unitmap.load(mp))
    cb = build_freeze_callback(model, str(mp), ["esu"], "freeze")
    units = find_units(model)
    before = {u.key: (u.output.weight.detach().clone(), [a.weight.detach().clone() for a in u.inputs]) for u in units}
    train(model, tok, [cb], tmp_path / "run", steps=4, grad_accum=1)
    for u in units:
        f = frozen[u.key]
        w0, ins0 = before[u.key]
        assert torch.equal(u.output.weight.detach()[:, f], w0[:, f]), f"{u.key}: a frozen column moved"
        if (~f).any():  # `lower` freezes whole blocks
            assert not torch.equal(u.output.weight.detach()[:, ~f], w0[:, ~f]), f"{u.key}: nothing else moved"
        for a, a0, offsets in zip(u.inputs, ins0, u.input_offsets, strict=True):
            for off in offsets:  # a fused input (gate_up) holds the unit rows once per part
                rows = torch.zeros(a.out_features, dtype=torch.bool)
                rows[off:off + u.n_units] = f
                assert torch.equal(a.weight.detach()[rows], a0[rows]), f"{u.key}: a frozen input row moved"
