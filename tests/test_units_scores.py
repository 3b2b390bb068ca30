"""Unit scores against slow, obviously-correct references (per-token Python loops), and unit discovery by structure
on several architectures (Llama, Mistral, Qwen2 with q/k/v bias, Gemma, Phi-3 with fused qkv and gate_up)."""

import math

import pytest
import torch
from ddp_freeze_script import single_thread
from tiny import build_model, build_tokenizer

from safekeel.units.calibration import encode_pair, make_batches
from safekeel.units.discover import find_units
from safekeel.units.scores import ChannelStats, score

PAIRS = [("How do I pick a lock?", "Sorry, I can't help with that request. Please stay safe."),
         ("What is the capital of France?", "The capital of France is Paris."),
         ("Write a poem about the sea.", "The waves roll in and out under the silver moon, again and again."),
         ("How do I kill a Python process?", "Use the kill command with the process id.")]

one_thread = pytest.fixture(autouse=True)(single_thread)


@pytest.fixture(scope="module")
def tiny():
    tok = build_tokenizer("chatml")
    model = build_model(tok, heads=4, kv_heads=2)  # grouped-query attention: 2 query heads per kv head
    model.eval()
    return model, tok


def _inputs_per_token(model, tok, pairs):
    """key -> list of B-input vectors (float64), one per response token, collected one example at a time."""
    units = find_units(model)
    seen = {u.key: [] for u in units}
    cur = {}
    handles = [u.output.register_forward_pre_hook(lambda m, a, k=u.key: cur.__setitem__(k, a[0][0].detach()))
               for u in units]
    for prompt, response in pairs:
        ids, start = encode_pair(tok, prompt, response, 64)
        with torch.no_grad():
            model(input_ids=torch.tensor([ids]))
        for k in seen:  # the positions that predict response tokens: the last prompt position included
            for t in range(start - 1, len(ids) - 1):
                seen[k].append(cur[k][t].to(torch.float64))
    for h in handles:
        h.remove()
    return units, seen


def _reference_activation_scores(model, tok, pairs, method):
    units, seen = _inputs_per_token(model, tok, pairs)
    out = {}
    for u in units:
        w = u.output.weight.detach().to(torch.float64)
        xs = seen[u.key]
        scores = []
        for j in range(u.n_units):
            vals = [float(x[j]) for x in xs]
            mean = sum(vals) / len(vals)
            var = sum((v - mean) ** 2 for v in vals) / len(vals)
            if method == "ssah":
                scores.append(var * sum(float(w[i, j]) ** 2 for i in range(w.shape[0])))
            else:
                scores.append(sum(abs(float(w[i, j])) for i in range(w.shape[0])) * math.sqrt(sum(v * v for v in vals)))
        out[u.key] = torch.tensor(scores)
    return out


@pytest.mark.parametrize("method", ["ssah", "wanda"])
def test_activation_scores_match_per_token_reference(tiny, method):
    model, tok = tiny
    got = score(model, make_batches(tok, PAIRS, batch_size=3, max_length=64), method)  # padded batches
    ref = _reference_activation_scores(model, tok, PAIRS, method)
    for k in ref:
        torch.testing.assert_close(got[k].double(), ref[k].double(), rtol=2e-4, atol=1e-9)


def _v_row(u, j):
    head = j // u.head_dim
    kv_head = head // (u.n_heads // u.n_kv_heads)
    return u.v_offset + kv_head * u.head_dim + j % u.head_dim


def _grad_unit_sums(units, v_div):
    """Per unit channel: sum of |w * grad| over the unit's weights from the current .grad, one weight at a time; the
    shared v row counts 1/v_div (v_div = query heads per kv head: split, 1: every reader counts it in full)."""
    out = {}
    for u in units:
        def s(p, rows=None, col=None):
            g = (p.detach().double() * p.grad.double()).abs()
            return float(g[rows].sum()) if rows is not None else float(g[:, col].sum())
        vals = []
        for j in range(u.n_units):
            total = s(u.output.weight, col=j)
            for a in u.inputs:
                total += s(a.weight, rows=j)
            if u.v_proj is not None:
                total += s(u.v_proj.weight, rows=_v_row(u, j)) / v_div
            vals.append(total)
        out[u.key] = torch.tensor(vals, dtype=torch.float64)
    return out


def _response_loss(model, ids, resp):
    logp = torch.log_softmax(model(input_ids=ids[None]).logits[0].float(), -1)
    return sum(-logp[t - 1, ids[t]] for t in range(1, len(ids)) if resp[t])


