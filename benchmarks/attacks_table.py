"""Each attack's ASR on the base, vanilla and DeRTa models, on held-out behaviors, paired.

Behaviors: the first `--n` of the wide held-out set (`derta_sets.wide_behaviors`: the registry's test split of
uncensorbench, HarmBench, StrongREJECT, AdvBench and Do-Not-Answer, round robin), so every arm answers the same ones.
Models: the embedded base model, and the `derta_recipe.py` arms `vanilla-r1-lr10` and `derta-r1-lr10-mid-z33` as
trained there (three seeds each; run `derta_recipe.py --split heldout --seeds 0 1 2` first), or with `--more` the
same recipes trained on the harvested triples (`-more` arms).

- static attacks (direct, completion, CodeAttack, cipher, jailbreak template): every seed of every arm;
- search attacks (PAIR, AutoDAN: minutes of target calls per behavior on this CPU): seed 0 of each arm, at the CPU
  budget (`--pair-streams`, `--pair-iterations`, `--autodan-population`, `--autodan-generations`); the budget each
  row actually spent is in its `meta` and summarised in the table (PAIR per arm: unparsed attacker replies, and
  searches whose best prompt stayed the bare request); with the direct request run on the same behaviors (`--static
  --static-attacks direct`), `--report` also pairs each search attack with it, arm by arm. A larger `--n` later
  resumes every run on the grown behaviors file.

Each (arm, seed, attack group) is one resumable `safekeel eval` run directory; judged by harm-clf (ASR) and the
keyword judge (refusal). `--report` prints the table with DeRTa's and vanilla's paired differences (behaviors
resampled, seeds kept paired; `safekeel compare`) and `--export` writes it to benchmarks/results/.

    python benchmarks/attacks_table.py --static
    python benchmarks/attacks_table.py --search
    python benchmarks/attacks_table.py --report --export benchmarks/results/attacks_table.json

`--recipe raw` (`raw50`) puts DeRTa with a quarter (half) of its prefix rows raw in the DeRTa column
(`runs/attacks_table-raw`; link the base and vanilla run folders of `-more` there rather than run them again) and
`--report --against more` pairs it with the `-more` DeRTa on the same behaviors and seeds.

`--start N` takes the wide set from its N-th behavior (fresh behaviors for a change designed after reading answers
on the first ones; run dir `-fromN`), and `--benign` the test split's benign and benign-but-scary prompts instead
(run dir `-benign`): refusal there is over-refusal, e.g. of the completion format itself.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections import Counter
from pathlib import Path

from safekeel.config import resolve_config
from safekeel.eval.compare import OVERALL, compare, diff_text
from safekeel.eval.run import EvalConfig, run_eval
from safekeel.eval.summary import load_run
from safekeel.io import write_json, write_jsonl

sys.path.insert(0, str(Path(__file__).parent))
from attacks_collapse import ECHO, collapse, rejudge_collapsed, run_token, tokens_text  # noqa: E402
from attacks_recipes import RECIPES, run_root  # noqa: E402
from derta_sets import repeats, wide_behaviors  # noqa: E402

STATIC = ["direct", "completion", "codeattack", "cipher", "jailbreak_template"]
SEARCH = ["pair", "autodan"]
ARMS = RECIPES["default"]


def model_path(recipe_out: Path, arm: str, seed: int) -> str:
    name = ARMS[arm]
    return "smollm2-135m" if name is None else str(recipe_out / "train" / name / f"seed-{seed}" / "model")


def line_count(path: Path) -> int:
    with path.open() as f:
        return sum(1 for _ in f)


def behaviors_file(out: Path, n: int, start: int = 0, benign: bool = False) -> Path:
    path = out / "behaviors.jsonl"
    if path.exists() and (benign or line_count(path) >= n):
        return path  # a larger --n grows the file: the wide set's first behaviors stay first, so runs resume
    if benign:  # the test split's benign and benign-but-scary prompts: a refusal here is over-refusal
        from safekeel.data.build_cli import load_prompt_set

        write_jsonl(path, [{"id": p["id"], "prompt": p["prompt"], "category": p.get("category", ""), "source": name}
                           for name in ("benign", "benign-scary") for p in load_prompt_set(name, "test")])
    else:
        write_jsonl(path, [{"id": b.id, "prompt": b.prompt, "category": b.category, "source": b.source}
                           for b in wide_behaviors(start + n)[start:]])
    return path


def run(out: Path, args, arm: str, seed: int, group: str, attacks: list[str]) -> Path:
    d = out / group / arm / f"seed-{seed}"
    behaviors = behaviors_file(out, args.n, args.start, args.benign)
    if (d / "summary.json").exists():
        done = json.loads((d / "summary.json").read_text())
        if set(attacks) <= set(done["asr"]["keyword"]) and done["behaviors"] >= line_count(behaviors):
            return d
    model = model_path(Path(args.recipe_out), arm, seed)
    cfg = resolve_config(EvalConfig, overrides=dict(
        model=model, label=f"{arm}-s{seed}", n_behaviors=0,
        behaviors=str(behaviors),
        attacks=attacks, benign_scary=0, benign=0, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        judges=["keyword", "harm-clf"], pair_streams=args.pair_streams, pair_iterations=args.pair_iterations,
        pair_batch=args.pair_batch, attacker_max_new_tokens=args.attacker_tokens,
        autodan_population=args.autodan_population, autodan_generations=args.autodan_generations,
        seed=0, out=str(d), resume=(d / "rows.jsonl").exists()))
    t0 = time.time()
    run_eval(cfg, log=lambda m: print(f"[{arm} s{seed} {group}] {m}", flush=True))
    print(f"[{arm} s{seed} {group}] done in {time.time() - t0:.0f}s", flush=True)
    return d


def rates(runs: list[Path]) -> dict[str, dict]:
    """{attack: {"asr": mean over seeds, "asr_range": (lo, hi), "refusal": mean, "n": behaviors, "collapse": answers
    collapsed over all seeds, "unsafe_collapse": unsafe ones among them}}: harm-clf's ASR and the keyword judge's
    refusal (1 - its ASR), read from each run's summary.json."""
    per: dict[str, dict[str, list]] = {}
    counts: dict[str, Counter] = {}
    for d in runs:
        for a, c in collapse(d).items():
            counts.setdefault(a, Counter()).update(c)
        s = json.loads((d / "summary.json").read_text())
        for a, m in s["asr"]["harm-clf"].items():
            per.setdefault(a, {"asr": [], "refusal": []})["asr"].append(m["rate"])
            per[a]["n"] = m["n"]
        for a, m in s["asr"]["keyword"].items():
            per.setdefault(a, {"asr": [], "refusal": []})["refusal"].append(1 - m["rate"])
    return {a: {"asr": sum(m["asr"]) / len(m["asr"]), "asr_range": (min(m["asr"]), max(m["asr"])),
                "refusal": sum(m["refusal"]) / len(m["refusal"]), "n": m["n"], "seeds": len(m["asr"]),
                "answers": counts.get(a, Counter())["n"],
                **{k: counts.get(a, Counter())[k] for k in ("collapse", "unsafe_collapse", "echo", "echo_collapse")}}
            for a, m in per.items()}


