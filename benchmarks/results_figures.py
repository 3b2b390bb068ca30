"""The hand-written figures of `results_blocks.py`: each formats one result file in benchmarks/results/ (a judge
table, the split sizes, the demo's table, an SSAH grid) or shows a table a script's `--export` already wrote."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _load(name: str) -> dict | list | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}"


def ci(m: dict | None) -> str:
    if not m or m.get("rate", m.get("value")) is None:
        return "–"
    v = m.get("rate", m.get("value"))
    return f"{100 * v:.0f}% [{100 * m['ci'][0]:.0f}, {100 * m['ci'][1]:.0f}]"


def kappa(m: dict) -> str:
    k = m["kappa"]
    if k.get("value") is None:
        return "undefined"
    return f"{k['value']:.2f} [{k['ci'][0]:.2f}, {k['ci'][1]:.2f}]" if k.get("ci") else f"{k['value']:.2f}"


def judge_block() -> str:
    r = _load("judge_formats.json")
    if r is None:
        return "(not measured yet: `python benchmarks/judge_formats.py --write`)"
    lines = [f"`harm-clf` ({r.get('version', '')}) against people, on requests it never saw (the split registry's "
             f"test split; measured {r['measured']}, {r['machine']}, `{r['command']}`). Kappa [95% CI, requests "
             "resampled], precision, recall; the format sets render the same labelled answers as the attack asks:",
             "", "| label set | n | kappa | precision | recall | keyword kappa |", "|---|---|---|---|---|---|"]
    for spec, s in r["test"].items():
        m, kw = s["judges"].get("harm-clf", {}).get("unsafe"), s["judges"].get("keyword", {}).get("unsafe")
        if m:
            lines.append(f"| {spec} | {m['n']} | {kappa(m)} | {ci(m['precision'])} | {ci(m['recall'])} | "
                         f"{kappa(kw) if kw else '–'} |")
    oof = r["oof"]["pyrit-harm"]["judges"]["harm-clf"]["unsafe"]
    lines += ["", f"All 984 PyRIT answers, each scored by heads that never saw its request: kappa {kappa(oof)}, "
              f"precision {ci(oof['precision'])}, recall {ci(oof['recall'])}."]
    code = r["test"].get("guideline@test:codeattack", {}).get("judges", {}).get("harm-clf", {})
    refusal_in_code = code.get("unsafe", {}).get("per_condition", {}).get("codeattack/program/refusal")
    if refusal_in_code:
        lines.append(f"A refusal appended inside a CodeAttack program is called safe in "
                     f"{ci(refusal_in_code['accuracy'])} of {refusal_in_code['n']} held-out cases.")
    o = r.get("over_refusal", {})
    if o:
        lines.append("Over-refusal of the base model (declined, judge `harm-clf` / `keyword`): benign-but-scary "
                     f"{ci(o['benign-scary/harm-clf'])} / {ci(o['benign-scary/keyword'])} (n = "
                     f"{o['benign-scary/harm-clf']['n']}), benign {ci(o['benign/harm-clf'])} / "
                     f"{ci(o['benign/keyword'])} (n = {o['benign/harm-clf']['n']}).")
    ref = r["test"].get("pyrit-refusal@test", {}).get("judges", {}).get("harm-clf", {}).get("refusal")
    if ref:
        lines.append(f"Refusal flag against PyRIT's refusal labels (test split, off-topic = refusal there, not here): "
                     f"accuracy {ci(ref['accuracy'])} (n = {ref['n']}).")
    sp = r.get("speed_rows_per_s") or {}
    if sp:
        lines.append("Judging speed, unseen answers: " + ", ".join(
            f"{v['rows_per_s']} rows/s ({k}, {v['words_per_answer']} words per answer)" for k, v in sp.items())
            + (f" ({r['speed_note']})." if r.get("speed_note") else "."))
    return "\n".join(lines)


def splits_block() -> str:
    """Sizes per source and split, straight from the registry (deterministic over the pinned sources)."""
    from safekeel.data import splits

    index = splits.test_index()
    lines = ["| source | requests | train | val | test | quarantined (near-duplicate of a test request) |",
             "|---|---|---|---|---|---|"]
    for name in splits.REGISTERED:
        reqs = list(dict.fromkeys(splits.normalise(t) for t in splits.registered_requests(name)))
        part = [splits.split_of(t) for t in reqs]
        quarantined = sum(1 for t, p in zip(reqs, part, strict=True) if p != "test" and index.match(t))
        lines.append(f"| {name} | {len(reqs)} | {part.count('train')} | {part.count('val')} | {part.count('test')} "
                     f"| {quarantined} |")
    return "\n".join(lines)


def choice_block() -> str:
    r = _load("judge_choose.json")
    if r is None:
        return "(not measured yet: `python benchmarks/judge_formats.py --choose`)"
    lines = ["| val set | n | raw answer | read as a person reads it | read + CodeAttack-rendered training rows |",
             "|---|---|---|---|---|"]
    specs = dict.fromkeys(k.split(" ")[0] for k in r)
    for spec in specs:
        cells = [r.get(f"{spec} {tag}") for tag in ("read=False trained_on_formats=-",
                                                     "read=True trained_on_formats=-",
                                                     "read=True trained_on_formats=codeattack")]
        lines.append(f"| {spec} | {cells[1]['n']} | " + " | ".join(kappa(c) if c else "–" for c in cells) + " |")
    return "\n".join(lines)


def prefixes_block() -> str:
    r = _load("wide_prefixes.json")
    if r is None:
        return "(not measured yet: `python benchmarks/derta_recipe.py --prefixes`)"
    c = r["counts"]
    per = ", ".join(f"{s} {v['kept']} of {v['asked']}" for s, v in c["by_source"].items())
    return (f"Wide held-out set: {r['behaviors']} test-split behaviors, taken in turn from five sources. Real "
            f"harmful prefixes for the k-token attack: {c['uncensorbench (own harmful answers)']} uncensorbench "
            f"answers, plus the base model's own answers (64 tokens, greedy) that `harm-clf` calls unsafe: "
            f"{c['kept']} of {c['asked']} ({per}). Measured {r['measured']}, `{r['command']}`.")


def recipe_table(name: str, args: str):
    """A block showing the table a `derta_recipe.py --report --export` wrote into results/NAME."""
    def block() -> str:
        r = _load(name)
        return r["table"] if r else f"(not measured yet: `python benchmarks/derta_recipe.py {args}`)"
    return block


def derta_triples_block() -> str:
    r = _load("derta_triples.json")
    if r is None:
        return "(not measured yet: `python benchmarks/derta_triples.py --samples 2 --export ...`)"
    lines = ["| source (train split) | prompts | answers harm-clf calls unsafe (sampled) | triples (refusal kept) |",
             "|---|---|---|---|"]
    for name, c in r["by_source"].items():
        lines.append(f"| {name} | {c['asked']} | {c['harmful']} ({c.get('harmful_sampled', 0)}) | {c['triples']} |")
    asked, harmful = (sum(c[k] for c in r["by_source"].values()) for k in ("asked", "harmful"))
    sampled = sum(c.get("harmful_sampled", 0) for c in r["by_source"].values())
    lines.append(f"| all | {asked} | {harmful} ({sampled}) | {r['triples']} |")
    return "\n".join(lines) + (f"\n\n(greedy answers, then up to {r['samples']} sampled at T = {r['temperature']} for "
                               f"prompts still without an unsafe one; {r['max_new_tokens']} new tokens; "
                               f"`{r['command']}`, {r['measured']})")


def ssah_benign(name: str, only: str | None = None):
    """A block showing an `ssah_benign.py --export` file: the gate, the seeds table, every finished seed-0 cell (of
    the `only` aligned model, else of each)."""
    def block() -> str:
        r = _load(name)
        if r is None:
            return f"(not measured yet: `python benchmarks/ssah_benign.py --gate --export benchmarks/results/{name}`)"
        out = []
        for aligned, g in r["gate"].items():
            if only in (None, aligned):
                out += [f"Benign fine-tune, no defense, on the {aligned}-aligned model:", "", g["table"], ""]
        for aligned, g in r["grid"].items():
            if only not in (None, aligned):
                continue
            table = g["table"].replace("# ", "### ", 1).replace("\n## ", "\n#### ")  # inside RESULTS' sections
            out += [f"Defenses on the {aligned}-aligned model:", "", table, ""]
            if g.get("seed0_table") and g["seed0_table"] != g["table"]:
                out += [g["seed0_table"].replace("# ", "### ", 1), ""]
            if g.get("ppl_by_seed"):
                fmt = lambda xs: " / ".join("-" if x is None else f"x{x:.2f}" for x in xs)  # noqa: E731
                pp = g["ppl_by_seed"]
                out += [f"Perplexity against the un-attacked model, per seed ({' / '.join(map(str, pp['seeds']))}; "
                        "- where the seed lacks the cell):", "", "| cell | task ppl | utility ppl |", "|---|---|---|"]
                out += [f"| {c} | {fmt(p['task'])} | {fmt(p['utility'])} |" for c, p in pp["cells"].items()]
                out += [""]
        return "\n".join(out) + f"\n(`{r['command']}`, {r['measured']}, {r['machine']})"
    return block


def exported_table(name: str, command: str):
    """A block showing the table a script's `--export` wrote into results/NAME."""
    def block() -> str:
        r = _load(name)
        if r is None:
            return f"(not measured yet: `{command}`)"
        return f"{r['table']}\n\n(`{r['command']}`, {r['measured']}, {r['machine']})"
    return block