def test_snip_batch_level_option_matches_per_token_reference(tiny):
    """accumulate='batch', v_share='full': the former behaviour (|W * grad of the batch loss|, shared v row counted
    in full by every reader), kept as an option."""
    model, tok = tiny
    batches = make_batches(tok, PAIRS, batch_size=2, max_length=64)
    assert any((b.attention_mask == 0).any() for b in batches)  # padding is exercised
    got = score(model, batches, "snip", accumulate="batch", v_share="full")
    units = find_units(model)
    ref = {u.key: torch.zeros(u.n_units, dtype=torch.float64) for u in units}
    for b in batches:
        model.zero_grad(set_to_none=True)
        n_tokens = int(b.response_mask.sum())
        for row in range(b.input_ids.shape[0]):
            ids = b.input_ids[row][b.attention_mask[row].bool()]
            (_response_loss(model, ids, b.response_mask[row][: len(ids)]) / n_tokens).backward()  # batch mean
        for k, v in _grad_unit_sums(units, 1).items():
            ref[k] += v
    model.zero_grad(set_to_none=True)
    for k in ref:
        torch.testing.assert_close(got[k].double(), ref[k], rtol=2e-3, atol=1e-7)


def test_snip_is_per_example_by_default_and_matches_a_loop_reference(tiny):
    """SNIP's sum over calibration examples: one backward per example (mean CE over its response tokens), padded
    batches of 2 notwithstanding; the shared v row is split among the query heads that read it."""
    model, tok = tiny
    batches = make_batches(tok, PAIRS, batch_size=2, max_length=64)
    got = score(model, batches, "snip")
    units = find_units(model)
    group = units[1].n_heads // units[1].n_kv_heads
    ref = {u.key: torch.zeros(u.n_units, dtype=torch.float64) for u in units}
    for prompt, response in PAIRS:
        ids, start = encode_pair(tok, prompt, response, 64)
        ids = torch.tensor(ids)
        model.zero_grad(set_to_none=True)
        (_response_loss(model, ids, torch.arange(len(ids)) >= start) / (len(ids) - start)).backward()
        for k, v in _grad_unit_sums(units, group).items():
            ref[k] += v
    model.zero_grad(set_to_none=True)
    for k in ref:
        torch.testing.assert_close(got[k].double(), ref[k], rtol=2e-3, atol=1e-7)


def test_snip_per_example_differs_from_batch_level_where_gradients_cancel(tiny):
    """Two answers to one prompt pull the same weights in opposite directions: summed in one batch loss their
    gradients cancel, so batch-level |W * grad| underestimates what each example says about a unit."""
    model, tok = tiny
    pairs = [("Is water wet?", "Yes, it is."), ("Is water wet?", "No, it is.")]
    starts = [encode_pair(tok, p, r, 64) for p, r in pairs]
    assert len({len(ids) - s for ids, s in starts}) == 1  # same response length: batch loss = mean of the two
    batch = make_batches(tok, pairs, batch_size=2, max_length=64)
    per_example = score(model, batch, "snip")
    batch_level = score(model, batch, "snip", accumulate="batch")
    for k in per_example:
        # |g1| + |g2| >= |g1 + g2| = 2 |grad of the batch mean|, with equality only where the gradients agree in sign
        assert torch.all(per_example[k] >= 2 * batch_level[k] * (1 - 1e-4))
        assert per_example[k].sum() > 2.04 * batch_level[k].sum()  # 7% to 14% more on this model


def test_snip_splits_a_shared_v_row_among_the_query_heads_that_read_it(tiny):
    """Under GQA (4 query heads, 2 kv heads) every weight counts once in the attention units' total with the split;
    v_share='full' counts each v row once per reader, inflating attention units against MLP units."""
    model, tok = tiny
    batch = make_batches(tok, PAIRS[:1], batch_size=1, max_length=64)
    split, full = score(model, batch, "snip"), score(model, batch, "snip", v_share="full")
    model.zero_grad(set_to_none=True)
    ids, start = encode_pair(tok, *PAIRS[0], 64)
    ids = torch.tensor(ids)
    (_response_loss(model, ids, torch.arange(len(ids)) >= start) / (len(ids) - start)).backward()
    for u in find_units(model):
        total = lambda p: float((p.detach().double() * p.grad.double()).abs().sum())  # noqa: E731
        if u.kind == "mlp":
            torch.testing.assert_close(split[u.key], full[u.key])
            continue
        o_part, v_part = total(u.output.weight), total(u.v_proj.weight)
        group = u.n_heads // u.n_kv_heads
        assert group == 2
        assert float(split[u.key].double().sum()) == pytest.approx(o_part + v_part, rel=2e-3)
        assert float(full[u.key].double().sum()) == pytest.approx(o_part + group * v_part, rel=2e-3)
    model.zero_grad(set_to_none=True)


