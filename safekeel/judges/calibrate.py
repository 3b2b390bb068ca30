"""`safekeel calibrate`: measure judges against labelled answers before trusting any ASR they produce.

For every (label set, judge): accuracy, Cohen's kappa, precision / recall / F1 of "unsafe" with 95% CIs, per
category and per condition, the confusion table, and refusal accuracy where the set has refusal labels.
Wrapped sets (`NAME:wrapped`) give the judge only the full attack prompt as the request; their rows are paired
with the bare set so the two kappas can be compared on the same answers.

A learned judge is never scored on rows it was trained on: on its own training sets it is scored out of fold
(cross-validation grouped by request, so no request is in both train and test). Outputs: verdicts.jsonl (one row
per set x judge x answer), agreement.json, agreement.md and the resolved config.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ..config import field, save_config
from ..io import write_json, write_jsonl, write_text
from .agreement_stats import agreement, per_group, refusal_agreement
from .labelsets import load_labels
from .registry import JudgeSettings, canonical, make_judge

DEFAULT_SETS = ["pyrit-harm", "pyrit-harm-ends", "pyrit-harm:wrapped", "pyrit-refusal", "guideline",
                "guideline:wrapped"]


@dataclass
class CalibrateConfig(JudgeSettings):
    labels: list[str] = field(list(DEFAULT_SETS), help="label sets: bundled names (pyrit-harm, pyrit-harm-ends, "
                              "pyrit-refusal, uncensorbench, guideline; add :wrapped for attack-wrapped) or files "
                              "with request, response, label")
    judges: list[str] = field(["keyword", "harm", "harm-clf"], help="judges to measure")
    limit: int = field(0, help="first N requests of each set (0 = all; for a quick look)")
    folds: int = field(5, help="grouped folds for a learned judge on its own training sets")
    n_boot: int = field(1000, help="bootstrap replicates for the kappa / F1 intervals")
    out: str = field("runs/calibrate", help="output folder")


def _out_of_fold(judge, rows) -> bool:
    """A learned judge on rows whose requests it was trained on must be scored out of fold."""
    return bool(hasattr(judge, "out_of_fold") and judge.trained_on_any(rows))


def measure(rows, verdicts: list[dict], n_boot: int) -> dict:
    """All agreement figures of one judge's verdicts on one label set."""
    out: dict = {}
    harm = [i for i, r in enumerate(rows) if r.unsafe is not None]
    if harm:
        y = [rows[i].unsafe for i in harm]
        p = [verdicts[i]["unsafe"] for i in harm]
        g = [rows[i].group for i in harm]
        out["unsafe"] = agreement(y, p, g, n_boot=n_boot)
        if any(rows[i].category for i in harm):
            out["per_category"] = per_group(y, p, [rows[i].category for i in harm], g)
        if any(rows[i].condition for i in harm):
            out["per_condition"] = per_group(y, p, [rows[i].condition for i in harm], g)
    ref = [i for i, r in enumerate(rows) if r.refusal is not None]
    if ref:
        out["refusal"] = refusal_agreement([rows[i].refusal for i in ref], [verdicts[i].get("refusal") for i in ref])
    return out


def run_calibrate(cfg: CalibrateConfig, log=print) -> dict:
    out = Path(cfg.out)
    sets = {spec: load_labels(spec) for spec in cfg.labels}  # every file validated before anything is written
    save_config(cfg, out)
    opts = cfg.judge_options()
    judges = {canonical(j): None for j in cfg.judges}
    results: dict = {"sets": {}, "judges": {}}
    rows_out: list[dict] = []
    for spec, rows in sets.items():
        if cfg.limit:
            keep = set(list(dict.fromkeys(r.group for r in rows))[:cfg.limit])
            rows = [r for r in rows if r.group in keep]
        bare = not spec.endswith(":wrapped")
        results["sets"][spec] = {"rows": len(rows), "requests": len({r.group for r in rows}),
                                 "unsafe_rows": sum(1 for r in rows if r.unsafe), "bare_request": bare}
        for name in judges:
            if judges[name] is None:
                judges[name] = make_judge(name, opts)
                results["judges"][name] = {"version": getattr(judges[name], "version", None)}
            oof, items = _out_of_fold(judges[name], rows), [r.item(bare) for r in rows]
            t0 = time.time()
            verdicts = judges[name].out_of_fold(rows, items, cfg.folds) if oof else judges[name].judge(items)
            secs = time.time() - t0
            m = measure(rows, verdicts, cfg.n_boot)
            m["out_of_fold"] = oof
            # judging speed; out-of-fold scoring retrains and reuses cached features, so it says nothing of speed
            m["rows_per_s"] = round(len(rows) / secs, 1) if secs > 0 and not m["out_of_fold"] else None
            results["sets"][spec].setdefault("judges", {})[name] = m
            log(f"{spec} · {name}: {headline(m)}")
            rows_out += [{"set": spec, "judge": name, "id": r.id, "group": r.group, "condition": r.condition,
                          "category": r.category, "label_unsafe": r.unsafe, "label_refusal": r.refusal,
                          "unsafe": v.get("unsafe"), "refusal": v.get("refusal"), "score": v.get("score"),
                          "error": v.get("error")} for r, v in zip(rows, verdicts, strict=True)]
    write_jsonl(out / "verdicts.jsonl", rows_out)
    write_json(out / "agreement.json", results)
    write_text(out / "agreement.md", markdown(results))
    log(f"agreement -> {out / 'agreement.md'}")
    return results


