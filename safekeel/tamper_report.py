"""Tables and the plot of a `safekeel tamper` summary: every (defense, attack, lr) cell, then each defense's bounded
worst case. The same tables feed tamper.md and the demo's report (`eval.report.write_report(extra_tables=...)`)."""

from __future__ import annotations

from pathlib import Path

from .io import write_json, write_text


def _pct(rate, ci) -> str:
    if rate is None:
        return "-"
    return f"{rate:.0%}" + (f" [{ci[0]:.0%}–{ci[1]:.0%}]" if ci else "")


def _ppl(c: dict, ref: dict) -> str:
    p, r = c.get("utility_ppl"), ref.get("utility_ppl")
    return "-" if p is None or not r else f"ppl x{p / r:.2f}"


def _task(c: dict, ref: dict) -> str:
    p, r = c.get("task_ppl"), ref.get("task_ppl")
    return "" if p is None or not r else f" / task ppl x{p / r:.2f}"


def _entry(c: dict, ref: dict) -> str:
    return " / ".join([*(_pct(c[k], c[f"{k}_ci"]) for k in ("asr", "refusal", "utility")), _ppl(c, ref)]) \
        + _task(c, ref)


def report_tables(summary: dict) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows, notes) tables of a tamper summary: every cell, then each defense's bounded worst case.
    The same tables feed tamper.md and the demo's report."""
    ref, cells, worst, cfg = summary["reference"], summary["cells"], summary["worst_case"], summary["config"]
    attacks, lrs = cfg["attacks"], cfg["lrs"]
    by = {(c["defense"], c["lr"], c["attack"]): c for c in cells}
    task = (" / perplexity of the gold answers of held-out chats of the benign attack's task, as a multiple of "
            "the un-attacked model's (below 1: the task was learnt)") if ref.get("task_ppl") else ""
    grid = [[d, f"{lr:g}", *[_entry(by[(d, lr, a)], ref) if (d, lr, a) in by else "-" for a in attacks]]
            for d in dict.fromkeys(c["defense"] for c in cells) for lr in lrs]
    note = (f"Each entry: ASR ({summary['judge']} judge, the higher of {' and '.join(ref['by_attack'])}) / refusal "
            f"(keyword judge, direct) / benign answered, with 95% Wilson CIs / perplexity of the un-attacked model's "
            f"benign answers, as a multiple of its own{task}; n = {ref.get('n_eval')} held-out behaviors no attack "
            f"trained on, {cfg['steps']} steps per attack. Un-attacked model: {_entry(ref, ref)} (perplexity "
            f"{ref.get('utility_ppl')}).")
    rows = []
    for d, w in worst.items():
        c = w["worst"]
        rows.append([d, *([f"{c['attack']}, lr {c['lr']:g}", _pct(c["asr"], c["asr_ci"]),
                           _pct(c["utility"], c["utility_ci"]), _ppl(c, ref)] if c
                          else [f"none: {w['reason']}", "-", "-", "-"]), f"{w['qualifying']}/{w['cells']}"])
    ppl_bound = summary.get("ppl_bound")
    bound = f"benign answered >= un-attacked - {summary['utility_bound']:g}" + (
        f", perplexity <= x{ppl_bound:g}" if ppl_bound else "")
    return [("Fine-tuning attacks: defense x attack", ["defense", "lr", *attacks], grid, [note]),
            (f"Bounded worst case ({bound})",
             ["defense", "worst cell", "ASR", "benign answered", "perplexity", "qualifying cells"], rows,
             ["A cell that breaks the model beats every defense and says nothing about it: only cells whose utility "
              "stays within the bounds count."])]


def markdown(summary: dict) -> str:
    lines = [f"# Fine-tuning attacks on {summary['model']}", ""]
    for title, header, rows, notes in report_tables(summary):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                  *["| " + " | ".join(r) + " |" for r in rows], "", *notes, ""]
    return "\n".join(lines)