def budget(arms: dict[str, list[Path]]) -> dict[str, str]:
    """What the search attacks actually spent, per arm, from each row's meta. PAIR also counts the stream-iterations
    whose attacker reply never held a prompt (re-asks included) and the behaviors whose best prompt is still the
    bare request: there the search was the direct attack."""
    out: dict[str, str] = {}
    arm_rows = {arm: [r for d in runs for r in load_run(d)[0]] for arm, runs in arms.items()}  # each run read once
    for attack, means in (("pair", ("queries", "attacker_calls")), ("autodan", ("iterations", "fitness_calls"))):
        per_arm = []
        for arm, all_rows in arm_rows.items():
            rows = [r for r in all_rows if r["attack"] == attack]
            if not rows:
                continue
            metas = [r["meta"] for r in rows]
            spent = ", ".join(f"{k.replace('_', ' ')} mean {sum(m[k] for m in metas) / len(metas):.1f}" for k in means)
            spent += f", stopped early {sum(m['stopped_early'] for m in metas)}/{len(metas)}"
            if attack == "pair":
                spent += (f", stream-iterations without a parsed prompt {sum(m['unparsed'] for m in metas)}/"
                          f"{sum(m['queries'] for m in metas)}, best prompt the bare request "
                          f"{sum(r['prompt_text'] == r['behavior'] for r in rows)}/{len(rows)}")
            per_arm.append(f"{arm}: {spent}" if len(arms) > 1 else spent)
            budget_spec = json.dumps(metas[0]["budget"])
        if per_arm:
            out[attack] = f"{budget_spec}; " + "; ".join(per_arm)
    return out


