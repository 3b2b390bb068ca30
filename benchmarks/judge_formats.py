"""harm-clf on answers in attack formats, on requests it never saw (the split registry's test split), and over-refusal.

    python benchmarks/judge_formats.py --choose      # validation: read the format (payload) vs judge the raw answer
    python benchmarks/judge_formats.py [--write]     # test split: agreement per format, refusal, over-refusal, speed

`--choose` trains the heads on the train split only and scores the val split's rows rendered in each format: the
answer read as a person reads it or raw, and heads trained with or without CodeAttack-rendered train rows. The main run scores the shipped judge (trained on train + val) on test-split rows only (pyrit-harm and the
guideline cases, bare and rendered as CodeAttack programs, ciphers, completions and dual-persona role-play), pyrit-harm
out of fold (every row scored by heads that never saw its request; comparable with earlier figures), PyRIT's refusal
labels, and the base model's answers to held-out benign and benign-but-scary prompts (over-refusal). `--write`
stores pyrit-harm's confusion counts in safekeel/resources/judge_agreement.json (what reports correct ASR with).
Results: runs/judge_formats/ and benchmarks/results/judge_formats.json; tables: --report.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

from safekeel.io import read_jsonl_rows, write_json, write_jsonl
from safekeel.judges.calibrate import CalibrateConfig, run_calibrate

RESULT = Path(__file__).parent / "results" / "judge_formats.json"
BASES = ("pyrit-harm@test", "guideline@test")
FORMATS = ("codeattack", "cipher", "completion", "roleplay")
JUDGES = ["keyword", "harm", "harm-clf"]


def choose(out: Path) -> dict:
    """Validation: harm-clf trained on train only, val rows in each format, payload reading on vs off."""
    from safekeel.judges import harm_clf
    from safekeel.judges.agreement_stats import agreement
    from safekeel.judges.labelsets import load_labels

    judge = harm_clf.HarmClfJudge(heads={})
    heads = {(): harm_clf.train(judge.features, *harm_clf.training_rows(("train",), formats=())),
             ("codeattack",): harm_clf.train(judge.features, *harm_clf.training_rows(("train",),
                                                                                     formats=("codeattack",)))}
    res = {}
    for base in ("pyrit-harm@val", "guideline@val"):
        for fmt in ("",) + FORMATS:
            spec = base + (f":{fmt}" if fmt else "")
            rows = load_labels(spec)
            items = [r.item(True) for r in rows]
            for read, fmts in ((True, ()), (False, ()), (True, ("codeattack",))):
                judge.read_formats, judge.heads = read, heads[fmts]
                v = judge.judge(items)
                a = agreement([r.unsafe for r in rows], [x["unsafe"] for x in v], [r.group for r in rows], n_boot=300)
                tag = f"read={read} trained_on_formats={'+'.join(fmts) or '-'}"
                res[f"{spec} {tag}"] = {"n": a["n"], "kappa": a["kappa"], "precision": a["precision"]["value"],
                                        "recall": a["recall"]["value"]}
                k = a["kappa"]["value"]
                print(f"{spec:30s} {tag:40s} n={a['n']:4d} kappa "
                      f"{'undefined' if k is None else f'{k:.3f}'} ci {a['kappa']['ci']}", flush=True)
    judge.features.save()
    write_json(out / "choose.json", res)
    write_json(RESULT.parent / "judge_choose.json", res)
    return res


def base_answers(out: Path, n_tokens: int = 128) -> list[dict]:
    """The base model's greedy answers to the test split of benign and benign-but-scary prompts (cached)."""
    path = out / "base_answers.jsonl"
    if path.exists():
        return list(read_jsonl_rows(path))
    from safekeel.data.bundled import own_set
    from safekeel.data.splits import select
    from safekeel.eval.generate import GenerationRequest, generate
    from safekeel.models import load_model

    model, tok = load_model("smollm2-135m")
    rows = [{"set": name, "id": r["id"], "behavior": r["prompt"]} for name in ("benign", "benign-scary")
            for r in select(own_set(name), "test")]
    answers = generate(model, tok, [GenerationRequest([{"role": "user", "content": r["behavior"]}]) for r in rows],
                       max_new_tokens=n_tokens, batch_size=16)
    rows = [{**r, "response": a} for r, a in zip(rows, answers, strict=True)]
    write_jsonl(path, rows)
    return rows


def over_refusal(out: Path) -> dict:
    from safekeel.eval.metrics import wilson
    from safekeel.judges.registry import make_judge

    rows = base_answers(out)
    res = {}
    for name in ("keyword", "harm-clf"):
        v = make_judge(name).judge(rows)
        for s in ("benign", "benign-scary"):
            idx = [i for i, r in enumerate(rows) if r["set"] == s]
            k = sum(bool(v[i]["refusal"]) for i in idx)
            res[f"{s}/{name}"] = {"k": k, "n": len(idx), "rate": k / len(idx), "ci": wilson(k, len(idx))}
    return res


def slim(sets: dict) -> dict:
    """The figures RESULTS shows, per set and judge (agreement.json under --out keeps everything)."""
    def one(m: dict) -> dict:
        u = m.get("unsafe") or {}
        out = {k: u[k] for k in ("n", "kappa", "precision", "recall", "confusion") if k in u}
        out["per_condition"] = {c: {"n": v["n"], "accuracy": v["accuracy"]} for c, v in
                                (m.get("per_condition") or {}).items() if c.endswith("/refusal")}
        return {**({"unsafe": out} if u else {}), **({"refusal": m["refusal"]} if "refusal" in m else {})}

    return {spec: {"rows": s_["rows"], "requests": s_["requests"],
                   "judges": {j: one(m) for j, m in s_.get("judges", {}).items()}} for spec, s_ in sets.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/judge_formats")
    ap.add_argument("--choose", action="store_true")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    if args.choose:
        choose(out)
        return
    t0 = time.time()
    labels = [b + (f":{f}" if f else "") for b in BASES for f in ("",) + FORMATS]
    test = run_calibrate(CalibrateConfig(labels=labels + ["pyrit-refusal@test"], judges=JUDGES,
                                         out=str(out / "test"), n_boot=1000))
    oof = run_calibrate(CalibrateConfig(labels=["pyrit-harm", "pyrit-refusal"], judges=JUDGES, out=str(out / "oof"),
                                        n_boot=1000))
    from judge_agreement import judging_speed, write_resource

    speed = judging_speed()
    result = {"version": test["judges"]["harm-clf"]["version"], "measured": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {__import__('os').cpu_count()}"
              " cores, no GPU", "command": "python benchmarks/judge_formats.py --write",
              "test": slim(test["sets"]), "oof": slim(oof["sets"]), "over_refusal": over_refusal(out), "speed_rows_per_s": speed,
              "wall_s": round(time.time() - t0)}
    write_json(RESULT, result)
    print(f"wrote {RESULT}")
    if args.write:
        print(f"wrote {write_resource(out / 'oof')}")


if __name__ == "__main__":
    main()