def plot(summary: dict) -> bytes:
    """Bounded worst-case ASR per defense (95% CI) beside its benign-answered rate; the un-attacked model as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref, worst = summary["reference"], summary["worst_case"]
    names = list(worst)
    fig, axes = plt.subplots(1, 2, figsize=(max(6, 1.6 * len(names) + 2), 3.4), sharey=True)
    for ax, key, title in ((axes[0], "asr", f"worst-case ASR ({summary['judge']})"),
                           (axes[1], "utility", "benign answered")):
        vals, lo, hi = [], [], []
        for d in names:
            c = worst[d]["worst"] or {}
            v, ci = c.get(key), c.get(f"{key}_ci")
            vals.append(v or 0.0)
            lo.append((v - ci[0]) if ci and v is not None else 0.0)
            hi.append((ci[1] - v) if ci and v is not None else 0.0)
        ax.bar(range(len(names)), vals, yerr=[lo, hi], capsize=3, color="#c0392b" if key == "asr" else "#2e86c1")
        if ref.get(key) is not None:
            ax.axhline(ref[key], color="k", ls="--", lw=1, label="un-attacked")
            ax.legend(fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(0, 1.05)
    fig.tight_layout()
    from .eval.report import _png

    return _png(fig)


def worst_over_seeds(summaries: dict[int, dict]) -> dict[str, dict]:
    """Per defense, over every seed's cells that kept that seed's bounds (its own `worst_case` qualification): the
    cell with the highest ASR, and the (cell, attack) with the lowest refusal. A benign fine-tune moves refusal and
    leaves ASR where it was, so the second is the worst case that bites there."""
    kept: dict[str, list[tuple[int, dict]]] = {}
    total: dict[str, int] = {}
    for seed, s in summaries.items():
        for d, entry in s["worst_case"].items():
            mine, excluded = [c for c in s["cells"] if c["defense"] == d], set(entry["excluded"])
            total[d] = total.get(d, 0) + len(mine)
            kept.setdefault(d, []).extend((seed, c) for c in mine if c["name"] not in excluded)
    out: dict[str, dict] = {}
    for d, cells in kept.items():
        entry = {"cells": total[d], "qualifying": len(cells), "highest_asr": None, "lowest_refusal": None}
        scored = [(seed, c) for seed, c in cells if c.get("asr") is not None]
        if scored:
            seed, c = max(scored, key=lambda sc: (sc[1]["asr"], -sc[1]["utility"], -sc[0]))
            entry["highest_asr"] = {"seed": seed, "cell": c["name"], "asr": c["asr"], "asr_ci": c["asr_ci"],
                                    "utility": c["utility"], "utility_ppl": c.get("utility_ppl"),
                                    "task_ppl": c.get("task_ppl")}
        refusals = [(a["refusal"], seed, c["name"], name, a["refusal_ci"]) for seed, c in cells
                    for name, a in c.get("by_attack", {}).items() if a.get("refusal") is not None]
        if refusals:
            rate, seed, cell, attack, ci = min(refusals, key=lambda r: (r[0], r[1], r[2], r[3]))
            entry["lowest_refusal"] = {"seed": seed, "cell": cell, "attack": attack, "refusal": rate, "refusal_ci": ci}
        out[d] = entry
    return out


def worst_over_seeds_table(summaries: dict[int, dict], judge: str) -> list[str]:
    """seeds.md's bounded worst case over every seed (markdown lines)."""
    first = next(iter(summaries.values()))
    bound = f"benign answered >= that seed's un-attacked - {first['utility_bound']:g}" + (
        f", perplexity <= x{first['ppl_bound']:g}" if first.get("ppl_bound") else "")
    lines = [f"## Bounded worst case over seeds ({bound})", "",
             f"| defense | qualifying (cells x seeds) | highest ASR ({judge}): cell, seed | ASR | lowest refusal "
             "(keyword): cell, seed, attack | refusal |", "|---|---|---|---|---|---|"]
    for d, w in worst_over_seeds(summaries).items():
        a, r = w["highest_asr"], w["lowest_refusal"]
        lines.append(f"| {d} | {w['qualifying']}/{w['cells']} | "
                     + (f"{a['cell']}, seed {a['seed']} | {_pct(a['asr'], a['asr_ci'])}" if a else "- | -") + " | "
                     + (f"{r['cell']}, seed {r['seed']}, {r['attack']} | {_pct(r['refusal'], r['refusal_ci'])}"
                        if r else "- | -") + " |")
    return lines + ["", "Only cells within their own seed's bounds count; the same rule as each seed's tamper.md."]


