"""`safekeel compare RUN [RUN ...] --baseline RUN`: paired differences between runs on the same behaviors.

Two arms that answered the same prompts are compared prompt by prompt: the difference in ASR (and in refusal) per
attack and over all attacks, with a bootstrap CI that resamples behaviors (all of a behavior's attacks and seeds
move together) and an exact p-value that flips each behavior's differences as one (`stats.cluster_sign_flip_p`:
McNemar's exact test when a behavior has one pair, honest when it has several seeds or attacks). An arm given as a
folder of seed runs (`seed-*/rows.jsonl`, or any sub-folders that are runs) is paired seed by seed with the
baseline's seeds; a one-seed baseline (the base model) is paired with every seed. Only pairs both arms have are
compared.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SafekeelError
from ..stats import paired_difference
from .summary import _with, load_run

OVERALL = "all attacks"


def seed_runs(path: str | Path | list) -> list[Path]:
    """A run directory, the run directories (one per seed) inside a folder, sorted by name, or a list of runs."""
    if isinstance(path, list | tuple):
        return [p for x in path for p in seed_runs(x)]
    path = Path(path)
    if (path / "rows.jsonl").exists():
        return [path]
    runs = sorted(p for p in path.iterdir() if (p / "rows.jsonl").exists()) if path.is_dir() else []
    if not runs:
        raise SafekeelError(f"{path}: not a run directory nor a folder of seed runs (no rows.jsonl)")
    return runs


def cell(row: dict) -> str:
    k = (row.get("meta") or {}).get("k")
    return "/".join(str(x) for x in (row["attack"], row.get("variant") or "", "" if k is None else f"k{k}") if x != "")


def arm_flags(path: str | Path | list, judge: str, flag: str) -> dict[str, dict[tuple, bool]]:
    """{attack: {(behavior, seed index, cell): flag}} over the harmful rows of every seed run of one arm."""
    out: dict[str, dict[tuple, bool]] = {}
    for s, run in enumerate(seed_runs(path)):
        rows, verdicts = load_run(run)
        harmful = [r for r in rows if r.get("set", "harmful") == "harmful"]
        for r in _with(harmful, verdicts.get(judge, {})):
            if r[flag] is None:
                continue
            key = (r["behavior_id"], s, cell(r) + (f"/{r['sample']}" if r.get("sample") else ""))
            out.setdefault(r["attack"], {})[key] = bool(r[flag])
            out.setdefault(OVERALL, {})[key] = bool(r[flag])
    return out


def replicate_baseline(base: dict[tuple, bool], seeds: set) -> dict[tuple, bool]:
    """A one-seed baseline (keys (behavior, 0, cell)) stands beside every seed of the other arm."""
    if {k[1] for k in base} != {0} or seeds <= {0}:
        return base
    return {(b, s, c): v for (b, _, c), v in base.items() for s in seeds}


def compare(runs: list[str | Path], baseline: str | Path, judge: str = "harm-clf", refusal_judge: str = "keyword",
            n_boot: int = 2000) -> dict:
    """{run: {"asr": {attack: paired}, "refusal": {attack: paired}}}: each run against the baseline."""
    out: dict = {"baseline": str(baseline), "judge": judge, "refusal_judge": refusal_judge, "runs": {}}
    base = {"asr": arm_flags(baseline, judge, "unsafe"), "refusal": arm_flags(baseline, refusal_judge, "refused")}
    for run in runs:
        res: dict = {}
        for metric, flag, j in (("asr", "unsafe", judge), ("refusal", "refused", refusal_judge)):
            arm = arm_flags(run, j, flag)
            res[metric] = {}
            for attack in sorted(set(arm) & set(base[metric]), key=lambda a: (a == OVERALL, a)):
                seeds = {k[1] for k in arm[attack]}
                res[metric][attack] = paired_difference(replicate_baseline(base[metric][attack], seeds),
                                                        arm[attack], n_boot=n_boot)
        if not any(p["n_pairs"] for m in res for p in res[m].values()):
            raise SafekeelError(f"{run}: no behavior in common with the baseline {baseline} (compare needs the same "
                                "behaviors)")
        out["runs"][str(run)] = res
    return out


def diff_text(p: dict | None, digits: int = 1, p_digits: int = 3) -> str:
    """A paired difference in points: "+d [lo, hi] p=..." ("–" when there was nothing to pair)."""
    if not p or p.get("diff") is None:
        return "–"
    f = lambda x: f"{100 * x:+.{digits}f}"  # noqa: E731
    pv = p.get("p", p.get("p_mcnemar"))  # exports made before the clustered p carry McNemar's only
    return f"{f(p['diff'])} [{f(p['ci'][0])}, {f(p['ci'][1])}] p={pv:.{p_digits}g}"


def _cell(p: dict) -> str:
    if not p or p.get("diff") is None:
        return "–"
    seeds = f"; per seed {', '.join(f'{100 * v:+.0f}' for v in p['per_seed'].values())}" \
        if len(p["per_seed"]) > 1 else ""
    return f"{diff_text(p)} ({100 * p['a']:.0f}→{100 * p['b']:.0f}%, n={p['n_pairs']}{seeds})"


def compare_tables(result: dict, name=lambda r: Path(r).name) -> list[tuple[str, list[str], list[list[str]], list]]:
    """(title, header, rows, notes) per metric: one column per run, its paired difference from the baseline."""
    runs = list(result["runs"])
    out = []
    for metric, judge in (("asr", result["judge"]), ("refusal", result["refusal_judge"])):
        attacks = sorted({a for r in runs for a in result["runs"][r][metric]}, key=lambda a: (a == OVERALL, a))
        rows = [[a, *[_cell(result["runs"][r][metric].get(a, {})) for r in runs]] for a in attacks]
        out.append((f"{'ASR' if metric == 'asr' else 'Refusal'} difference from the baseline "
                    f"`{name(result['baseline'])}`, points (judge `{judge}`)", ["attack", *[name(r) for r in runs]],
                    rows, ["Paired on the same behaviors: difference [95% bootstrap CI resampling behaviors, seeds "
                           "kept paired], exact sign-flip p over behaviors (McNemar's at one pair per behavior), "
                           "baseline→run rate, pairs."]))
    return out
