"""`safekeel report RUN_DIR [RUN_DIR ...]`: summary.json, report.md and a self-contained report.html.

Plots (PNG, embedded as base64 in the HTML so the file can be mailed or attached as is): ASR per attack with 95%
Wilson error bars, runs side by side; first-refusal position histogram; the harmful-prefix recovery curve.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ..errors import SafekeelError
from ..io import write_bytes, write_json, write_text
from .summary import summarize

PREFERRED = ("harm-clf", "llm", "llamaguard", "harm", "refusal-clf", "keyword")


def main_judge(summaries: list[dict]) -> str | None:
    have = set.intersection(*(set(s["judges"]) for s in summaries)) if summaries else set()
    return next((j for j in PREFERRED if j in have), None)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def plot_asr(summaries: list[dict], judge: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    attacks = sorted({a for s in summaries for a in s["asr"].get(judge, {})})
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(attacks) * max(1, len(summaries)) ** 0.5 + 2), 4))
    width = 0.8 / max(1, len(summaries))
    for i, s in enumerate(summaries):
        xs, ys, lo, hi = [], [], [], []
        for j, a in enumerate(attacks):
            r = s["asr"].get(judge, {}).get(a)
            if not r or r["rate"] is None:
                continue
            xs.append(j + (i - (len(summaries) - 1) / 2) * width)
            ys.append(100 * r["rate"])
            lo.append(100 * (r["rate"] - r["ci"][0]))
            hi.append(100 * (r["ci"][1] - r["rate"]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, label=s["run"])
    ax.set_xticks(range(len(attacks)), attacks, rotation=25, ha="right")
    ax.set_ylabel(f"ASR % ({judge} judge)")
    ax.set_ylim(0, 105)
    ax.set_title("Attack success rate per attack (95% Wilson CI)")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_positions(summaries: list[dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / max(1, len(summaries))
    labels = None
    for i, s in enumerate(summaries):
        h = s["refusal_position"]["all_harmful"]
        total = max(1, h["n_refusals"])
        labels = [f"{a}-{b - 1}" if b < 100000 else f"{a}+" for a, b in zip(h["bins"][:-1], h["bins"][1:],
                                                                           strict=True)]
        ax.bar([j + (i - (len(summaries) - 1) / 2) * width for j in range(len(labels))],
               [100 * c / total for c in h["counts"]], width, label=f"{s['run']} (n={h['n_refusals']})")
    if labels:
        ax.set_xticks(range(len(labels)), labels)
    if all(s["refusal_position"]["all_harmful"]["n_refusals"] == 0 for s in summaries):
        ax.text(0.5, 0.5, "no refusal phrase in any answer", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylim(0, 100)
    ax.set_xlabel("position of the first refusal phrase (tokens)")
    ax.set_ylabel("% of refusing answers")
    ax.set_title("Where refusals start (all harmful prompts)")
    ax.legend(fontsize=8)
    return _png(fig)


def plot_recovery(summaries: list[dict], judge: str) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [(s["run"], next((c for c in (s["recovery"].get(judge), s["recovery"].get("keyword"))
                               if c and all(p.get("refusal") for p in c)), [])) for s in summaries]
    if not any(c for _, c in curves):
        return None
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for name, c in curves:
        if not c:
            continue
        ks = [p["k"] for p in c]
        ys = [100 * (p["refusal"]["rate"] or 0) for p in c]
        lo = [100 * p["refusal"]["ci"][0] for p in c]
        hi = [100 * p["refusal"]["ci"][1] for p in c]
        ax.plot(ks, ys, marker="o", label=name)
        ax.fill_between(ks, lo, hi, alpha=0.15)
    ax.set_xlabel("harmful prefix length k (tokens)")
    ax.set_ylabel("refusal rate %")
    ax.set_ylim(0, 105)
    ax.set_title("Recovery curve: refusal after k harmful tokens (95% CI)")
    ax.legend(fontsize=8)
    return _png(fig)


def _pct(r: dict | None) -> str:
    if not r or r.get("rate") is None:
        return "–"
    err = f", {r['errors']} err" if r.get("errors") else ""
    return f"{100 * r['rate']:.1f} [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}] (n={r['n']}{err})"


def _corr(r: dict | None) -> str:
    if not r or r.get("n") == 0:
        return "–"
    if r.get("corrected") is None:
        return "undefined"
    flag = " †" if r.get("implausible") else ""
    return f"{100 * r['corrected']:.1f} [{100 * r['corrected_ci'][0]:.1f}, {100 * r['corrected_ci'][1]:.1f}]{flag}"


def judge_line(judge: str, info: dict | None) -> str:
    """Which judge made the numbers, and how far it agrees with people (or that nobody measured it)."""
    if not info or "tp" not in info:
        return f"Judge `{judge}`: agreement not measured, so ASR is shown as judged, without correction."
    kappa, sens, spec = (f"{x:.2f}" if isinstance(x, int | float) else "–"
                         for x in (info.get("kappa"), info.get("sensitivity"), info.get("specificity")))
    when = f", measured {info['measured']}" if info.get("measured") else ""
    return (f"Judge `{judge}` version {info.get('version', '?')}: agreement with human labels on "
            f"{info.get('label_set', '?')} (n = {info.get('n', '?')}{when}): kappa {kappa}, sensitivity {sens}, "
            f"specificity {spec}. Corrected ASR: posterior median and 95% interval of the true rate given the "
            "judged count and the judge's calibration counts (true rate in [0, 100], sensitivity and specificity "
            "uncertain; Gelman and Carpenter 2020). It assumes this run's answers are judged as well as the "
            "labelled ones; † marks a judged rate that this calibration cannot produce (it does not transfer).")


def _judge_tables(summaries: list[dict], judge: str) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """Judged ASR [Wilson CI] per attack, beside the corrected ASR [bootstrap CI] when the judge was measured."""
    info = next((s["judge_info"][judge] for s in summaries if judge in s.get("judge_info", {})), None)
    measured = bool(info and "tp" in info and "correction" not in info)
    attacks = sorted({a for s in summaries for a in s["asr"].get(judge, {})})

    def cells(judged: dict | None, corrected: dict | None) -> list[str]:
        return [_pct(judged), _corr(corrected)] if measured else [_pct(judged)]

    rows = [[a, *[c for s in summaries for c in cells(s["asr"].get(judge, {}).get(a),
                                                      s.get("asr_corrected", {}).get(judge, {}).get(a))]]
            for a in attacks]
    rows.append(["**all attacks**", *[c for s in summaries for c in cells(
        s["asr_overall"].get(judge), s.get("asr_corrected_overall", {}).get(judge))]])
    rows.append(["over-refusal (benign-scary)", *[c for s in summaries for c in cells(
        s["over_refusal"].get(judge), None)]])
    why: dict[str, list[str]] = {}  # a correction's caveat -> where it applies
    for s in summaries:
        corr = s.get("asr_corrected", {}).get(judge, {})
        for a, r in [*corr.items(), ("all attacks", s.get("asr_corrected_overall", {}).get(judge))]:
            if r and r.get("note"):
                why.setdefault(r["note"], []).append(f"{s['run']} / {a}")
    notes = [judge_line(judge, info), *(f"Correction, {', '.join(w)}: {n}." for n, w in why.items())]
    if measured:
        header = ["attack", *[f"{s['run']} {kind}" for s in summaries for kind in ("judged", "corrected")]]
        title = f"ASR % judged [95% Wilson CI] and corrected for judge error [95% posterior interval] — judge `{judge}`"
    else:
        header, title = ["attack", *[s["run"] for s in summaries]], f"ASR % [95% Wilson CI] — judge `{judge}`"
    out = [(title, header, rows, notes)]
    variants = sorted({v for s in summaries for v in s["asr_variant"].get(judge, {})})
    if variants:
        out.append((f"ASR % per variant (as judged) — judge `{judge}`",
                    ["attack/variant", *[s["run"] for s in summaries]],
                    [[v, *[_pct(s["asr_variant"].get(judge, {}).get(v)) for s in summaries]] for v in variants], []))
    return out


def tables(summaries: list[dict]) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """(title, header, rows, notes) — shared by report.md and report.html."""
    out = []
    judges = sorted({j for s in summaries for j in s["judges"]}, key=lambda j: PREFERRED.index(j)
                    if j in PREFERRED else 99)
    for judge in judges:
        out += _judge_tables(summaries, judge)
    pos = [[s["run"], str(s["refusal_position"]["all_harmful"]["n_refusals"]),
            _frac(s["refusal_position"]["all_harmful"]["at_start_fraction"]),
            _frac(s["refusal_position"]["direct"]["at_start_fraction"]),
            str(s["refusal_position"]["all_harmful"]["median"])] for s in summaries]
    out.append(("First refusal position (keyword phrases, model tokens)",
                ["run", "refusing answers", "at start (<5 tokens), all", "at start, direct", "median"], pos, []))
    help_rows = [[s["run"], _pct((s.get("helpfulness") or {}).get("answer_rate")),
                  _pct((s.get("helpfulness") or {}).get("check_pass"))] for s in summaries if s.get("helpfulness")]
    if help_rows:
        out.append(("Helpfulness (benign prompts)", ["run", "answer rate", "check pass"], help_rows, []))
    return out


def _md_cell(text: str) -> str:
    """A markdown table cell that shows the text as written: pipes, backticks, angle brackets and newlines escaped."""
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`").replace("<", "&lt;")
            .replace(">", "&gt;").replace("\n", " "))


def _frac(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def write_report(run_dirs: list[str | Path], out: str | Path, agreement_path: str | Path | None = None,
                 extra_tables: list | None = None, extra_plots: dict[str, bytes] | None = None,
                 baseline: str | Path | None = None) -> Path:
    """Summarise each run, write summary.json + report.md + report.html (+ PNGs) into `out`; `agreement_path`
    replaces the shipped judge agreement file. `extra_tables` ((title, header, rows, notes), e.g. the fine-tuning
    attack tables of `safekeel.tamper_report.report_tables`) and `extra_plots` join the report after the runs' own.
    `baseline` (one of the runs, or another) adds the paired differences of every other run from it."""
    if not run_dirs:
        raise SafekeelError("give at least one run directory")
    summaries = []
    for d in run_dirs:
        d = Path(d)
        if not (d / "rows.jsonl").exists():
            raise SafekeelError(f"{d}: not a run directory (no rows.jsonl)")
        summaries.append(summarize(d, agreement_path=agreement_path))
    out = Path(out)
    judge = main_judge(summaries) or "keyword"
    plots = {"asr_per_attack.png": plot_asr(summaries, judge), "refusal_position.png": plot_positions(summaries)}
    rec = plot_recovery(summaries, judge)
    if rec:
        plots["recovery_curve.png"] = rec
    plots.update(extra_plots or {})
    for name, data in plots.items():
        write_bytes(out / name, data)
    write_json(out / "summary.json", {"main_judge": judge, "runs": summaries})
    tabs = tables(summaries)
    if baseline is not None:
        from .compare import compare, compare_tables

        others = [d for d in run_dirs if Path(d).resolve() != Path(baseline).resolve()]
        names = {str(d): s["run"] for d, s in zip(run_dirs, summaries, strict=True)}
        if others:
            result = compare(others, baseline, judge)
            write_json(out / "compare.json", result)
            tabs += compare_tables(result, name=lambda r: names.get(str(r), Path(r).name))
    tabs += list(extra_tables or [])
    from .examples import examples_table

    tabs.append(examples_table(run_dirs, [s["run"] for s in summaries], judge))
    md = [f"# safekeel evaluation report\n\nRuns: {', '.join(s['run'] for s in summaries)}. Main judge: `{judge}`. "
          "ASR = share of judged answers the judge calls attack successes; judge errors are excluded from n and "
          "shown as err. Where a judge's agreement with human labels was measured, ASR is also shown corrected for "
          "the judge's errors.\n"]
    for title, header, rows, notes in tabs:
        md.append(f"## {title}\n\n| {' | '.join(header)} |\n|{'---|' * len(header)}\n"
                  + "\n".join(f"| {' | '.join(_md_cell(c) for c in r)} |" for r in rows) + "\n"
                  + "".join(f"\n{n}\n" for n in notes))
    md += [f"![{n}]({n})\n" for n in plots]
    write_text(out / "report.md", "\n".join(md))
    body = [f"<h1>safekeel evaluation report</h1><p>Runs: {html.escape(', '.join(s['run'] for s in summaries))}. "
            f"Main judge: <code>{judge}</code>. Judge errors are excluded from n and shown as err.</p>"]
    for name, data in plots.items():
        body.append(f'<figure><img alt="{name}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'
                    f"<figcaption>{name}</figcaption></figure>")
    for title, header, rows, notes in tabs:
        body.append(f"<h2>{html.escape(title.replace('`', ''))}</h2><table><tr>"
                    + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
                    + "".join("<tr>" + "".join(f"<td>{html.escape(c.replace('**', ''))}</td>" for c in r) + "</tr>"
                              for r in rows) + "</table>"
                    + "".join(f"<p class='note'>{html.escape(n.replace('`', ''))}</p>" for n in notes))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px}th{background:#f3f3f3}"
             "img{max-width:100%}figure{margin:1em 0}")
    write_text(out / "report.html", f"<!doctype html><html><head><meta charset='utf-8'><title>safekeel report</title>"
               f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
    return out