def _fmt(x: dict | None, pct: bool = False) -> str:
    if not x or x.get("value") is None:
        return "–"
    v, ci = x["value"], x.get("ci")
    f = (lambda t: f"{100 * t:.1f}") if pct else (lambda t: f"{t:.3f}")
    return f"{f(v)} [{f(ci[0])}, {f(ci[1])}]" if ci else f(v)


def headline(m: dict) -> str:
    parts = []
    if "unsafe" in m:
        u = m["unsafe"]
        parts.append(f"kappa {_fmt(u['kappa'])} precision {_fmt(u['precision'])} recall {_fmt(u['recall'])} "
                     f"n={u['n']} errors={u['errors']}")
    if "refusal" in m:
        parts.append(f"refusal accuracy {_fmt(m['refusal']['accuracy'])} n={m['refusal']['n']}")
    return "; ".join(parts) + (" (out of fold)" if m.get("out_of_fold") else "")


def markdown(results: dict) -> str:
    lines = ["# Judge agreement with labels", "",
             "Unsafe = positive. 95% CIs: Wilson for rates, bootstrap over requests for kappa and F1. "
             "Learned judges on their own training sets are scored out of fold (grouped by request).", ""]
    for spec, s in results["sets"].items():
        lines += [f"## {spec}", "", f"{s['rows']} rows, {s['requests']} requests, {s['unsafe_rows']} unsafe; "
                  f"the judge sees {'the bare request' if s['bare_request'] else 'only the full attack prompt'}.", "",
                  "| judge | kappa | precision | recall | F1 | accuracy | refusal acc. | confusion tp/fp/tn/fn | rows/s |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for name, m in s.get("judges", {}).items():
            u = m.get("unsafe", {})
            c = u.get("confusion")
            lines.append(f"| {name}{' (oof)' if m.get('out_of_fold') else ''} | {_fmt(u.get('kappa'))} | "
                         f"{_fmt(u.get('precision'))} | {_fmt(u.get('recall'))} | {_fmt(u.get('f1'))} | "
                         f"{_fmt(u.get('accuracy'))} | {_fmt(m.get('refusal', {}).get('accuracy'))} | "
                         f"{'/'.join(str(c[k]) for k in ('tp', 'fp', 'tn', 'fn')) if c else '–'} | "
                         f"{m.get('rows_per_s')} |")
        # per category: kappa / recall; per condition (one label each): the share of verdicts that agree
        for key, title, cell in (("per_category", "Kappa / recall per category",
                                  lambda m: f"{_fmt(m.get('kappa'))} / {_fmt(m.get('recall'))}"),
                                 ("per_condition", "Agreement (share of verdicts = label) per condition",
                                  lambda m: _fmt(m.get("accuracy")))):
            groups = sorted({g for m in s.get("judges", {}).values() for g in m.get(key, {})})
            if groups:
                names = list(s["judges"])
                lines += ["", f"{title}:", "", "| " + key[4:] + " | n | " + " | ".join(names) + " |",
                          "|---" * (len(names) + 2) + "|"]
                for g in groups:
                    ms = [s["judges"][n].get(key, {}).get(g, {}) for n in names]
                    n = next((m.get("n") for m in ms if m), 0)
                    lines.append(f"| {g} | {n} | " + " | ".join(cell(m) if m else "–" for m in ms) + " |")
        lines.append("")
    return "\n".join(lines)