def seed_summary(out: Path, seeds: list[int], judge: str) -> Path:
    """seeds.json / seeds.md: each cell's ASR (all attacks; `judge`) and refusal (keyword), mean and per seed, and
    their paired differences from the undefended cell of the same attack and lr, from the same-count random twin
    (ssah, ssah_all) and from the reference, behaviors resampled, seeds kept paired; the task perplexity where the
    attack is benign."""
    import json

    from .eval.compare import compare, diff_text
    from .units.defenses import TWINS

    cells = [json.loads(line) for line in (out / f"seed-{seeds[0]}" / "cells.jsonl").read_text().splitlines()]
    evals = {c["name"]: [out / f"seed-{s}" / "eval" / c["name"] for s in seeds] for c in cells}
    ref = [out / f"seed-{s}" / "eval" / "reference" for s in seeds]
    head = ["| cell | {m} mean (per seed) | vs no defense, points [95% CI] p | vs random twin | vs reference |",
            "|---|---|---|---|---|"]
    tables = {"asr": [f"## ASR (judge `{judge}`)", "", head[0].format(m="ASR"), head[1]],
              "refusal": ["## Refusal (judge `keyword`)", "", head[0].format(m="refusal"), head[1]]}
    rows = []
    for c in cells:
        per_seed: dict[str, list] = {"asr": [], "refusal": [], "task_ppl": []}
        for d in evals[c["name"]]:
            s = json.loads((d / "summary.json").read_text())
            per_seed["asr"].append((s["asr_overall"].get(judge) or {}).get("rate"))
            per_seed["refusal"].append((s["asr_overall"].get("keyword") or {}).get("rate"))
            task = d / "task_ppl.json"
            per_seed["task_ppl"].append(json.loads(task.read_text())["ppl"] if task.exists() else None)
        per_seed["refusal"] = [None if x is None else 1 - x for x in per_seed["refusal"]]  # keyword ASR = not refused
        base = evals.get(f"none-{c['attack']}-lr{c['lr']:g}")
        twin = evals.get(f"{TWINS.get(c['defense'])}-{c['attack']}-lr{c['lr']:g}")
        runs = {"vs_none": compare([evals[c["name"]]], base, judge)["runs"] if base and c["defense"] != "none" else {},
                "vs_random_twin": compare([evals[c["name"]]], twin, judge)["runs"] if twin else {},
                "vs_reference": compare([evals[c["name"]]], ref, judge)["runs"]}
        row = {"cell": c["name"], "asr_per_seed": per_seed["asr"], "refusal_per_seed": per_seed["refusal"],
               "task_ppl_per_seed": per_seed["task_ppl"]}
        for metric in ("asr", "refusal"):
            for k, r in runs.items():
                row[k if metric == "asr" else f"refusal_{k}"] = \
                    next(iter(r.values()))[metric].get("all attacks") if r else None
            vals = [x for x in per_seed[metric] if x is not None]
            mean = sum(vals) / max(1, len(vals))
            seeds_text = ", ".join("–" if x is None else f"{100 * x:.0f}" for x in per_seed[metric])
            pre = "" if metric == "asr" else "refusal_"
            tables[metric].append(f"| {c['name']} | {100 * mean:.1f} ({seeds_text}) | " + " | ".join(
                diff_text(row[pre + k], p_digits=2) for k in ("vs_none", "vs_random_twin", "vs_reference")) + " |")
        rows.append(row)
    summaries = {s: json.loads((out / f"seed-{s}" / "summary.json").read_text()) for s in seeds}
    lines = [f"# Fine-tuning attacks over seeds {', '.join(map(str, seeds))}", ""] + tables["asr"] + [""] \
        + tables["refusal"] + [""] + worst_over_seeds_table(summaries, judge)
    write_json(out / "seeds.json", {"seeds": seeds, "judge": judge, "cells": rows,
                                    "worst_case_over_seeds": worst_over_seeds(summaries)})
    write_text(out / "seeds.md", "\n".join(lines) + "\n")
    return out
