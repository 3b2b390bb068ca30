"""`derta_recipe.py --report`'s tables: rates per arm (seeds pooled, their range in brackets) and paired differences
between arms from each (arm, seed)'s scored rows, or from the flags an earlier `--export` archived."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

from derta_sets import KS

from safekeel.io import read_jsonl_rows, write_json

SETS = ["direct", "prefill", *[f"prefix_k{k}" for k in KS]]
BENIGN_SETS = ["benign", "scary"]  # refusal on them, paired: 1 - benign answered, and over-refusal
PAIRED_SETS = SETS + BENIGN_SETS  # the rows paired statistics (and their --export archive) keep
COLS = ["refusal_direct", "refusal_prefill", *[f"refusal_prefix_k{k}" for k in KS], "asr_prefill",
        "benign_answered", "benign_check", "over_refusal", "collapse", "qa"]


def export(path: str, table_text: str, **extra) -> None:
    """An `--export` file results_blocks.py renders: the table, the date, the machine and the command that printed
    it (this process's own), plus whatever rows the script keeps beside them."""
    write_json(Path(path), {"measured": time.strftime("%Y-%m-%d"),
                            "machine": f"{platform.machine()}, 2-core CPU, no GPU",
                            "command": f"python benchmarks/{Path(sys.argv[0]).name} " + " ".join(sys.argv[1:]),
                            "table": table_text, **extra})


def table(results: list[dict]) -> str:
    head = "| arm | " + " | ".join(c.replace("refusal_", "ref ").replace("prefix_", "") for c in COLS) + " |"
    lines = [head, "|" + "---|" * (len(COLS) + 1)]
    for r in results:
        cells = []
        for c in COLS:
            m = r.get(c)
            cells.append("-" if not m or m["rate"] is None else
                         f"{100 * m['rate']:.0f} [{100 * m['ci'][0]:.0f},{100 * m['ci'][1]:.0f}] (n={m['n']})")
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(m: dict | None) -> str:
    if not m or m.get("rate") is None:
        return "-"
    return f"{100 * m['rate']:.0f} [{100 * m['ci'][0]:.0f}, {100 * m['ci'][1]:.0f}]"


def mean_over_seeds(rows: list[dict]) -> dict:
    """One arm's row: rates averaged over its seeds (the CI of a single seed when there is one), seeds listed."""
    if len(rows) == 1:
        return rows[0]
    out = {"model": f"{rows[0]['model']} (mean of seeds {', '.join(str(r.get('seed', 0)) for r in rows)})"}
    for key, m in rows[0].items():
        if isinstance(m, dict) and "rate" in m and "k" in m:
            ms = [r[key] for r in rows if r.get(key) and r[key]["rate"] is not None]
            k, n = sum(x["k"] for x in ms), sum(x["n"] for x in ms)
            out[key] = {"rate": k / n if n else None, "n": n, "k": k,
                        "ci": [min(x["rate"] for x in ms), max(x["rate"] for x in ms)] if ms else None}
    return out


def report(results: list[dict]) -> str:
    """Two tables for RESULTS.md: refusal (keyword) / ASR (harm-clf) per attack; usefulness and collapse."""
    sets = SETS
    n = results[0]
    safety = ["| arm | " + " | ".join(s.replace("prefix_", "prefix ") for s in sets) + " |", "|---|" + "---|" * len(sets)]
    for r in results:
        safety.append(f"| {r['model']} | " + " | ".join(f"{_cell(r.get('refusal_' + s))} / {_cell(r.get('asr_' + s))}"
                                                     for s in sets) + " |")
    cols = ["benign_answered", "benign_check", "qa", "over_refusal", "collapse"]
    use = ["| arm | " + " | ".join(cols) + " | trainable | train s |", "|---|" + "---|" * (len(cols) + 2)]
    for r in results:
        frac = r.get("trainable_fraction")
        use.append(f"| {r['model']} | " + " | ".join(_cell(r.get(c)) for c in cols)
                   + f" | {'-' if frac is None else f'{frac:.1%}'} | {r.get('train_seconds') or r.get('seconds', {}).get('train', '-')} |")
    ns = ", ".join(f"{c} n = {(n.get(c) or {}).get('n')}" for c in ["refusal_direct", *cols])
    return "\n".join(safety) + "\n\n" + "\n".join(use) + f"\n\n({ns})"


def eval_rows_path(out: Path, split_name: str, res: dict) -> Path:
    return out / f"eval-{split_name}" / res["model"] / f"seed-{res.get('seed', 0)}.jsonl"


FLAGS = ("refusal", "unsafe")


def flag_rows(out: Path, split_name: str, res: dict, archive: dict | None = None,
              required: bool = True) -> list[dict] | None:
    """One (arm, seed)'s scored rows: its eval file, else the flags an earlier `--export` archived (runs/ does not
    outlive a session; the archive keeps what paired statistics need, no answer text)."""
    path = eval_rows_path(out, split_name, res)
    if path.exists():
        return list(read_jsonl_rows(path))
    packed = (archive or {}).get(f"{res['model']}/seed-{res.get('seed', 0)}")
    if packed is None:
        if not required:
            return None
        sys.exit(f"{path}: no eval rows, and no --archive holds {res['model']} seed {res.get('seed', 0)}")
    return [{"id": i, "set": s, **dict(zip(FLAGS, v, strict=True))} for i, s, *v in packed]


def pack_flags(out: Path, split_name: str, results: list[dict], archive: dict | None = None) -> dict:
    """{"arm/seed-N": [[behavior id, set, refusal, unsafe], ...]}: the archive `--export` writes (runs whose rows
    are gone, archived by no earlier export, are left out)."""
    packed = {}
    for r in results:
        rows = flag_rows(out, split_name, r, archive, required=False)
        if rows is not None:
            packed[f"{r['model']}/seed-{r.get('seed', 0)}"] = [[row["id"], row["set"], *(row.get(f) for f in FLAGS)]
                                                              for row in rows if row["set"] in PAIRED_SETS]
    return packed


def paired(out: Path, split_name: str, results: list[dict], pairs: list[tuple[str, str]],
           archive: dict | None = None) -> str:
    """RESULTS table: each (arm, baseline) pair's paired difference per attack (refusal, keyword; ASR, harm-clf),
    over the same behaviors, seeds kept paired (a one-seed baseline stands beside every seed)."""
    from safekeel.eval.compare import diff_text, replicate_baseline
    from safekeel.stats import paired_difference

    def flags(arm: str) -> dict[tuple[str, str], dict[tuple, bool]]:
        """{(flag, set): {(behavior, seed, set): value}} of one arm, its rows read once."""
        out_: dict[tuple[str, str], dict[tuple, bool]] = {}
        for res in (r for r in results if r["model"] == arm):
            for row in flag_rows(out, split_name, res, archive):
                for flag in FLAGS:
                    if row["set"] in PAIRED_SETS and row.get(flag) is not None:
                        key = (row["id"], res.get("seed", 0), row["set"])
                        out_.setdefault((flag, row["set"]), {})[key] = bool(row[flag])
        return out_

    read = {arm: flags(arm) for arm in dict.fromkeys(a for pair in pairs for a in pair)}

    def cell(pair: tuple[str, str], flag: str, s: str) -> str:
        b = read[pair[0]].get((flag, s), {})
        d = paired_difference(replicate_baseline(read[pair[1]].get((flag, s), {}), {k[1] for k in b}), b)
        return "-" if d["diff"] is None else diff_text(d, digits=0, p_digits=2)

    one = len({b for _, b in pairs}) == 1  # one baseline: it names the column; several: each row names its own
    head, name = (f"arm - {pairs[0][1]}", lambda p: p[0]) if one else ("arm - baseline", lambda p: f"{p[0]} - {p[1]}")
    lines = [f"| {head} | " + " | ".join(s.replace("prefix_", "prefix ") for s in SETS) + " |",
             "|---|" + "---|" * len(SETS)]
    lines += [f"| {name(p)} | " + " | ".join(" / ".join(cell(p, f, s) for f in FLAGS) for s in SETS) + " |"
              for p in pairs]
    text = "\n".join(lines) + "\n\n(refusal difference, keyword / ASR difference, harm-clf; points [95% CI resampling " \
        "behaviors], exact sign-flip p over behaviors)"
    if not any(("refusal", s) in read[b] for _, b in pairs for s in BENIGN_SETS):
        return text
    lines = [f"| {head} | benign refused | benign-but-scary refused (over-refusal) |", "|---|---|---|"]
    lines += [f"| {name(p)} | " + " | ".join(cell(p, "refusal", s) for s in BENIGN_SETS) + " |" for p in pairs]
    return text + "\n\n" + "\n".join(lines) + "\n\n(keyword refusal difference on the same prompts, points " \
        "[95% CI resampling prompts], exact sign-flip p over prompts)"
