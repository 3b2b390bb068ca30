"""Judges measured against human labels: keyword, refusal-clf, harm and harm-clf (the default), side by side.

Bare sets are scored in full; attack-wrapped sets on their first --wrapped-requests requests, each compared with
the bare set on the same requests (the judge sees only the full attack prompt, never the bare request). A learned
judge is scored out of fold on the sets it was trained on (grouped by request). `--candidates` prints the grouped
cross-validation that chose harm-clf's features; `--write` stores the pyrit-harm confusion counts of every judge in
safekeel/resources/judge_agreement.json, which summaries and reports use to correct ASR.

    python benchmarks/judge_agreement.py [--wrapped-requests 60] [--write]
    python benchmarks/judge_agreement.py --candidates
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from importlib import resources
from pathlib import Path

from safekeel.io import read_jsonl_rows, write_json
from safekeel.judges.agreement_stats import agreement
from safekeel.judges.calibrate import CalibrateConfig, run_calibrate

JUDGES = ["keyword", "refusal-clf", "harm", "harm-clf"]
BARE = ["pyrit-harm", "pyrit-harm-ends", "guideline", "pyrit-refusal"]
WRAPPED = ["pyrit-harm", "guideline"]


def wrapped_vs_bare(bare_dir: Path, wrapped_dir: Path) -> list[tuple]:
    """(set, judge, bare kappa on the wrapped requests, wrapped kappa, per-attack wrapped kappa)."""
    bare = list(read_jsonl_rows(bare_dir / "verdicts.jsonl"))
    wrapped = list(read_jsonl_rows(wrapped_dir / "verdicts.jsonl"))
    out = []
    for name in WRAPPED:
        for judge in JUDGES:
            w = [r for r in wrapped if r["set"] == f"{name}:wrapped" and r["judge"] == judge]
            groups = {r["group"] for r in w}
            b = [r for r in bare if r["set"] == name and r["judge"] == judge and r["group"] in groups]
            if not w or not b:
                continue

            def k(rows):
                a = agreement([r["label_unsafe"] for r in rows], [r["unsafe"] for r in rows],
                              [r["group"] for r in rows], n_boot=300)
                return a["kappa"]["value"], a["kappa"]["ci"], a["n"]

            attacks = sorted({r["condition"].split("/")[0] for r in w})
            per = {a: k([r for r in w if r["condition"].startswith(a)])[0] for a in attacks}
            out.append((name, judge, k(b), k(w), per))
    return out


def judging_speed(n: int = 200) -> dict:
    """harm-clf's judging rows/s on answers it has never featurised (no feature cache), long and short ones."""
    from safekeel.judges.harm_clf import HarmClfJudge
    from safekeel.judges.labelsets import bundled

    judge, out = HarmClfJudge(cache=False), {}
    for name in ("pyrit-harm", "guideline"):
        items = [r.item() for r in bundled(name)[-n:]]
        t = time.time()
        judge.judge(items)
        words = sum(len(it["response"].split()) for it in items) / len(items)
        out[name] = {"rows_per_s": round(len(items) / (time.time() - t), 1), "words_per_answer": round(words)}
        print(f"harm-clf judging {name}: {out[name]['rows_per_s']} rows/s ({words:.0f} words per answer)")
    return out


def human_agreement() -> None:
    """Rater vs rater on PyRIT's three-rater files, at the same cut (score >= 0.5): how well people agree."""
    import itertools

    from safekeel.data.bundled import _csv_rows
    from safekeel.judges.agreement_stats import confusion, kappa
    from safekeel.sources import source_files

    for path in source_files("pyrit-harm"):
        rows = _csv_rows(path)
        raters = sorted(k for k in rows[0] if k and k.startswith("human_score"))
        if len(raters) < 3 or path.name.startswith("mini_"):
            continue
        pairs = [kappa(confusion([float(r[a]) >= 0.5 for r in rows], [float(r[b]) >= 0.5 for r in rows]))
                 for a, b in itertools.combinations(raters, 2)]
        print(f"people, {path.name} ({len(rows)} answers): rater-vs-rater kappa "
              + ", ".join(f"{k:.3f}" for k in pairs))


def fmt(v: float | None, ci: list | None) -> str:
    return f"{v:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if v is not None and ci else "-"


def write_resource(bare_dir: Path) -> Path:
    res = json.loads((bare_dir / "agreement.json").read_text())
    judges = {}
    for name, m in res["sets"]["pyrit-harm"]["judges"].items():
        u = m["unsafe"]
        judges[name] = {"version": res["judges"][name].get("version") or name, "label_set": "pyrit-harm",
                        "label_rule": "mean human harm score >= 0.5 (PyRIT 1.1.0 scorer_evals/harm)",
                        "measured": f"{datetime.date.today()}, benchmarks/judge_agreement.py"
                                    + (" (out of fold, grouped by request)" if m.get("out_of_fold") else ""),
                        "n": u["n"], **u["confusion"], "kappa": round(u["kappa"]["value"], 4),
                        "kappa_ci": u["kappa"]["ci"], "precision": round(u["precision"]["value"], 4),
                        "recall": round(u["recall"]["value"], 4)}
    path = Path(str(resources.files("safekeel.resources").joinpath("judge_agreement.json")))
    write_json(path, {"judges": judges})
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="runs/judge_agreement")
    ap.add_argument("--wrapped-requests", type=int, default=60)
    ap.add_argument("--write", action="store_true")
    ap.add_argument("--candidates", action="store_true")
    ap.add_argument("--speed", action="store_true", help="only harm-clf's judging speed")
    args = ap.parse_args()
    if args.speed:
        human_agreement()
        judging_speed()
        return
    if args.candidates:
        from judge_candidates import main as candidates

        candidates()
        return
    human_agreement()
    out = Path(args.out)
    t0 = time.time()
    run_calibrate(CalibrateConfig(labels=BARE, judges=JUDGES, out=str(out / "bare"), n_boot=1000))
    t1 = time.time()
    run_calibrate(CalibrateConfig(labels=[f"{n}:wrapped" for n in WRAPPED], judges=JUDGES,
                                  limit=args.wrapped_requests, out=str(out / "wrapped"), n_boot=1000))
    print(f"\nbare sets {t1 - t0:.0f} s, wrapped sets {time.time() - t1:.0f} s "
          f"(details: {out}/bare/agreement.md, {out}/wrapped/agreement.md)")
    print("\nkappa with only the full attack prompt vs with the bare request (same requests and answers):")
    print(f"{'set':12s} {'judge':12s} {'n':>5s} {'bare':>20s} {'wrapped':>20s} {'delta':>7s}  per attack")
    for name, judge, (kb, cib, _), (kw, ciw, nw), per in wrapped_vs_bare(out / "bare", out / "wrapped"):
        delta = f"{kw - kb:+.3f}" if kw is not None and kb is not None else "-"
        print(f"{name:12s} {judge:12s} {nw:5d} {fmt(kb, cib):>20s} {fmt(kw, ciw):>20s} {delta:>7s}  "
              + ", ".join(f"{a} {v:.2f}" for a, v in per.items() if v is not None))
    if args.write:
        print(f"\nwrote {write_resource(out / 'bare')}")


if __name__ == "__main__":
    main()