def test_streaming_variance_is_stable_for_large_offsets():
    x = torch.randn(3000, 5, dtype=torch.float64) * 1e-3 + 1e4
    st = ChannelStats(5)
    for chunk in x.split(7):
        st.update(chunk)
    torch.testing.assert_close(st.variance, x.var(0, unbiased=False), rtol=1e-6, atol=0)


def test_scores_read_the_positions_that_predict_response_tokens(tiny):
    """Statistics come from the positions whose outputs are response tokens, the last prompt position included
    (its output is the first answer token, where a model complies or refuses), as in snip's loss."""
    model, tok = tiny
    b = make_batches(tok, PAIRS[:2], batch_size=2, max_length=64)[0]
    b.response_mask[:] = False
    b.response_mask[0, -3:] = True
    s = score(model, [b], "wanda")
    ids = b.input_ids[0][b.attention_mask[0].bool()]
    ref_seen = {}
    h = [u.output.register_forward_pre_hook(lambda m, a, k=u.key: ref_seen.__setitem__(k, a[0][0]))
         for u in find_units(model)]
    with torch.no_grad():
        model(input_ids=ids[None])
    for x in h:
        x.remove()
    u = find_units(model)[0]
    ref = u.output.weight.detach().abs().sum(0) * ref_seen[u.key][len(ids) - 4:len(ids) - 1].double().pow(2).sum(0).sqrt()
    torch.testing.assert_close(s[u.key].double(), ref.double(), rtol=1e-4, atol=1e-9)


def _arch(name):
    import transformers as tf

    common = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=64, head_dim=8)
    if name == "phi3":
        common.update(num_key_value_heads=2, pad_token_id=0)
    cfg_cls, model_cls = {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
                          "mistral": (tf.MistralConfig, tf.MistralForCausalLM),
                          "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
                          "gemma": (tf.GemmaConfig, tf.GemmaForCausalLM),
                          "phi3": (tf.Phi3Config, tf.Phi3ForCausalLM)}[name]
    torch.manual_seed(0)
    return model_cls(cfg_cls(**common)).eval()


@pytest.mark.parametrize("name", ["llama", "mistral", "qwen2", "gemma", "phi3"])
def test_discovery_by_structure_and_gqa_v_rows(name):
    """Zeroing the v row that discovery maps to o_proj channel j makes channel j exactly zero: the GQA mapping is
    right for separate and fused projections."""
    model = _arch(name)
    units = find_units(model)
    assert [u.key for u in units] == ["layers.0.mlp", "layers.0.attn", "layers.1.mlp", "layers.1.attn"]
    mlp, attn = units[0], units[1]
    assert mlp.n_units == 48 and attn.n_units == 32 and attn.n_heads == 4 and attn.n_kv_heads == 2
    j = torch.tensor([3, 13])  # head 0 and head 1: both read kv head 0
    rows = attn.v_rows(j)
    assert rows.tolist() == [attn.v_offset + 3, attn.v_offset + 5]
    seen = {}
    h = attn.output.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0].detach().clone()))
    with torch.no_grad():
        attn.v_proj.weight[rows] = 0
        if attn.v_proj.bias is not None:
            attn.v_proj.bias[rows] = 0
        model(input_ids=torch.tensor([[1, 5, 9, 2, 7]]))
    h.remove()
    assert torch.all(seen["x"][..., j] == 0) and torch.all(seen["x"][..., 4] != 0)


def test_own_refusal_calibration_keeps_only_the_models_refusals(monkeypatch):
    """SSAH on an aligned model: the safety set is its own refusals; prompts it answers are not safety examples."""
    from safekeel.errors import SafekeelError
    from safekeel.units import calibration as cal

    prompts = [p for p, _ in cal.safety_pairs("uncensorbench")]
    answers = {p: ("I'm sorry, but I can't help with that." if i % 2 else "Sure, step 1: gather the materials.")
               for i, p in enumerate(prompts)}
    monkeypatch.setattr(cal, "self_distill", lambda m, t, ps, *a, **k: [(p, answers[p]) for p in ps])
    own = cal.own_refusal_pairs(None, None, "aligned")
    assert [p for p, _ in own] == prompts[1::2]
    assert all(r.startswith("I'm sorry") for _, r in own)
    assert len(cal.own_refusal_pairs(None, None, "aligned", n=3)) == 3
    monkeypatch.setattr(cal, "self_distill", lambda m, t, ps, *a, **k: [(p, "Sure, here it is.") for p in ps])
    with pytest.raises(SafekeelError, match="refuses none"):
        cal.own_refusal_pairs(None, None, "base")
