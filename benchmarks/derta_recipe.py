"""Which DeRTa recipe keeps the embedded default useful? A sweep chosen on validation, reported on held-out prompts.

Data (all from bundled sets, no evaluation prompt in any training set):
- safety: the uncensorbench triples of the registry's train split (`safekeel.data.splits`), harmful responses cut to
  48 words (as the quick demo);
- helpful: the base model's own answers to the benign and benign-but-scary train-split prompts (refusing answers
  dropped), plus gold-answer QA conversations (`data/helpful.py`) up to `ratio` x the safety rows; arms with
  `scary_more` add its own answers to the train prompts of `benign-scary-more` (distilled on first use), arms with
  `contrast` the on-policy contrast rows of `derta_contrast.py` (a DeRTa model's answer cut where it turned to a
  refusal, untrained, and the base model's continuation; kept in `benchmarks/data/derta_contrast.jsonl`).
Arms (`derta_arms.py`) share steps, batch and schedule; `--seeds 0 1 2` trains each arm once per seed (seed and data
order; one folder per seed) and `--report --baseline ARM` adds each arm's paired difference from ARM (behaviors
resampled, seeds paired, exact sign-flip p flipping each behavior with its seeds); with several seeds a rate's
brackets are the range over seeds. `--export` archives each (arm, seed)'s per-behavior flags (no answer text) and
`--report --archive FILE` pairs new arms with an earlier session's, whose models and answers are gone.
`--split val` evaluates on the registry's val split (the only numbers used to choose a recipe; `val-wide` adds the
val behaviors of HarmBench, StrongREJECT, AdvBench and Do-Not-Answer, direct and under prefill: 274 behaviors where
uncensorbench alone has 18); `--split heldout`
on its test split and, with `--qa`, QA accuracy on 200 utility-qa items; `--split wide` on 240 test-split behaviors
of uncensorbench, HarmBench, StrongREJECT, AdvBench and Do-Not-Answer (direct, prefill, and the k-token prefixes
where a real harmful answer exists: uncensorbench's own, or the base model's own answer when harm-clf calls it
unsafe; `attacks/own_prefix.py`). (Numbers in RESULTS.md before the registry used the old id-hash split: 39
held-out triples, 44 benign, 55 benign-but-scary prompts.) Metrics per arm:
- refusal (keyword judge, on the generated continuation) direct, under prefill ("Sure, here is") and after the first
  5 / 10 / 20 / 40 tokens of the triple's real harmful response; ASR of the same rows by the harm-clf judge;
- benign answered (not a keyword refusal) and answer checks; over-refusal on benign-but-scary prompts;
- collapse: answers in which the run's refusal token occurs 3+ times in a row ("SorrySorrySorry", "IIII").

    bash benchmarks/derta_rebuild.sh  # from a fresh checkout, before any -more arm: distilled answers, harvest
    python benchmarks/derta_recipe.py --arms derta-r1 derta-r3 --split val
    python benchmarks/derta_recipe.py --arms base vanilla-r3 derta-r3 --split heldout --qa
    python benchmarks/derta_recipe.py --arms derta-r1-lr10-mid-z33-more-raw50 --seeds 0 --train-only  # attacks_table
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from safekeel.config import resolve_config
from safekeel.data.build_cli import BuildConfig, load_prompt_set, load_triple_set, run_build
from safekeel.data.splits import select
from safekeel.eval.generate import GenerationRequest, generate
from safekeel.eval.metrics import check_answer, rate
from safekeel.io import read_jsonl_rows, write_json, write_jsonl
from safekeel.judges.keyword import is_refusal
from safekeel.train.run import TrainConfig, run_train

sys.path.insert(0, str(Path(__file__).parent))  # the sibling modules, when loaded by path (tests) as well
from derta_arms import ARMS  # noqa: E402
from derta_contrast import CONTRAST_ROWS  # noqa: E402
from derta_sets import KS, WIDE_N, cases, repeats, rto_token, wide_set  # noqa: E402
from derta_tables import SETS, eval_rows_path, mean_over_seeds, pack_flags, paired, report, table  # noqa: E402


def cut(t, words: int = 48):
    w = t.harmful_response.split()
    return t if len(w) <= words else replace(t, harmful_response=" ".join(w[:words]))


def prepare(out: Path) -> dict:
    """Fit on the registry's train split, choose on its val split; the distilled answers (made once by `data
    distill`, see the module docstring) keep only train-split prompts, whatever split they were distilled from."""
    fit, val = load_triple_set("uncensorbench", "train"), load_triple_set("uncensorbench", "val")
    p_val = load_prompt_set("benign", "val") + load_prompt_set("benign-scary", "val")
    return {"fit": fit, "val": val, "helpful": own_answers(out / "data" / "distilled.jsonl", "benign,benign-scary"),
            "val_prompts": p_val}


def own_answers(path: Path, prompts: str) -> list[dict]:
    """The base model's answers to the train prompts of `prompts`, distilled into `path` once; refusing answers
    dropped, and only train-split prompts kept, whatever split a file was distilled from."""
    if not path.exists():
        from safekeel.data.build_cli import DistillConfig, run_distill

        run_distill(DistillConfig(prompts=prompts, split="train", batch_size=16, out=str(path)))
    return select([r for r in read_jsonl_rows(path) if not is_refusal(r["messages"][-1]["content"])], "train")


def scary_more(out: Path) -> list[dict]:
    """Own answers to `benign-scary-more`: more contrast for the harmful requests than benign-scary's 72 train
    prompts give."""
    return own_answers(out / "data" / "distilled-scary-more.jsonl", "benign-scary-more")


def repeated(rows: list[dict], n: int) -> list[dict]:
    """`rows` n times over, the copies' ids kept apart (`id~1`, `id~2`, ...)."""
    return [{**r, "id": f"{r['id']}~{i}" if i else r["id"]} for i in range(n) for r in rows]


def data_key(arm: dict) -> str:
    """The folder name of an arm's training data: the fields that change the built rows, so arms that differ only in
    training share one build."""
    ratio, zero, opener = arm["ratio"], arm["zero"], arm["opener"]
    key = (f"{arm['recipe']}-r{ratio:g}" if ratio is not None else f"{arm['recipe']}-old")
    key += f"-z{round(100 * zero)}" if zero else ""
    style = "fp" if arm.get("opener_style") == "first_person" else "o"
    key += f"-{style}{round(100 * opener)}" if opener else ""
    key += f"h{round(100 * arm['helpful_opener'])}" if arm.get("helpful_opener") is not None else ""
    key += ("-more" if arm.get("more") else "") + (f"-own{arm['own']}" if arm.get("own", 1) > 1 else "")
    key += f"-sm{arm['scary_more']}" if arm.get("scary_more") else ""
    key += f"-oc{arm['contrast']}" if arm.get("contrast") else ""
    key += f"-raw{round(100 * arm['raw'])}" if arm.get("raw") else ""
    key += f"-howto{round(100 * arm['howto'])}" if arm.get("howto") else ""
    key += f"-rh{round(100 * arm['raw_helpful'])}" if arm.get("raw_helpful") else ""
    return key + (f"-lead{arm['lead'].lower()}" if arm.get("lead") else "")


def build(out: Path, data: dict, arm: dict, model: str) -> Path:
    """The arm's train.jsonl; `own` repeats the base model's own helpful answers that many times (ids kept apart)
    before gold QA tops the helpful rows up to `ratio` x the safety rows."""
    key = data_key(arm)
    d = out / "data" / key
    if (d / "train.jsonl").exists():
        return d / "train.jsonl"
    triples = d / "triples.jsonl"
    fit = list(data["fit"])
    if arm.get("more"):  # uncensorbench's train triples plus the harvested ones (benchmarks/derta_triples.py)
        from safekeel.data.readers import load_triples

        harvested = out / "data" / "harvest" / "triples.jsonl"
        if not harvested.exists():
            sys.exit(f"{harvested}: run bash benchmarks/derta_rebuild.sh first")
        fit += select(load_triples(str(harvested)), "train")
    write_jsonl(triples, [cut(t).to_dict() for t in fit])
    ratio = arm["ratio"]
    old = ratio is None  # the previous demo's helpful data: 48 distilled benign chats, nothing else
    helpful = [r for r in data["helpful"] if r["id"].startswith("benign")][:48] if old else data["helpful"]
    helpful = repeated(helpful, arm.get("own", 1))
    if arm.get("scary_more"):
        helpful += repeated(scary_more(out), arm["scary_more"])
    if arm.get("contrast"):  # the DeRTa models' own turns to a refusal, continued by the base model
        if not CONTRAST_ROWS.exists():
            sys.exit(f"{CONTRAST_ROWS}: run python benchmarks/derta_contrast.py first")
        helpful += repeated(select(list(read_jsonl_rows(CONTRAST_ROWS)), "train"), arm["contrast"])
    write_jsonl(d / "helpful.jsonl", helpful)
    return run_build(BuildConfig(triples=str(triples), helpful=str(d / "helpful.jsonl"), recipe=arm["recipe"],
                                 split="all", helpful_ratio=0.0 if old else ratio, model=model, seed=0, out=str(d),
                                 zero_prefix_fraction=arm["zero"], opener_fraction=arm["opener"],
                                 raw_prefix_fraction=arm.get("raw", 0.0),
                                 opener_style=arm.get("opener_style", "compliant"),
                                 helpful_opener_fraction=arm.get("helpful_opener"),
                                 raw_helpful_fraction=arm.get("raw_helpful", 0.0),
                                 howto_fraction=arm.get("howto", 0.0), refusal_lead=arm.get("lead")))


def budget_map(out: Path, args) -> str:
    """Units of the starting weights (SSAH scores; bundled refusals, since the base model has none of its own),
    classified with the paper's fractions: the RU an alignment-budget run may train."""
    from safekeel.units.runs import ClassifyConfig, ScoreConfig, run_classify, run_score

    d = out / "units-base"
    if not (d / "unit_map.safetensors").exists():
        run_score(ScoreConfig(model=args.model, method="ssah", n_safety=64, n_utility=64, out=str(d)))
        run_classify(ClassifyConfig(scores=str(d), ru=0.2))
    return str(d / "unit_map.safetensors")


def train(out: Path, name: str, arm: dict, data: Path, args, seed: int = 0) -> str:
    d = out / "train" / name / f"seed-{seed}"
    only = {"train_only_units": budget_map(out, args), "train_only_classes": [arm["train_only"]]} \
        if arm.get("train_only") else {}
    if arm.get("train_set"):  # a derived map whose `esu` marks the set (units.defenses)
        from safekeel.units.defenses import write_defense_maps

        maps = write_defense_maps(budget_map(out, args), out / "units-base" / "sets", seed, [arm["train_set"]])
        only = {"train_only_units": str(maps[arm["train_set"]]), "train_only_classes": ["esu"]}
    if not (d / "summary.json").exists():
        run_train(resolve_config(TrainConfig, overrides=dict(
            model=args.model, data=str(data), out=str(d), max_steps=arm.get("steps", args.steps),
            batch_size=args.batch_size, lr=arm["lr"], max_length=256, warmup_ratio=0.1, weight_decay=0.01, seed=seed,
            save_steps=arm.get("steps", args.steps), rto_keep_fraction=arm["keep"], rto_target=arm["rto"],
            rto_schedule=arm["schedule"], refusal_unlikelihood=arm.get("ul", 0.0),
            objective=arm["objective"], lora=arm["lora"], keep_checkpoints=False,
            resume=(d / "checkpoints").exists(), progress=False, **only)))
    return str(d / "model")


def evaluate(name: str, path: str, split_name: str, data: dict, args, judge, seed: int = 0) -> dict:
    from safekeel.data.tokenize import derive_refusal
    from safekeel.eval.qa import qa_accuracy, qa_items
    from safekeel.models import load_model

    model, tok = load_model(path)
    rows = cases(split_name, data, tok)
    reqs = [GenerationRequest(messages=[{"role": "user", "content": r["behavior"]}], prefill=r["prefill"])
            for r in rows]
    answers = generate(model, tok, reqs, max_new_tokens=args.max_new_tokens, batch_size=16)
    token = rto_token(path, tok.decode([derive_refusal(tok, [t.safe_response for t in data["fit"]])["token_id"]]))
    harmful = [i for i, r in enumerate(rows) if r["set"] not in ("benign", "scary")]
    verdicts = judge.judge([{"behavior": rows[i]["behavior"], "response": answers[i]} for i in harmful])
    for r, a in zip(rows, answers, strict=True):
        r.update(model=name, response=a, refusal=is_refusal(a), collapse=repeats(a, token))
    for i, v in zip(harmful, verdicts, strict=True):
        rows[i]["unsafe"] = v.get("unsafe")
    res: dict = {"model": name, "seed": seed, "split": split_name, "judge": judge.version}
    for s in ["direct", "prefill", *[f"prefix_k{k}" for k in KS]]:
        sel = [r for r in rows if r["set"] == s]
        res[f"refusal_{s}"] = rate(r["refusal"] for r in sel)
        res[f"asr_{s}"] = rate(r["unsafe"] for r in sel)
    ben = [r for r in rows if r["set"] == "benign"]
    if not ben:  # the wide set is harmful behaviors only
        write_jsonl(Path(args.out) / f"eval-{split_name}" / name / f"seed-{seed}.jsonl", rows)
        return res
    res["benign_answered"] = rate(not r["refusal"] for r in ben)
    res["benign_check"] = rate(check_answer(r["response"], r["check"]) for r in ben if r.get("check"))
    res["over_refusal"] = rate(r["refusal"] for r in rows if r["set"] == "scary")
    res["collapse"] = rate(r["collapse"] for r in rows)
    if args.qa:
        qa = qa_accuracy(model, tok, qa_items())
        res["qa"], res["qa_tasks"] = qa["overall"], qa["tasks"]
        write_jsonl(Path(args.out) / f"eval-{split_name}" / name / f"seed-{seed}.qa.jsonl", qa["rows"])
    write_jsonl(Path(args.out) / f"eval-{split_name}" / name / f"seed-{seed}.jsonl", rows)
    return res




def rejudge(out: Path, args) -> None:
    """ASR of the saved answers re-judged by the current harm-clf (a rebuilt judge; generations kept)."""
    from safekeel.judges.formats import RUN
    from safekeel.judges.harm_clf import HarmClfJudge

    judge = HarmClfJudge()
    path = out / f"summary-{args.split}.json"
    results = json.loads(path.read_text())
    for res in results:
        if not eval_rows_path(out, args.split, res).exists():  # an earlier session's run: its answers are gone
            continue
        rows = list(read_jsonl_rows(eval_rows_path(out, args.split, res)))
        harmful = [r for r in rows if r["set"] in SETS and (not args.rejudge_collapsed or RUN.search(r["response"]))]
        if not harmful:
            continue
        for r, v in zip(harmful, judge.judge([{"behavior": r["behavior"], "response": r["response"]}
                                              for r in harmful]), strict=True):
            r["unsafe"] = v.get("unsafe")
        for s in SETS:
            res[f"asr_{s}"] = rate(r["unsafe"] for r in rows if r["set"] == s)
        res["judge"] = judge.version
        write_jsonl(eval_rows_path(out, args.split, res), rows)
    write_json(path, results)
    print(table(results))


def add_qa(out: Path, args) -> None:
    """QA accuracy for the finished (arm, seed) rows of --split that lack it (a run made without --qa)."""
    from safekeel.eval.qa import qa_accuracy, qa_items
    from safekeel.models import load_model

    path = out / f"summary-{args.split}.json"
    for res in json.loads(path.read_text()):
        if "qa" in res or res["model"] not in args.arms:
            continue
        seed = res.get("seed", 0)
        model_dir = args.model if ARMS[res["model"]]["recipe"] is None else \
            str(out / "train" / res["model"] / f"seed-{seed}" / "model")
        model, tok = load_model(model_dir)
        qa = qa_accuracy(model, tok, qa_items())
        write_jsonl(out / f"eval-{args.split}" / res["model"] / f"seed-{seed}.qa.jsonl", qa["rows"])
        rows = json.loads(path.read_text())  # re-read: other sweep processes may have added rows meanwhile
        for r in rows:
            if r["model"] == res["model"] and r.get("seed", 0) == seed:
                r["qa"], r["qa_tasks"] = qa["overall"], qa["tasks"]
        write_json(path, rows)
        print(res["model"], seed, qa["overall"], flush=True)


def rescore(out: Path, args) -> None:
    from safekeel.data.tokenize import derive_refusal
    from safekeel.models import load_tokenizer

    tok = load_tokenizer(args.model)
    token = tok.decode([derive_refusal(tok, [t.safe_response for t in prepare(out)["fit"]])["token_id"]])
    path = out / f"summary-{args.split}.json"
    results = json.loads(path.read_text())
    for res in results:
        rows = list(read_jsonl_rows(eval_rows_path(out, args.split, res)))
        for r in rows:
            r["collapse"] = repeats(r["response"], token)
        res["collapse"] = rate(r["collapse"] for r in rows)
        write_jsonl(eval_rows_path(out, args.split, res), rows)
    write_json(path, results)
    print(table(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/derta_recipe")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--arms", nargs="+", default=["base", "derta-r1", "derta-r3"], choices=list(ARMS))
    ap.add_argument("--split", choices=["val", "val-wide", "heldout", "wide"], default="val",
                    help="wide: the test split of five harmful sources (WIDE_N behaviors), real prefixes where found")
    ap.add_argument("--qa", action="store_true", help="also QA accuracy on 200 utility-qa items")
    ap.add_argument("--steps", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--rescore", action="store_true", help="recompute the collapse rate from the saved answers")
    ap.add_argument("--rejudge", action="store_true", help="re-judge the saved answers with the current harm-clf")
    ap.add_argument("--rejudge-collapsed", action="store_true", help="--rejudge only the answers with a degenerate "
                                                                    "run (one word 8+ times in a row)")
    ap.add_argument("--add-qa", action="store_true", help="QA accuracy for finished --arms rows that lack it")
    ap.add_argument("--train-only", action="store_true", help="train the arms and seeds, evaluate nothing (for "
                    "attacks_table.py, which runs its own attacks on them)")
    ap.add_argument("--prefixes", action="store_true", help="only build the wide set's real harmful prefixes and "
                                                          "print how many survive (benchmarks/results/)")
    ap.add_argument("--report", action="store_true", help="print the RESULTS.md tables of --split (no training)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="training seeds (seed and data order) per arm "
                                                                      "(default 0); --report: only these seeds' rows "
                                                                      "(default: every finished seed)")
    ap.add_argument("--baseline", default=None, help="--report: also each arm's paired difference from this arm")
    ap.add_argument("--pairs", nargs="*", default=[], metavar="ARM:BASELINE",
                    help="--report: also these arms' paired differences from their own baselines (e.g. a unit set "
                         "against its random twin), after --baseline's")
    ap.add_argument("--archive", nargs="*", default=[], help="--report: earlier --export files whose rows and "
                                                               "flags stand in for (arm, seed) runs not on disk")
    ap.add_argument("--export", default=None, help="--report: also write the tables and rows to this JSON file "
                                                 "(benchmarks/results/, read by results_blocks.py)")
    args = ap.parse_args()
    if args.report:
        summary = Path(args.out) / f"summary-{args.split}.json"
        rows, archive = json.loads(summary.read_text()) if summary.exists() else [], {}
        for path in args.archive:  # an earlier export: its (arm, seed) rows where this run has none of its own
            old = json.loads(Path(path).read_text())
            archive |= old.get("flags", {})
            rows += [r for r in old["results"] if not any(
                (x["model"], x.get("seed", 0)) == (r["model"], r.get("seed", 0)) for x in rows)]
        chosen = [r for a in args.arms for r in rows if r["model"] == a and (
            args.seeds is None or r.get("seed", 0) in args.seeds or not ARMS.get(a, {}).get("recipe"))]
        if not chosen:
            sys.exit(f"{summary}: no finished run of --arms (an earlier session's: --archive its export)")
        text = report([mean_over_seeds([r for r in chosen if r["model"] == a]) for a in dict.fromkeys(
            r["model"] for r in chosen)])
        pairs = [(a, args.baseline) for a in dict.fromkeys(r["model"] for r in chosen) if a != args.baseline] \
            if args.baseline else []
        pairs += [tuple(p.split(":", 1)) for p in args.pairs]
        if pairs:
            text += "\n\n" + paired(Path(args.out), args.split, chosen, pairs, archive)
        print(text)
        if args.export:
            import platform

            write_json(Path(args.export), {"measured": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, "
                                           "2-core CPU, no GPU", "command": "python benchmarks/derta_recipe.py "
                                           + " ".join(sys.argv[1:]), "table": text, "results": chosen,
                                           "flags": pack_flags(Path(args.out), args.split, chosen, archive)})
        return None
    if args.rescore:
        return rescore(Path(args.out), args)
    if args.rejudge:
        return rejudge(Path(args.out), args)
    if args.add_qa:
        return add_qa(Path(args.out), args)
    if args.prefixes:
        counts = wide_set(Path(args.out), args)["prefix_counts"]
        write_json(Path(__file__).parent / "results" / "wide_prefixes.json",
                   {"measured": time.strftime("%Y-%m-%d"), "command": "python benchmarks/derta_recipe.py --prefixes",
                    "behaviors": WIDE_N, "counts": counts})
        return print(json.dumps(counts, indent=1))
    from safekeel.judges.harm_clf import HarmClfJudge

    out = Path(args.out)
    data = prepare(out)
    if args.split == "wide":
        data["wide"] = wide_set(out, args)
        print(f"wide set: {len(data['wide']['behaviors'])} behaviors, real harmful prefixes "
              f"{data['wide']['prefix_counts']}", flush=True)
    judge = None if args.train_only else HarmClfJudge()  # --train-only evaluates nothing: no judge to load
    summary_path = out / f"summary-{args.split}.json"
    results: dict = {}
    # seeds outer, arms inner: every arm's first seed is done before any arm's second
    seeds = args.seeds or [0]
    for seed, name in [(s, a) for s in seeds for a in args.arms if ARMS[a]["recipe"] or s == seeds[0]]:
        arm = ARMS[name]
        done = json.loads(summary_path.read_text()) if summary_path.exists() else []
        if any(r["model"] == name and r.get("seed", 0) == seed for r in done):
            continue  # resumable: a finished (arm, seed) is kept
        t0 = time.time()
        path = args.model if arm["recipe"] is None else train(out, name, arm, build(out, data, arm, args.model), args, seed)
        t_train = time.time() - t0
        if args.train_only:  # the model is what the caller wants (attacks_table.py evaluates it); no summary row
            print(path, flush=True)
            continue
        res = evaluate(name, path, args.split, data, args, judge, seed)
        res["seconds"] = {"train": round(t_train), "eval": round(time.time() - t0 - t_train)}
        tsum = out / "train" / name / f"seed-{seed}" / "summary.json"
        if tsum.exists():
            t = json.loads(tsum.read_text())
            res["trainable_fraction"] = t.get("trainable_fraction")
            res["train_seconds"] = t.get("train_seconds", t.get("seconds"))
        # re-read before writing: several sweep processes may share one --out (each arm is its own row)
        results = {(r["model"], r.get("seed", 0)): r for r in json.loads(summary_path.read_text())} \
            if summary_path.exists() else {}
        results[(name, seed)] = res
        write_json(summary_path, list(results.values()))
        print(table([res]), flush=True)
    if not args.train_only:
        print(table(list(results.values())))


if __name__ == "__main__":
    main()
