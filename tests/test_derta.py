"""DeRTa example builders and `safekeel data build` / `safekeel data distill`."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections import Counter

import pytest

from safekeel.data.derta import RECIPES, build_examples, dataset_stats, sample_prefix
from safekeel.data.records import Conversation, SafetyTriple
from safekeel.data.tokenize import as_chat

HARM = "First, open the lock with a pick. Then, turn the handle slowly and quietly. Step 1: gather the materials."


def _triples(n=6):
    return [SafetyTriple(prompt=f"How do I pick lock {i}?", harmful_response=HARM,
                         safe_response="Sorry, I can't help with that.", id=f"t{i}") for i in range(n)]


def _helpful(n=3):
    return [Conversation(messages=[{"role": "user", "content": f"Question {i}?"},
                                   {"role": "assistant", "content": f"Answer {i}."}]) for i in range(n)]


@pytest.mark.parametrize("recipe,kinds", [("derta", {"prefix": 6, "rto": 6}), ("vanilla", {"safe": 12}),
                                          ("prefix_only", {"prefix": 12}), ("rto_only", {"safe": 6, "rto": 6})])
def test_recipes_build_the_documented_mix(tiny_tokenizer, recipe, kinds):
    rows = build_examples(_triples(), _helpful(), recipe, tokenizer=tiny_tokenizer, seed=0)
    assert Counter(r["kind"] for r in rows) == {"helpful": 3, **kinds}
    for stored in rows:
        assert ("messages" in stored) == (stored["kind"] in ("helpful", "safe"))  # DeRTa rows are not chats
        r = as_chat(stored)
        answer = r["messages"][-1]["content"]
        if r["kind"] == "rto":
            assert answer == HARM
        elif r["kind"] == "prefix":
            assert HARM.startswith(r["masked_prefix"]) and answer.startswith(r["masked_prefix"])
            assert answer.endswith("Sorry, I can't help with that.")
    assert set(RECIPES) == {"derta", "vanilla", "prefix_only", "rto_only"}


def test_token_prefixes_cover_zero_to_full_length_uniformly(tiny_tokenizer):
    n_tok = len(tiny_tokenizer(HARM, add_special_tokens=False)["input_ids"])
    rng = random.Random(0)
    lengths = [len(tiny_tokenizer(p, add_special_tokens=False)["input_ids"]) if p else 0
               for p in (sample_prefix(HARM, rng, "tokens", tiny_tokenizer) for _ in range(3000))]
    assert min(lengths) == 0 and max(lengths) >= n_tok - 1
    assert abs(sum(lengths) / len(lengths) - n_tok / 2) < n_tok * 0.06  # mean of U{0..n}


def test_word_prefixes_and_zero_fraction_follow_the_reference(tiny_tokenizer):
    rng = random.Random(1)
    words = HARM.split(" ")
    prefixes = [sample_prefix(HARM, rng, "words", zero_prefix_fraction=1 / 3) for _ in range(3000)]
    zero = sum(p == "" for p in prefixes) / len(prefixes)
    assert abs(zero - 1 / 3) < 0.03
    counts = [len(p.split(" ")) for p in prefixes if p]
    assert min(counts) == 1 and max(counts) == len(words) - 2


def test_a_third_of_prefix_rows_are_k0_by_default(tiny_tokenizer):
    rows = build_examples(_triples(300), [], "prefix_only", tokenizer=tiny_tokenizer, seed=0)
    zero = sum(r["harmful_prefix"] == "" for r in rows) / len(rows)
    assert len(rows) == 600 and abs(zero - 1 / 3) < 0.05  # the reference's every third, not ~1 in |ĥ| + 1
    assert dataset_stats(rows, tiny_tokenizer)["prefix_zero_fraction"] == pytest.approx(zero, abs=1e-4)
    none = build_examples(_triples(300), [], "prefix_only", tokenizer=tiny_tokenizer, zero_prefix_fraction=0.0)
    assert sum(r["harmful_prefix"] == "" for r in none) / len(none) < 0.15


def test_opener_rows_open_harmful_answers_and_helpful_ones_alike(tiny_tokenizer):
    from safekeel.data.derta import OPENERS

    rows = build_examples(_triples(200), _helpful(400), "derta", tokenizer=tiny_tokenizer, seed=0, opener_fraction=0.25)
    by = {k: [r for r in rows if r["kind"] == k] for k in ("helpful", "prefix", "rto")}
    share = {k: sum(bool(r.get("opener")) for r in v) / len(v) for k, v in by.items()}
    assert all(abs(s - 0.25) < 0.07 for s in share.values()), share
    for r in by["rto"] + by["prefix"]:
        text = r["harmful_response"] if r["kind"] == "rto" else r["harmful_prefix"]
        assert text.startswith(r["opener"]) if r.get("opener") else not text.startswith(OPENERS)
    for r in by["helpful"]:  # benign answers open the same way and go on helpfully
        answer = as_chat(r)["messages"][-1]["content"]
        if r.get("opener"):
            assert answer.startswith(r["opener"]) and answer.endswith(".") and "Sorry" not in answer
    opened = [as_chat(r) for r in by["prefix"] if r.get("opener")]
    assert all(r["messages"][-1]["content"].endswith("Sorry, I can't help with that.") for r in opened)
    assert {r["opener"] for r in rows if r.get("opener")} <= set(OPENERS) and len({r["opener"] for r in
                                                                                   rows if r.get("opener")}) > 4
    s = dataset_stats(rows, tiny_tokenizer)["openers"]
    assert s["helpful"] == sum(bool(r.get("opener")) for r in by["helpful"]) and s["rto"] > 0


def test_first_person_openers_go_on_prefix_and_helpful_rows_never_on_rto_rows(tiny_tokenizer):
    from safekeel.data.derta import FIRST_PERSON

    plain = build_examples(_triples(200), _helpful(400), "derta", tokenizer=tiny_tokenizer, seed=0)
    rows = build_examples(_triples(200), _helpful(400), "derta", tokenizer=tiny_tokenizer, seed=0, opener_fraction=0.25,
                          opener_style="first_person")
    by = {k: [r for r in rows if r["kind"] == k] for k in ("helpful", "prefix", "rto")}
    assert not any(r.get("opener") for r in by["rto"])  # "I will ..." under RTO would train "I" -> " I"
    assert all(abs(sum(bool(r.get("opener")) for r in by[k]) / len(by[k]) - 0.25) < 0.07 for k in ("helpful", "prefix"))
    assert {r["opener"] for r in rows if r.get("opener")} == set(FIRST_PERSON)
    for r in by["prefix"]:  # the same cut as without openers, the commitment before it, the refusal after it
        assert r["harmful_prefix"].startswith(r["opener"]) if r.get("opener") else \
            not r["harmful_prefix"].startswith(FIRST_PERSON)
        assert as_chat(r)["messages"][-1]["content"].endswith("Sorry, I can't help with that.")
    cuts = {r["id"]: r["harmful_prefix"] for r in plain if r["kind"] == "prefix"}
    assert all(r["harmful_prefix"].endswith(cuts[r["id"]]) for r in by["prefix"])
    apart = build_examples(_triples(200), _helpful(400), "derta", tokenizer=tiny_tokenizer, seed=0, opener_fraction=0.25,
                           opener_style="first_person", helpful_opener_fraction=0.0)
    assert not any(r.get("opener") for r in apart if r["kind"] == "helpful")
    assert [r for r in apart if r["kind"] == "prefix"] == by["prefix"]  # the helpful share leaves the safety rows be
    with pytest.raises(ValueError, match="opener style"):
        build_examples(_triples(2), [], "derta", tokenizer=tiny_tokenizer, opener_fraction=0.25, opener_style="polite")


def test_same_inputs_and_seed_give_identical_rows_and_a_new_seed_changes_them(tiny_tokenizer):
    a = build_examples(_triples(), _helpful(), "derta", tokenizer=tiny_tokenizer, seed=3)
    b = build_examples(_triples(), _helpful(), "derta", tokenizer=tiny_tokenizer, seed=3)
    c = build_examples(_triples(), _helpful(), "derta", tokenizer=tiny_tokenizer, seed=4)
    assert json.dumps(a) == json.dumps(b) and json.dumps(a) != json.dumps(c)
    # a triple's prefix does not depend on the other triples
    fewer = build_examples(_triples()[:2], [], "derta", tokenizer=tiny_tokenizer, seed=3)
    pick = {r["id"]: r for r in a}
    assert all(pick[r["id"]] == r for r in fewer)


def test_stats_count_kinds_lengths_and_prefix_histogram(tiny_tokenizer):
    rows = build_examples(_triples(), _helpful(), "prefix_only", tokenizer=tiny_tokenizer, seed=0)
    s = dataset_stats(rows, tiny_tokenizer)
    assert s["n"] == 15 and s["counts"] == {"helpful": 3, "prefix": 12}
    assert sum(s["prefix_tokens_histogram"].values()) == 12
    assert s["tokens"]["prefix"]["min"] <= s["tokens"]["prefix"]["mean"] <= s["tokens"]["prefix"]["max"]


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_cli_build_is_byte_identical_and_writes_stats(tmp_path, tiny_dir, cli_env):
    triples = _write(tmp_path / "t.jsonl", [t.to_dict() for t in _triples()])
    helpful = _write(tmp_path / "h.jsonl", [{"prompt": "Hi?", "response": "Hello."}])
    outs = []
    for name in ("a", "b"):
        r = subprocess.run([sys.executable, "-m", "safekeel", "data", "build", "--triples", str(triples), "--split",
                            "all", "--helpful", str(helpful), "--model", str(tiny_dir), "--recipe", "rto_only",
                            "--seed", "7", "--out", str(tmp_path / name)], env=cli_env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append((tmp_path / name / "train.jsonl").read_bytes())
    assert outs[0] == outs[1]
    assert "rto_only: 24 examples" in r.stdout  # default --helpful-ratio 1: the user's chat + 11 gold-answer QA chats
    stats = json.loads((tmp_path / "b" / "stats.json").read_text())
    assert stats["counts"] == {"helpful": 12, "safe": 6, "rto": 6}
    assert (tmp_path / "b" / "config.yaml").read_text().count("recipe: rto_only") == 1


def test_a_plain_messages_reader_finds_no_harmful_assistant_turn(tmp_path, tiny_dir, cli_env):
    """TRL's SFTTrainer trains every assistant turn of `messages`: a DeRTa file must give it none with ĥ in it."""
    from datasets import load_dataset

    from safekeel.errors import DataError
    from safekeel.train.run import load_rows

    triples = _write(tmp_path / "t.jsonl", [t.to_dict() for t in _triples()])
    r = subprocess.run([sys.executable, "-m", "safekeel", "data", "build", "--triples", str(triples), "--split", "all",
                        "--model", str(tiny_dir), "--recipe", "derta", "--zero-prefix-fraction", "0",
                        "--out", str(tmp_path / "d")], env=cli_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    path = tmp_path / "d" / "train.jsonl"
    plain = load_dataset("json", data_files=str(path), split="train")
    chats = [m for m in plain["messages"] if m]
    assistant = [t["content"] for m in chats for t in m if t["role"] == "assistant"]
    assert assistant and not any("open the lock with a pick" in a for a in assistant)
    assert sum(1 for m in plain["messages"] if not m) == 12  # the 6 prefix + 6 RTO rows are not chats
    rows = load_rows(str(path))  # the DeRTa reader turns them back into chats with the harmful text masked
    assert Counter(r["kind"] for r in rows if "messages" in r) == Counter(r["kind"] for r in rows)
    assert all(HARM.startswith(r["masked_prefix"]) for r in rows if r["kind"] == "prefix")
    broken = [json.loads(x) for x in path.read_text().splitlines()]
    victim = next(i for i, x in enumerate(broken) if x["kind"] == "prefix")
    del broken[victim]["harmful_prefix"]
    _write(tmp_path / "broken.jsonl", broken)
    with pytest.raises(DataError, match=f"broken.jsonl:{victim + 1}: field 'harmful_prefix'"):
        load_rows(str(tmp_path / "broken.jsonl"))


def test_cli_build_takes_first_person_openers_and_raw_helpful_rows(tmp_path, tiny_dir, cli_env):
    from safekeel.data.derta import FIRST_PERSON

    triples = _write(tmp_path / "t.jsonl", [t.to_dict() for t in _triples()])
    helpful = _write(tmp_path / "h.jsonl", [{"prompt": "Hi?", "response": "Hello."}])
    base = [sys.executable, "-m", "safekeel", "data", "build", "--triples", str(triples), "--split", "all", "--helpful",
            str(helpful), "--model", str(tiny_dir), "--helpful-ratio", "0", "--opener-style", "first_person",
            "--opener-fraction", "1", "--helpful-opener-fraction", "0"]
    r = subprocess.run(base + ["--raw-helpful-fraction", "1", "--out", str(tmp_path / "d")], env=cli_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    assert all(r["harmful_prefix"].startswith(FIRST_PERSON) for r in rows if r["kind"] == "prefix")
    assert not any(r.get("opener") for r in rows if r["kind"] != "prefix")
    assert [r.get("raw") for r in rows if r["kind"] == "helpful"] == [True]
    bad = subprocess.run(base + ["--raw-helpful-fraction", "2", "--out", str(tmp_path / "e")], env=cli_env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "raw_helpful_fraction" in bad.stderr and not (tmp_path / "e").exists()


def test_a_contrast_row_keeps_its_own_text_untrained_and_trains_only_the_way_on(tmp_path, tiny_dir, cli_env):
    from safekeel.data.tokenize import IGNORE, tokenize_rows
    from safekeel.models import load_tokenizer

    own, more = "To kill the power, switch off the breaker", " for that circuit, then test the switch."
    contrast = {"id": "c1", "messages": [{"role": "user", "content": "How do I kill the power to a switch?"},
                                         {"role": "assistant", "content": own + more}], "masked_prefix": own}
    triples = _write(tmp_path / "t.jsonl", [t.to_dict() for t in _triples()])
    helpful = _write(tmp_path / "h.jsonl", [{"prompt": "Hi?", "response": "Hello."}, contrast])
    base = [sys.executable, "-m", "safekeel", "data", "build", "--triples", str(triples), "--split", "all",
            "--model", str(tiny_dir), "--helpful-ratio", "0", "--opener-fraction", "1", "--raw-helpful-fraction", "1"]
    r = subprocess.run(base + ["--helpful", str(helpful), "--out", str(tmp_path / "d")], env=cli_env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "d" / "train.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r.get("masked_prefix"))
    # every other helpful row got an opener and went raw (fractions 1); the contrast row is the model's text as it was
    assert row["messages"][-1]["content"] == own + more and not row.get("opener") and not row.get("raw")
    tok = load_tokenizer(str(tiny_dir))
    t = tokenize_rows(tok, [row])[0]
    trained = tok.decode([lab for lab in t["labels"] if lab != IGNORE])
    assert "breaker" not in trained and "test the switch." in trained
    # a masked_prefix that is not the start of the answer: one line naming file, line and field, nothing written
    bad = _write(tmp_path / "bad.jsonl", [{"prompt": "Hi?", "response": "Hello."}, {**contrast, "masked_prefix": "No"}])
    r = subprocess.run(base + ["--helpful", str(bad), "--out", str(tmp_path / "e")], env=cli_env, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "bad.jsonl:2: field 'masked_prefix'" in r.stderr and not (tmp_path / "e").exists()


def test_cli_build_reports_bad_triples_with_file_and_line(tmp_path, tiny_dir, cli_env):
    bad = _write(tmp_path / "bad.jsonl", [_triples()[0].to_dict(), {"prompt": "x", "harmful_response": "y"}])
    r = subprocess.run([sys.executable, "-m", "safekeel", "data", "build", "--triples", str(bad), "--split", "all",
                        "--model", str(tiny_dir), "--out", str(tmp_path / "o")], env=cli_env, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "bad.jsonl:2: field 'safe_response'" in r.stderr


def test_distill_answers_prompts_with_the_model_and_drops_empty_answers(tmp_path, tiny_dir, monkeypatch):
    import safekeel.eval.generate as gen
    from safekeel.data.build_cli import DistillConfig, run_distill
    from safekeel.data.readers import load_conversations

    seen = {}

    def fake_generate(model, tok, requests, max_new_tokens, batch_size, **kw):
        seen["n"], seen["max_new_tokens"] = len(requests), max_new_tokens
        return ["" if i == 0 else f"A helpful answer number {i}." for i in range(len(requests))]

    monkeypatch.setattr(gen, "generate", fake_generate)
    out = run_distill(DistillConfig(model=str(tiny_dir), prompts="benign", split="train", max_new_tokens=6,
                                    out=str(tmp_path / "helpful.jsonl")))
    convs = load_conversations(out)
    from safekeel.data.bundled import benign_prompts
    from safekeel.data.splits import select

    train, held = select(benign_prompts(), "train"), select(benign_prompts(), "val", "test")
    assert seen == {"n": len(train), "max_new_tokens": 6} and len(convs) == len(train) - 1
    held_prompts = {p["prompt"] for p in held}
    assert not held_prompts & {c.messages[0]["content"] for c in convs}  # benign val / test prompts stay unseen
    assert all(c.messages[-1]["content"].startswith("A helpful answer") for c in convs)


def test_word_prefixes_drop_responses_under_three_words_like_the_reference(tiny_tokenizer):
    """The reference's randint(1, n-2) fails for n < 3 words and skips the example: no prefix row, not a k=0 row."""
    short = SafetyTriple(prompt="How?", harmful_response="Just do.", safe_response="Sorry, no.", id="short")
    assert sample_prefix("Just do.", random.Random(0), "words") is None
    assert sample_prefix("Just do.", random.Random(0), "words", zero_prefix_fraction=1.0) is None
    assert sample_prefix("Just do it.", random.Random(0), "words") == "Just"
    rows = build_examples([short, *_triples(2)], [], "derta", prefix_unit="words", seed=0)
    assert Counter((r["source_id"], r["kind"]) for r in rows) == {
        ("short", "rto"): 1, ("t0", "prefix"): 1, ("t0", "rto"): 1, ("t1", "prefix"): 1, ("t1", "rto"): 1}
    rows = build_examples([short], [], "derta", tokenizer=tiny_tokenizer, prefix_unit="tokens", seed=0)
    assert Counter(r["kind"] for r in rows) == {"prefix": 1, "rto": 1}  # token cuts work on any length


def test_build_derives_the_refusal_token_from_the_training_refusals_and_records_it(tmp_path, tiny_dir):
    """Most training refusals start with 'I', so 'I' (not 'Sorry') is the RTO target: RTO rows and safe rows teach
    the same first token. The choice is in stats.json, config.yaml and on every RTO row; --refusal overrides it."""
    import yaml

    from safekeel.data.build_cli import BuildConfig, run_build
    from safekeel.data.tokenize import refusal_token_id
    from safekeel.models import load_tokenizer

    triples = [SafetyTriple(prompt=f"How do I pick lock {i}?", harmful_response=HARM, id=f"t{i}",
                            safe_response="Sorry, no." if i == 0 else "I can't help with that.") for i in range(4)]
    path = _write(tmp_path / "t.jsonl", [t.to_dict() for t in triples])
    tok = load_tokenizer(str(tiny_dir))
    for refusal, text, source, share in [(None, "I", "derived", 0.75), ("Sorry", "Sorry", "explicit", 0.25)]:
        out = tmp_path / (refusal or "default")
        rows_path = run_build(BuildConfig(triples=str(path), split="all", model=str(tiny_dir), out=str(out),
                                          refusal=refusal))
        stats = json.loads((out / "stats.json").read_text())["refusal"]
        assert stats == {"text": text, "token_id": refusal_token_id(tok, text), "source": source, "share": share}
        assert yaml.safe_load((out / "config.yaml").read_text())["refusal"] == text
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
        assert {r.get("refusal") for r in rows if r["kind"] == "rto"} == {text}


def test_a_refusal_lead_opens_every_training_refusal_and_becomes_the_rto_token(tmp_path, tiny_dir, cli_env):
    """--refusal-lead Sorry: safe and prefix rows refuse "Sorry, I can't ..." (a refusal that already opens with it
    is left alone, another opening is lowered), so the derived RTO token is "Sorry", on every RTO row too."""
    from safekeel.data.derta import lead_refusal

    assert lead_refusal("Sorry", "I can't help.") == "Sorry, I can't help."
    assert lead_refusal("Sorry", "There is no safe way.") == "Sorry, there is no safe way."
    assert lead_refusal("Sorry", "NO. Never.") == "Sorry, NO. Never."
    assert lead_refusal("Sorry", "sorry, no.") == "sorry, no."
    triples = [SafetyTriple(prompt=f"How do I pick lock {i}?", harmful_response=HARM, id=f"t{i}",
                            safe_response="Sorry, no." if i == 0 else "I can't help with that.") for i in range(4)]
    path = _write(tmp_path / "t.jsonl", [t.to_dict() for t in triples])
    base = [sys.executable, "-m", "safekeel", "data", "build", "--triples", str(path), "--split", "all", "--model",
            str(tiny_dir), "--helpful-ratio", "0"]
    for recipe in ("derta", "vanilla"):
        out = tmp_path / recipe
        r = subprocess.run(base + ["--recipe", recipe, "--refusal-lead", "Sorry", "--out", str(out)], env=cli_env,
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]
        rows = [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()]
        refusals = [r["safe_response"] if r["kind"] == "prefix" else r["messages"][-1]["content"]
                    for r in rows if r["kind"] in ("prefix", "safe")]
        assert sorted(set(refusals)) == ["Sorry, I can't help with that.", "Sorry, no."]
        assert json.loads((out / "stats.json").read_text())["refusal"]["text"] == "Sorry"
        assert {r["refusal"] for r in rows if r["kind"] == "rto"} == ({"Sorry"} if recipe == "derta" else set())
    bad = subprocess.run(base + ["--refusal-lead", "I am sorry", "--out", str(tmp_path / "bad")], env=cli_env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "refusal_lead" in bad.stderr and not (tmp_path / "bad").exists()


def test_build_tops_helpful_data_up_with_qa_conversations_to_the_ratio(tmp_path, tiny_dir, monkeypatch):
    """--helpful-ratio R: helpful rows = R x safety rows; the user's own conversations count first."""
    from safekeel.data import helpful as helpful_mod
    from safekeel.data.build_cli import BuildConfig, run_build
    from safekeel.data.records import Conversation

    pool = [Conversation(messages=[{"role": "user", "content": f"What is {i} + 1?"},
                                   {"role": "assistant", "content": f"The answer is {i + 1}."}], id=f"hqa-x-{i}")
            for i in range(50)]
    asked = []
    monkeypatch.setattr(helpful_mod, "sample_qa", lambda n, seed=0: asked.append((n, seed)) or pool[:n])
    triples = [SafetyTriple(prompt=f"How do I pick lock {i}?", harmful_response=HARM, id=f"t{i}",
                            safe_response="I can't help with that.") for i in range(4)]
    path = _write(tmp_path / "t.jsonl", [t.to_dict() for t in triples])
    own = _write(tmp_path / "h.jsonl", [{"messages": [{"role": "user", "content": "Hi"},
                                                      {"role": "assistant", "content": "Hello there!"}]}] * 2)
    for ratio, recipe, want in [(0.0, "derta", 2), (1.5, "derta", 12), (3.0, "vanilla", 24)]:
        out = tmp_path / f"{recipe}-{ratio}"
        rows_path = run_build(BuildConfig(triples=str(path), helpful=str(own), split="all", model=str(tiny_dir),
                                          out=str(out), recipe=recipe, helpful_ratio=ratio, seed=7))
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
        kinds = Counter(r["kind"] for r in rows)
        assert kinds["helpful"] == want and sum(v for k, v in kinds.items() if k != "helpful") == 8
    assert asked == [(10, 7), (22, 7)]  # only the QA needed on top of the user's 2 conversations, with the seed

    howto = [Conversation(messages=[{"role": "user", "content": f"How do I fold shirt {i}?"},
                                    {"role": "assistant", "content": "Fold it in thirds."}], id=f"howto-x-{i}")
             for i in range(50)]
    monkeypatch.setattr(helpful_mod, "sample_howto", lambda n, seed=0: asked.append(("howto", n, seed)) or howto[:n])
    rows_path = run_build(BuildConfig(triples=str(path), helpful=str(own), split="all", model=str(tiny_dir),
                                      out=str(tmp_path / "howto"), helpful_ratio=1.5, howto_fraction=0.5, seed=7))
    ids = Counter(json.loads(line)["id"].split("-")[0] for line in rows_path.read_text().splitlines()
                  if json.loads(line)["kind"] == "helpful")
    assert asked[2:] == [("howto", 5, 7), (5, 7)]  # half the top-up of 10 from how-tos, the rest QA
    assert ids["howto"] == 5 and ids["hqa"] == 5


def test_raw_prefix_rows_are_a_seeded_share_of_prefix_rows_only(tiny_tokenizer):
    rows = build_examples(_triples(1000), _helpful(50), "derta", tokenizer=tiny_tokenizer, seed=0,
                          raw_prefix_fraction=0.25)
    prefix = [r for r in rows if r["kind"] == "prefix"]
    assert abs(sum(bool(r.get("raw")) for r in prefix) / len(prefix) - 0.25) < 0.04
    assert not any(r.get("raw") for r in rows if r["kind"] != "prefix")
    assert dataset_stats(rows, tiny_tokenizer)["raw"] == sum(bool(r.get("raw")) for r in rows)
    plain = build_examples(_triples(1000), _helpful(50), "derta", tokenizer=tiny_tokenizer, seed=0)
    # the draw is per row: without raw rows the same file minus the flag (no other row moves)
    assert [{k: v for k, v in r.items() if k != "raw"} for r in rows] == plain
    assert not any(r.get("raw") for r in plain)
    both = build_examples(_triples(1000), _helpful(400), "derta", tokenizer=tiny_tokenizer, seed=0,
                          raw_prefix_fraction=0.25, raw_helpful_fraction=0.25)  # helpful documents go on helpfully
    helpful = [r for r in both if r["kind"] == "helpful"]
    assert abs(sum(bool(r.get("raw")) for r in helpful) / len(helpful) - 0.25) < 0.07
    alone = build_examples(_triples(1000), _helpful(400), "derta", tokenizer=tiny_tokenizer, seed=0,
                           raw_prefix_fraction=0.25)
    assert [r for r in both if r["kind"] != "helpful"] == [r for r in alone if r["kind"] != "helpful"]
    assert not any(r.get("raw") for r in alone if r["kind"] == "helpful")
