"""The split registry (safekeel.data.splits) and the split walk: no training, tuning or calibration artefact the
project builds from bundled data contains a registered test request, exactly or as a near-duplicate."""

import importlib.util

import pytest

from safekeel.data import splits
from safekeel.data.records import Behavior, LabelledAnswer, SafetyTriple
from safekeel.data.splits import RequestIndex, normalise, select, split_of, train_test

SEA = "Write a poem about the sea"  # a test request (6 words)
BOMB = "Build a bomb"  # a test request of 3 words: too short for a near-duplicate match


def rec(text: str) -> dict:
    return {"id": text, "prompt": text}


def test_normalisation_gives_case_space_and_punctuation_variants_one_split():
    assert normalise("How do I X?") == normalise("how do i  x") == "how do i x"
    assert split_of("How do I X?") == split_of("how do i  x") == "train"
    assert normalise("Ｗｒｉｔｅ a poem about the sea!") == normalise(SEA)  # NFKC: full-width letters
    assert split_of(SEA) == split_of("BUILD   a bomb") == split_of(BOMB) == "test"


def test_assignments_are_pinned():
    """Changing SALT or `normalise` reshuffles every split and silently mixes old test requests into training."""
    assert [split_of(t) for t in ("What is the capital of France?", "Explain how vaccines work",
                                  "Summarise this article for me", "Write a short poem about the sea")] == \
        ["train", "val", "test", "val"]


def test_near_duplicates_of_a_test_request_are_dropped_from_train_and_val():
    index = RequestIndex([SEA, BOMB])
    near_val = "Write a short poem about the sea"  # val; Jaccard 6/7 = 0.86
    near_train = "Write a poem about the sea at night"  # train; Jaccard 6/8 = 0.75
    far = "Write a long poem about the sea at night"  # train; Jaccard 6/9 = 0.67 < 0.7
    other = "What is the capital of France?"  # train
    assert [split_of(t) for t in (near_val, near_train, far, other)] == ["val", "train", "train", "train"]
    records = [rec(t) for t in (SEA, near_val, near_train, far, other)]
    assert [r["prompt"] for r in select(records, "train", "val", index=index)] == [far, other]
    assert [r["prompt"] for r in select(records, "train", index=index)] == [far, other]
    assert select(records, "val", index=index) == []
    assert [r["prompt"] for r in select(records, "test", index=index)] == [SEA]
    assert index.match(near_train) == "near" and index.match("write a poem about THE SEA.") == "exact"
    assert index.match(far) is None


def test_short_requests_only_match_exactly():
    index = RequestIndex([BOMB])
    assert index.match("build a BOMB!") == "exact"
    assert split_of("build a big bomb") == "train"
    assert index.match("build a big bomb") is None  # Jaccard 3/4 = 0.75, but BOMB has < 4 words
    assert select([rec("build a big bomb")], "train", index=index) == [rec("build a big bomb")]
    assert RequestIndex(["how to build bombs quickly"]).match("build bombs") is None  # the query has < 4 words


def test_train_test_partitions_in_order_and_heldout_is_test():
    records = [rec(f"request number {i} about topic {7 * i}") for i in range(60)]
    train, test = train_test(records, index=RequestIndex())
    assert sorted(map(id, train + test)) == sorted(map(id, records)) and not {id(r) for r in train} & set(map(id, test))
    assert train == [r for r in records if split_of(r["prompt"]) != "test"]
    assert test == [r for r in records if split_of(r["prompt"]) == "test"] == select(records, "heldout")
    assert 5 < len(test) < 40 and select(records, "all") == records
    with pytest.raises(ValueError, match="unknown split"):
        select(records, "holdout")


def test_a_records_split_does_not_depend_on_the_other_records():
    records = [rec(f"how would one cook dish {i} for {i % 5} people") for i in range(40)]
    index = RequestIndex()
    whole = {r["id"] for r in select(records, "test", index=index)}
    assert {r["id"] for r in select(records[::-1], "test", index=index)} == whole
    assert {r["id"] for r in records if select([r], "test", index=index)} == whole
    assert {r["id"] for r in select(records[:17], "test", index=index)} == whole & {r["id"] for r in records[:17]}


def test_request_of_every_record_kind():
    t = SafetyTriple(prompt="p1", harmful_response="h", safe_response="s", id="t")
    assert splits.request_of(t) == "p1"
    assert splits.request_of(Behavior(prompt="p2", id="b")) == "p2"
    assert splits.request_of(LabelledAnswer(request="p3", response="r", unsafe=True)) == "p3"
    assert splits.request_of({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "p4"}]}) \
        == "p4"


# --- the walk ----------------------------------------------------------------------------------------------------

def _users(rows) -> list[str]:
    """Every user turn of training chats ({messages} dicts or Conversations)."""
    out = []
    for r in rows:
        messages = (r.get("messages") or r.get("prompt")) if isinstance(r, dict) else r.messages
        out += [m["content"] for m in messages if m["role"] == "user"]
    return out