def units_overlap_block(name: str = "units_overlap.json") -> str:
    r = _load(name)
    if r is None:
        return "(not measured yet: `python benchmarks/units_overlap.py`)"
    pairs = ["halves", "samples", "ssah vs wanda", "ssah vs snip", "wanda vs snip"]
    lines = ["| units | count | " + " | ".join(pairs) + " | two random sets |", "|---|---|" + "---|" * (len(pairs) + 1)]
    for cls, o in r["overlap"].items():
        lines.append(f"| {cls} | {o['units']} of {r['units']} | " + " | ".join(
            "-" if o.get(p) is None else f"{o[p]:.2f}" for p in pairs) + f" | {o['chance']:.2f} |")
    pool, share = r.get("pool", {}), r.get("samples_share")
    samples = (f"the two samples share {share['safety']} of {r['n']} safety and {share['utility']} utility examples"
               if share else f"samples of up to {r['n']} share most examples")
    refusals = "the model's own refusals" if r.get("safety") == "own" else "bundled refusals"
    return "\n".join(lines) + (f"\n\n(Jaccard of the unit sets; {r['model']}, {refusals}; pools of {pool.get('safety')} "
                               f"safety and {pool.get('utility')} utility train-split examples: halves are disjoint, "
                               f"{samples}; {r['snip_examples']} examples per method; `{r['command']}`, "
                               f"{r['measured']})")