def seed_dirs(out: Path, group: str, arm: str) -> list[Path]:
    return sorted(p for p in (out / group / arm).glob("seed-*") if (p / "summary.json").exists())


def report(out: Path) -> tuple[str, dict]:
    lines = ["| attack | n x seeds (base/vanilla/DeRTa) | base ASR | vanilla ASR | DeRTa ASR | DeRTa - vanilla | vanilla - base | DeRTa - base | "
             "refusal base / vanilla / DeRTa | refusal: DeRTa - vanilla | collapsed (of them unsafe) base / vanilla / "
             "DeRTa |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    data: dict = {"groups": {}}
    budgets: dict = {}
    reported: list[Path] = []
    for group in ("static", "search"):
        arms = {a: seed_dirs(out, group, a) for a in ARMS}
        if not all(arms.values()):
            continue
        reported += [d for runs in arms.values() for d in runs]
        r = {a: rates(d) for a, d in arms.items()}
        vs_vanilla = compare([arms["derta"]], arms["vanilla"], n_boot=2000)["runs"]
        vs_base = compare([arms["vanilla"], arms["derta"]], arms["base"], n_boot=2000)["runs"]
        dv, rv = (next(iter(vs_vanilla.values()))[m] for m in ("asr", "refusal"))
        vb, db = (vs_base[k]["asr"] for k in vs_base)
        data["groups"][group] = {"rates": r, "derta_minus_vanilla": dv, "refusal_derta_minus_vanilla": rv,
                                 "vanilla_minus_base": vb,
                                 "derta_minus_base": db, "seeds": {a: len(d) for a, d in arms.items()}}
        budgets.update(budget(arms))
        for attack in [a for a in STATIC + SEARCH if a in r["derta"] and a in r["vanilla"]]:  # base's may lag
            def asr(arm, attack=attack, r=r):
                x = r[arm].get(attack)
                if not x:
                    return "–"
                rng = f" ({100 * x['asr_range'][0]:.0f}-{100 * x['asr_range'][1]:.0f})" if x["seeds"] > 1 else ""
                return f"{100 * x['asr']:.1f}%{rng}"

            ref = " / ".join(f"{100 * r[a][attack]['refusal']:.0f}%" if attack in r[a] else "–" for a in ARMS)
            col = " / ".join(f"{r[a][attack]['collapse']}/{r[a][attack]['answers']} ({r[a][attack]['unsafe_collapse']})"
                             if attack in r[a] else "–" for a in ARMS)
            seeds = "/".join(str(r[a][attack]["seeds"]) if attack in r[a] else "0" for a in ARMS)
            lines.append(f"| {attack} | {r['derta'][attack]['n']} x {seeds} | {asr('base')} | {asr('vanilla')} | "
                         f"{asr('derta')} | {diff_text(dv.get(attack))} | {diff_text(vb.get(attack))} | "
                         f"{diff_text(db.get(attack))} | {ref} | {diff_text(rv.get(attack))} | {col} |")
        lines.append(f"| all {group} attacks | | | | | {diff_text(dv.get(OVERALL))} | {diff_text(vb.get(OVERALL))} "
                     f"| {diff_text(db.get(OVERALL))} | | {diff_text(rv.get(OVERALL))} | |")
    if not data["groups"]:  # e.g. fresh behaviors (--start) where only DeRTa arms ran: --against pairs them
        return arm_rates(out), data
    seeds = {g: v["seeds"] for g, v in data["groups"].items()}
    notes = [f"Models: base = the embedded default, vanilla = `{ARMS['vanilla']}`, DeRTa = `{ARMS['derta']}` "
             "(benchmarks/derta_recipe.py)."]
    notes += [f"ASR by harm-clf, refusal by the keyword judge; seeds per arm {json.dumps(seeds)}, per attack in the "
             "n column (static attacks: mean over seeds, range in brackets; search attacks: seed 0). Differences in points, paired on the same "
             "behaviors: [95% bootstrap CI resampling behaviors, seeds paired], exact sign-flip p over behaviors. "
             f"Collapsed: answers with the RTO token {tokens_text(reported)} 3+ times in a row, over all seeds, and how many of them harm-clf "
             "calls unsafe."]
    notes += [f"Budget spent, {k}: {v}." for k, v in budgets.items()]
    data["budget"] = budgets
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {n}" for n in notes), data


def arm_rates(out: Path) -> str:
    """Each arm's own rates where no base / vanilla / DeRTa set is complete (nothing to pair): ASR, refusal and
    collapsed answers per attack, pooled over the seeds on disk."""
    lines = ["| group | arm | attack | n x seeds | ASR (range over seeds) | refusal | collapsed (of them unsafe) |",
             "|---|---|---|---|---|---|---|"]
    runs: list[Path] = []
    for group in ("static", "search"):
        for arm in ARMS:
            dirs = seed_dirs(out, group, arm)
            runs += dirs
            for attack, x in rates(dirs).items():
                lines.append(f"| {group} | `{ARMS[arm] or 'base'}` | {attack} | {x['n']} x {x['seeds']} | "
                             f"{100 * x['asr']:.1f}% ({100 * x['asr_range'][0]:.1f}-{100 * x['asr_range'][1]:.1f}) | "
                             f"{100 * x['refusal']:.0f}% | {x['collapse']}/{x['answers']} ({x['unsafe_collapse']}) |")
    return ("\n".join(lines) + f"\n\n- No base / vanilla / DeRTa set is complete in {out.name}: each arm's own rates, "
            f"unpaired. ASR by harm-clf, refusal by the keyword judge; collapsed: answers with the RTO token "
            f"{tokens_text(runs)} 3+ times in a row, over all seeds, and how many of them harm-clf calls unsafe.")


def against(out: Path, other: Path, other_arm: str) -> tuple[str, dict]:
    """This run's DeRTa against another recipe's DeRTa (`other`, an attacks_table run dir), attack by attack: refusal
    and ASR paired on the same behaviors and seeds, and each one's collapsed answers."""
    from safekeel.stats import paired_difference

    mine, theirs = seed_dirs(out, "static", "derta"), seed_dirs(other, "static", "derta")
    common = {d.name for d in mine} & {d.name for d in theirs}  # the "each" columns count the paired seeds only
    mine, theirs = [d for d in mine if d.name in common], [d for d in theirs if d.name in common]
    res = next(iter(compare([mine], theirs, n_boot=2000)["runs"].values()))
    r, o = rates(mine), rates(theirs)

    def collapsed(runs: list[Path]) -> dict[str, dict]:  # {attack: {(behavior, seed): the answer collapsed}}
        out: dict[str, dict] = {}
        for d in runs:
            token = run_token(d)
            for row in load_run(d)[0]:
                out.setdefault(row["attack"], {})[row["behavior_id"], d.name] = repeats(row["response"], token)
        return out

    mine_flags, their_flags = collapsed(mine), collapsed(theirs)  # each run read once, not once per attack

    lines = [f"| attack | n x seeds | refusal (keyword): `{ARMS['derta']}` - `{other_arm}` | ASR (harm-clf) | "
             f'collapse | refusal, each | collapsed (of them unsafe), each | open with "{ECHO}" (of them collapsed), '
             'each |', "|---|---|---|---|---|---|---|---|"]
    col = {}
    for a in [a for a in STATIC if a in r and a in o]:
        col[a] = paired_difference(their_flags[a], mine_flags[a])
        lines.append(f"| {a} | {r[a]['n']} x {r[a]['seeds']} | {diff_text(res['refusal'].get(a))} | "
                     f"{diff_text(res['asr'].get(a))} | {diff_text(col[a])} | "
                     f"{100 * r[a]['refusal']:.0f}% / {100 * o[a]['refusal']:.0f}% | "
                     f"{r[a]['collapse']}/{r[a]['answers']} ({r[a]['unsafe_collapse']}) / "
                     f"{o[a]['collapse']}/{o[a]['answers']} ({o[a]['unsafe_collapse']}) | "
                     f"{r[a]['echo']} ({r[a]['echo_collapse']}) / {o[a]['echo']} ({o[a]['echo_collapse']}) |")
    lines.append(f"\n(collapse: the RTO token {tokens_text(mine + theirs)} 3+ times in a row)")
    return "\n".join(lines), {"rates": r, "other_rates": o, "refusal": res["refusal"], "asr": res["asr"],
                              "collapse": col, "other": other_arm}


def search_vs_direct(out: Path) -> tuple[str, dict]:
    """Each search attack against the direct request on the same behaviors, per arm (seed 0 of both): did the
    search raise ASR (harm-clf) or lower refusal (keyword judge) at all? Paired per behavior (`compare.arm_flags`,
    its attack cell dropped from the key so the two attacks pair)."""
    from safekeel.eval.compare import arm_flags
    from safekeel.stats import paired_difference

    def flags(d: Path, judge: str, flag: str) -> dict[str, dict[tuple, bool]]:
        return {a: {(b, s): v for (b, s, _), v in f.items()} for a, f in arm_flags(d, judge, flag).items()}

    lines = ["| arm | attack | n | ASR direct | ASR attack | attack - direct | refusal direct | refusal attack | "
             "attack - direct (refusal) |", "|---|---|---|---|---|---|---|---|---|"]
    data: dict = {}
    for arm in ARMS:
        direct, search = out / "static" / arm / "seed-0", out / "search" / arm / "seed-0"
        if not ((direct / "summary.json").exists() and (search / "summary.json").exists()):
            continue
        asr_d, asr_s = flags(direct, "harm-clf", "unsafe"), flags(search, "harm-clf", "unsafe")
        ref_d, ref_s = flags(direct, "keyword", "refused"), flags(search, "keyword", "refused")
        for attack in [a for a in SEARCH if a in asr_s and "direct" in asr_d]:
            asr = paired_difference(asr_d["direct"], asr_s[attack])
            ref = paired_difference(ref_d["direct"], ref_s[attack])
            data.setdefault(arm, {})[attack] = {"asr": asr, "refusal": ref}
            lines.append(f"| {arm} | {attack} | {asr['behaviors']} | {100 * asr['a']:.1f}% | {100 * asr['b']:.1f}% | "
                         f"{diff_text(asr)} | {100 * ref['a']:.0f}% | {100 * ref['b']:.0f}% | {diff_text(ref)} |")
    return ("\n".join(lines) if data else ""), data


def main() -> None:
    global ARMS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="default: runs/attacks_table, or runs/attacks_table-more")
    ap.add_argument("--more", action="store_true", help="vanilla / DeRTa columns from the -more arms of "
                                                         "derta_recipe.py (trained on the harvested triples)")
    ap.add_argument("--recipe", choices=list(RECIPES), default=None, help="which arms fill the columns (RECIPES; "
                                                                         "--more = --recipe more)")
    ap.add_argument("--recipe-out", default="runs/derta_recipe", help="where derta_recipe.py trained the arms")
    ap.add_argument("--n", type=int, default=120, help="held-out behaviors (the first N of the wide set)")
    ap.add_argument("--benign", action="store_true", help="the test split's 79 benign and benign-but-scary prompts "
                    "instead (run dir -benign): refusal there is over-refusal, e.g. under the completion format")
    ap.add_argument("--start", type=int, default=0, help="skip the first START behaviors of the wide set (fresh "
                    "behaviors for a change designed on earlier answers; run dir gets -fromSTART, --against too)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--static", action="store_true", help="run the static attacks on every seed of every arm")
    ap.add_argument("--search", action="store_true", help="run PAIR and AutoDAN on seed 0 of every arm")
    ap.add_argument("--static-attacks", nargs="+", default=STATIC, choices=STATIC,
                    help="a subset of the static attacks (jailbreak templates of ~1,500 tokens cost most of a CPU run);"
                    " a later run with more attacks resumes the same run directories")
    ap.add_argument("--search-attacks", nargs="+", default=SEARCH, choices=SEARCH)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8, help="generation batch (prompts are length-sorted, longest "
                    "first: 32 in-the-wild templates of ~1,500 tokens did not finish one batch in 20 min on one core)")
    ap.add_argument("--pair-streams", type=int, default=3)
    ap.add_argument("--pair-iterations", type=int, default=3)
    ap.add_argument("--pair-batch", type=int, default=8, help="behaviors whose PAIR streams share each attacker and "
                    "target call")
    ap.add_argument("--attacker-tokens", type=int, default=160, help="PAIR: attacker tokens per reply (CPU budget: "
                    "x2 against 256, benchmarks/results/pair_stop.json)")
    ap.add_argument("--autodan-population", type=int, default=8)
    ap.add_argument("--autodan-generations", type=int, default=3)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--against", default=None, metavar="RECIPE", help="--report: also this run's DeRTa against "
                    "RECIPE's (its run dir: runs/attacks_table-RECIPE, runs/attacks_table for default), paired")
    ap.add_argument("--export", default=None, help="--report: also write the table to this JSON file")
    ap.add_argument("--rejudge-collapsed", action="store_true", help="re-judge (harm-clf) every finished run's answers "
                                                                    "with a degenerate run of one word")
    args = ap.parse_args()
    recipe = args.recipe or ("more" if args.more else "default")
    ARMS = RECIPES[recipe]
    fresh = (f"-from{args.start}" if args.start else "") + ("-benign" if args.benign else "")
    out = Path(args.out or run_root(recipe) + fresh)
    if args.static:
        for seed in args.seeds:  # every arm's first seed before any arm's second
            for arm in args.arms:
                if arm != "base" or seed == args.seeds[0]:
                    run(out, args, arm, 0 if arm == "base" else seed, "static", args.static_attacks)
    if args.search:
        for arm in args.arms:
            run(out, args, arm, 0, "search", args.search_attacks)
    if args.rejudge_collapsed:
        from safekeel.judges.registry import make_judge

        judge = make_judge("harm-clf")  # loaded once for every run
        for d in sorted(p.parent for p in out.glob("*/*/seed-*/rows.jsonl")):
            print(f"{d}: {rejudge_collapsed(d, judge)} answers re-judged", flush=True)
    if args.report:
        text, data = report(out)
        table, data["search_vs_direct"] = search_vs_direct(out)
        if table:
            text += ("\n\nEach search attack against the direct request, seed 0, the same behaviors (differences in "
                     "points: [95% bootstrap CI resampling behaviors], exact sign-flip p over behaviors):\n\n" + table)
        if args.benign:
            text = ("Benign prompts: refusal is over-refusal, and the ASR columns are harm-clf calling an answer to a "
                    "benign request unsafe (its false positives), not attack success.\n\n" + text)
        if args.against:
            other = RECIPES[args.against]["derta"]
            table, data["against"] = against(out, Path(run_root(args.against) + fresh), other)
            text += f"\n\nDeRTa against `{other}` (same behaviors and seeds):\n\n" + table
        print(text)
        if args.export:
            write_json(Path(args.export), {"measured": time.strftime("%Y-%m-%d"),
                                           "machine": f"{platform.machine()}, 2-core CPU, no GPU",
                                           "command": "python benchmarks/attacks_table.py " + " ".join(sys.argv[1:]),
                                           "table": text, **data})


if __name__ == "__main__":
    main()