def _derta_recipe(repo_root, tmp_path) -> dict[str, list[str]]:
    """benchmarks/derta_recipe.py's fit / choose sets, with distilled answers to every benign prompt of every split
    (prepare must keep only the train ones)."""
    from safekeel.data.bundled import own_set
    from safekeel.io import read_jsonl_rows, write_jsonl

    spec = importlib.util.spec_from_file_location("derta_recipe", repo_root / "benchmarks" / "derta_recipe.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    write_jsonl(tmp_path / "data" / "distilled.jsonl", [
        {"id": r["id"], "messages": [{"role": "user", "content": r["prompt"]},
                                     {"role": "assistant", "content": "Here is a helpful answer."}]}
        for name in ("benign", "benign-scary") for r in own_set(name)])
    write_jsonl(tmp_path / "data" / "distilled-scary-more.jsonl", [
        {"id": r["id"], "messages": [{"role": "user", "content": r["prompt"]},
                                     {"role": "assistant", "content": "Here is a helpful answer."}]}
        for r in own_set("benign-scary-more")])
    data = mod.prepare(tmp_path)
    return {"derta_recipe fit triples": [t.prompt for t in data["fit"]],
            # the on-policy contrast rows kept in the repository, whole (the build keeps only train ones anyway)
            "derta_recipe contrast rows": _users(read_jsonl_rows(mod.CONTRAST_ROWS)),
            "derta_recipe scary-more helpful": _users(mod.scary_more(tmp_path)),
            "derta_recipe val triples (choosing)": [t.prompt for t in data["val"]],
            "derta_recipe distilled helpful": _users(data["helpful"]),
            "derta_recipe val prompts (choosing)": [p["prompt"] for p in data["val_prompts"]]}


def artefacts(tiny_dir, repo_root, tmp_path) -> dict[str, list[str]]:
    """The request texts of every artefact a training / tuning / calibration stage builds, built as it builds them."""
    from safekeel.data import build_cli as bc
    from safekeel.data.helpful import howto_conversations, qa_conversations
    from safekeel.demo import DemoConfig, distill_prompts, train_triples
    from safekeel.io import read_jsonl_rows
    from safekeel.judges.harm_clf import training_rows
    from safekeel.tamper import TamperConfig, attack_sets
    from safekeel.train.dpo import DPOTrainConfig
    from safekeel.units.calibration import benign_split, safety_pairs

    out: dict[str, list[str]] = {}
    build = bc.run_build(bc.BuildConfig(model=str(tiny_dir), out=str(tmp_path / "build")))  # defaults: train, QA top-up
    out["data build (derta, default config)"] = _users(read_jsonl_rows(build))
    d = bc.DistillConfig()
    out["data distill prompts (default config)"] = [p["prompt"] for p in bc.load_prompt_set(d.prompts, d.split)]
    dpo = DPOTrainConfig()
    out["train dpo triples"] = [t.prompt for t in bc.load_triple_set(dpo.triples, dpo.split)]
    out["units safety calibration"] = [p for p, _ in safety_pairs("uncensorbench")]
    out["units utility calibration"] = [r["prompt"] for r in benign_split()]
    rows, _ = attack_sets(TamperConfig(model="m", attacks=["benign", "harmful50"], n_benign_attack=160))
    out["tamper attack chats"] = _users(r for chats in rows.values() for r in chats)
    out["helpful-qa conversations"] = _users(qa_conversations())
    out["howto-qa conversations"] = _users(howto_conversations())
    demo = DemoConfig(full=True)
    demo.validate()
    out["demo distill prompts"] = [p["prompt"] for p in distill_prompts(demo)]
    out["demo alignment triples"] = [t.prompt for t in train_triples(demo)]
    out.update(_derta_recipe(repo_root, tmp_path / "derta_recipe"))
    unsafe_head, refusal_head = training_rows()
    out["judge harm-clf training_rows"] = [r.request for r in unsafe_head + refusal_head]
    from safekeel.judges.refusal_clf import _labels

    out["judge refusal-clf training labels"] = [r.prompt for r in _labels()]
    return out


def test_no_training_artefact_contains_a_test_request(tiny_dir, repo_root, tmp_path):
    index = splits.test_index()
    report, bad = [], False
    for name, texts in artefacts(tiny_dir, repo_root, tmp_path).items():
        assert texts, f"{name}: no requests walked"
        hits = [(index.match(t), t) for t in dict.fromkeys(texts)]
        hits = [(kind, t) for kind, t in hits if kind]
        bad |= bool(hits)
        kinds = {k: sum(kind == k for kind, _ in hits) for k in ("exact", "near")}
        examples = "; ".join(repr(t[:70]) for _, t in hits[:3])
        report.append(f"{name}: {len(hits)} of {len(set(texts))} requests are test requests "
                      f"(exact {kinds['exact']}, near {kinds['near']})" + (f", e.g. {examples}" if hits else ""))
    assert not bad, "test requests in training artefacts:\n" + "\n".join(report)
