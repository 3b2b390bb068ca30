"""A model's own compliant answers as harmful prefixes: cached per weights, kept only where the judge says unsafe."""

import torch

from safekeel.attacks.own_prefix import own_answers, with_own_targets
from safekeel.data.records import Behavior


class FlagWordJudge:
    def judge(self, items):
        return [{"unsafe": "x" in it["response"]} for it in items]


def test_answers_are_cached_per_weights_and_filtered_by_the_judge(tmp_path, tiny_model, tiny_tokenizer, monkeypatch):
    bs = [Behavior(prompt=f"how to do bad thing {i}", id=f"b{i}", source="harmbench") for i in range(3)]
    calls = []
    import safekeel.eval.generate as gen

    real = gen.generate
    monkeypatch.setattr(gen, "generate", lambda *a, **k: calls.append(len(a[2])) or real(*a, **k))
    first = own_answers(tiny_model, tiny_tokenizer, bs, tmp_path, max_new_tokens=3)
    again = own_answers(tiny_model, tiny_tokenizer, bs, tmp_path, max_new_tokens=3)
    assert first == again and calls == [3]  # generated once
    with torch.no_grad():
        next(tiny_model.parameters()).add_(1.0)  # other weights: other cache file, generated anew
    own_answers(tiny_model, tiny_tokenizer, bs, tmp_path, max_new_tokens=3)
    assert calls == [3, 3] and len(list(tmp_path.glob("own-answers-*.jsonl"))) == 2
    kept, counts = with_own_targets(bs, {"b0": "x marks it", "b1": "no", "b2": "x again"}, FlagWordJudge())
    assert [b.id for b in kept] == ["b0", "b2"] and kept[0].target == "x marks it"
    assert counts == {"asked": 3, "kept": 2, "by_source": {"harmbench": {"asked": 3, "kept": 2}}}


def test_sampled_answers_have_their_own_cache_and_repeat_per_seed(tmp_path, tiny_model, tiny_tokenizer):
    bs = [Behavior(prompt=f"how to do bad thing {i}", id=f"b{i}", source="advbench") for i in range(4)]
    greedy = own_answers(tiny_model, tiny_tokenizer, bs, tmp_path, max_new_tokens=6)
    s1 = own_answers(tiny_model, tiny_tokenizer, bs, tmp_path, max_new_tokens=6, sample_seed=1, temperature=1.5)
    s2 = own_answers(tiny_model, tiny_tokenizer, bs, tmp_path, max_new_tokens=6, sample_seed=2, temperature=1.5)
    assert len(list(tmp_path.glob("own-answers-*.jsonl"))) == 3  # greedy, seed 1, seed 2: three cache files
    assert s1 != greedy and s1 != s2  # a random tiny model at T = 1.5 samples other text
    (tmp_path / "again").mkdir()
    assert own_answers(tiny_model, tiny_tokenizer, bs, tmp_path / "again", max_new_tokens=6, sample_seed=1,
                       temperature=1.5) == s1  # the same seed samples the same answers, cache or not