def demo_block(name: str = "demo_summary.json") -> str:
    r = _load(name)
    if r is None:
        return "(not measured yet: `make demo`)"
    cols = [("asr_direct", "ASR direct"), ("refusal_direct", "refusal direct"), ("asr_prefill", "ASR prefill"),
            ("refusal_prefill", "refusal prefill"), ("asr_prefix_k10", "ASR prefix k=10"),
            ("refusal_prefix_k10", "refusal prefix k=10"), ("over_refusal", "over-refusal"),
            ("benign_answer_rate", "benign answered")]
    lines = ["| model | " + " | ".join(h for _, h in cols) + " |", "|---|" + "---|" * len(cols)]
    for row in r["results"]:
        lines.append(f"| {row['model']} | " + " | ".join(f"{pct(row.get(c))}%" if row.get(c) is not None else "–"
                                                         for c, _ in cols) + " |")
    if "command" in r:  # a variant's run (not `make demo` as it is): what it ran and how long it took
        lines.append(f"\n({r['command']}; {r['eval_n']} held-out harmful prompts per attack; demo wall time "
                     f"{r['wall_seconds']:.0f} s, fresh clone with the venv bootstrap {r['fresh_clone_seconds']} s; "
                     f"{r['measured']}, {r['machine']})")
    return "\n".join(lines)
