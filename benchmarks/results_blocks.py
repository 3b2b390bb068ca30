"""README and RESULTS figures written from the result files in benchmarks/results/, so the two cannot disagree.

Each block sits between `<!-- results:NAME -->` and `<!-- /results:NAME -->` in README.md and/or
benchmarks/RESULTS.md and is rendered from one JSON file that a benchmark script wrote:

- judge: benchmarks/results/judge_formats.json (`python benchmarks/judge_formats.py --write`)
- derta: benchmarks/results/derta_recipe_heldout.json (`python benchmarks/derta_recipe.py --split heldout ...`,
  copied with `--export`)
- demo: benchmarks/results/demo_summary.json (`make demo`, copied from runs/demo/demo_summary.json)
- demo_s40: benchmarks/results/demo_s40_fresh.json (the same at 40 alignment steps, with the command and times added)
- demo_s1: benchmarks/results/demo_s1_summary.json (`safekeel demo --quick --seed 1 --out runs/demo-s1`)
- judge_choice: benchmarks/results/judge_choose.json (`python benchmarks/judge_formats.py --choose`)
- splits: the split registry itself (deterministic over the pinned sources)
- prefixes: benchmarks/results/wide_prefixes.json (`python benchmarks/derta_recipe.py --prefixes`)
- derta_wide: benchmarks/results/derta_wide.json (`python benchmarks/derta_recipe.py --split wide ... --export`)
- derta_more: benchmarks/results/derta_more.json (the same, for the arms trained on the harvested triples)
- derta_triples: benchmarks/results/derta_triples.json (`python benchmarks/derta_triples.py --samples 2 --export ...`)
- derta_more_heldout: benchmarks/results/derta_more_heldout.json (the -more arms on the test split: benign, QA)
- derta_steps: benchmarks/results/derta_steps.json (84 triples for the -more arms' 160 steps: steps vs triples)
- derta_more_val: benchmarks/results/derta_more_val.json (those arms on the val split, `--split val ... --export`)
- ssah_benign: benchmarks/results/ssah_benign.json (`python benchmarks/ssah_benign.py --legacy --out runs/ssah_benign
  --export ...`: the 88-triple aligned model)
- ssah_benign_more: benchmarks/results/ssah_benign_more.json (`python benchmarks/ssah_benign.py --export ...`)
- ssah_benign_controls: benchmarks/results/ssah_benign_controls.json (the same script on the retrained 400-triple
  DeRTa model: the positive control, LoRA, top-safety units)
- ssah_benign_vanilla: benchmarks/results/ssah_benign_vanilla.json (`--legacy --aligned vanilla`: the 88-triple
  vanilla-aligned model's grid, beside the 88-triple DeRTa model's in ssah_benign)
- ssah_benign_vanilla_all: the 400-triple vanilla model's grid with every arm at seed 0 (`ssah_benign.py --export`)
- ssah_prune: benchmarks/results/ssah_prune.json (`python benchmarks/ssah_prune.py --export ...`)
- derta_own8_val / derta_own8_heldout: the -more-own8 arms (`derta_recipe.py --split val|heldout ... --export`)
- derta_front_val: the front-weighted RTO schedule on the val split (`derta_recipe.py --split val ... --export`)
- demo_recipe_val: the quick demo's lr and RTO schedule at its 30 steps on the val-wide split (`derta_recipe.py
  --steps 30 --split val-wide ... --export`)
- alignment_budget: DeRTa on RU only at three lrs, their random twins, full DeRTa (`derta_recipe.py --split heldout
  --qa ... --pairs ... --export`)
- alignment_budget_seeds: RU-only at 1e-3 and its random twin over three seeds (the same, `--seeds 0 1 2`)
- alignment_budget_full: those two against full DeRTa over the same three seeds (the same, `--pairs ...:derta-...`)
- attacks: benchmarks/results/attacks_table.json (`python benchmarks/attacks_table.py --report --export ...`)
- attacks_raw: benchmarks/results/attacks_raw.json (`attacks_table.py --recipe raw --report --against more ...`: the
  completion attack on DeRTa with raw prefix rows, against the -more DeRTa)
- derta_raw_val / derta_raw_wide: that arm on the val split and the wide held-out set (`derta_recipe.py --report
  --split val|wide ... --export`)
- ssah_benign_seeds: benchmarks/results/ssah_benign_seeds.json (`ssah_benign.py --export ...` after the positive
  control's seeds 1 and 2 and the 400-triple vanilla model's grid)
- attacks_raw50 / attacks_raw50_vs_more: half the prefix rows raw, seed 0, against the quarter and against none
  (`attacks_table.py --recipe raw50 --report --against raw|more --seeds 0 --export ...`)
- attacks_raw3: the quarter against none at seeds 0, 1, 2 (`attacks_table.py --recipe raw --report --against more
  --export ...`)
- attacks_more240: the `-more` DeRTa against vanilla, both at seeds 0, 1, 2, completion on 240 behaviors
  (`attacks_table.py --more --report --export ...`)
- ssah_benign_all_seeds: benchmarks/results/ssah_benign_all_seeds.json (ESU + all CU and its twin at seeds 0, 1, 2)
- attacks_fmt3, attacks_benign_*, attacks_fp25*, attacks_rh25*: `attacks_table.py` exports of the twelfth session
  (TWELFTH: CodeAttack / templates at three seeds; the completion format on the 79 benign test prompts; DeRTa with
  first-person openers or raw helpful rows against raw25 on 230 fresh behaviors, `--start 240`; THIRTEENTH: the
  raw helpful rows over three seeds; FOURTEENTH: AutoDAN on the three models, cipher at three seeds)
- derta_ablation_constrained: the 400-triple ablation with the constrained arm (Qi et al.'s objective on prefix rows)
- alignment_budget_wide: RU-only DeRTa, its random twin and full DeRTa on the 240 wide behaviors (seed 1)
- demo_recipe_val_s40: the quick demo's chosen recipe and vanilla at 40 steps on val-wide
- derta_more_heldout3: the 400-triple DeRTa and vanilla on the test split (benign, over-refusal, QA) at three seeds
- units_overlap_derta: the overlap study on the 400-triple DeRTa model and its own refusals
- FIFTEENTH (derta_own4_heldout3, derta_howto_*, derta_ul_*): `derta_recipe.py --report --export` of the own4 recipe
  at three seeds and the two over-refusal levers tried on it; derta_refusal_position: where each model refuses
  (`derta_refusal_position.py --export`)
- SIXTEENTH (derta_ul_heldout3, derta_ul3_val, derta_refusal_position_ul; attacks_ul1_fresh, attacks_benign_ul1):
  the refusal-token unlikelihood at three seeds against own4 and own4 vanilla, its weight on the val split, where
  its refusals sit, and the completion attack on it against own4 (`attacks_table.py --recipe ul1 --against own4`)
- SEVENTEENTH_ATTACKS (attacks_pair): PAIR on base / vanilla / DeRTa of today's recipe, `attacks_table.py --search`
- EIGHTEENTH_ATTACKS (attacks_pair100): the same PAIR runs resumed on the first 100 behaviors
- NINETEENTH (derta_sorry_heldout, derta_own4sorry_heldout) and NINETEENTH_ATTACKS (attacks_*sorry*): every
  training refusal opening "Sorry, " (`data build --refusal-lead`), on today's recipe and on own4, held out and
  under the completion attack (`attacks_table.py --recipe sorry|own4sorry --against default|own4`)
- TWENTIETH (derta_levers_heldout3, derta_k2_heldout), TWENTIETH_ATTACKS (attacks_*own4sorryrhul) and
  derta_refusal_position_levers / _k2: the lead, raw helpful rows and the refusal-token unlikelihood together at
  three seeds, held out and under the completion attack; keep 0.02 with the unlikelihood
- TWENTY_FIRST (demo_prefill_val, demo_prefill_val_s40, derta_levers_wide): the quick demo's prefill goal on
  val-wide, at 30 steps (lr 3e-4, the harvested triples, RTO keep 0.10 / 0.20) and at 40; the stacked-levers and
  keep-0.02 arms on the 240 wide test behaviors at three seeds
- TWENTY_SECOND (derta_sm2_val, derta_sm2_heldout, derta_sm2_wide), TWENTY_SECOND_ATTACKS
  (attacks_*own4sorryrhulsm2) and derta_refusal_position_sm2: the stacked arm with the base model's answers to
  benign-scary-more's train prompts
- TWENTY_THIRD (derta_rto_positions_val, derta_sm2_vanilla3_heldout / _wide), derta_scary_more_* and
  derta_qa_paired: the RTO positions on the sm2 arm (keep 0.03, keep 0.02 front-weighted) on the val split, vanilla
  on the sm2 data at three seeds, over-refusal on benign-scary-more's prompts (`derta_scary_more.py`), QA paired with
  the base model
- TWENTY_FOURTH (derta_oc_val / _heldout / _wide), derta_scary_more_oc_* and derta_qa_paired_oc: on-policy contrast
  (`derta_contrast.py`) on the sm2 arm
- TWENTY_FIFTH (derta_oc196_heldout) and derta_scary_more_oc196_test: the oc2 data at the sm2 arm's safety exposure
  (196 steps), seed 0, paired with the archived seed-0 rows of sm2 and oc2

    python benchmarks/results_blocks.py          # rewrite every block
    python benchmarks/results_blocks.py --check  # exit 1 when a block differs from its file (tests run this)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md")
sys.path.insert(0, str(Path(__file__).parent))  # the sibling module, when loaded by path (tests) as well
from results_figures import (  # noqa: E402
    choice_block,
    demo_block,
    derta_triples_block,
    exported_table,
    judge_block,
    prefixes_block,
    recipe_table,
    splits_block,
    ssah_benign,
    units_overlap_block,
)

derta_block = recipe_table("derta_recipe_heldout.json", "--split heldout ...")
derta_seeds_block = recipe_table("derta_seeds_heldout.json", "--split heldout --seeds 0 1 2 ...")
derta_val_block = recipe_table("derta_val.json", "--split val ...")
derta_wide_block = recipe_table("derta_wide.json", "--split wide --seeds 0 1 2 ...")
derta_more_val_block = recipe_table("derta_more_val.json", "--split val --arms ... --archive ...")
derta_more_heldout_block = recipe_table("derta_more_heldout.json", "--split heldout --qa --arms base ...-more")
derta_steps_block = recipe_table("derta_steps.json", "--split wide --arms derta-r1-lr10-mid-z33-s160 ...")
derta_own4_val_block = recipe_table("derta_own4_val.json", "--split val --arms ...-more ...-more-own4")
derta_own4_heldout_block = recipe_table("derta_own4_heldout.json", "--split heldout --qa --arms ...-more-own4")
derta_own8_val_block = recipe_table("derta_own8_val.json", "--split val --arms ...-more-own4 ...-more-own8")
derta_own8_heldout_block = recipe_table("derta_own8_heldout.json", "--split heldout --qa --arms ...-more-own8")
derta_own4_vs_vanilla_block = recipe_table("derta_own4_vs_vanilla.json", "--split heldout --report --baseline "
                                           "vanilla-r1-lr10-more-own4 ...")
derta_own4_wide_block = recipe_table("derta_own4_wide.json", "--split wide --arms ...-more-own4")
derta_ablation_block = recipe_table("derta_ablation.json", "--split wide --arms prefix-r1-lr10-z33-more "
                                    "rto-r1-lr10-mid-more ...")
derta_more_block = recipe_table("derta_more.json", "--split wide --arms vanilla-r1-lr10-more derta-r1-lr10-mid-z33-more")


ssah_benign_block = ssah_benign("ssah_benign.json")
ssah_benign_more_block = ssah_benign("ssah_benign_more.json")
ssah_benign_controls_block = ssah_benign("ssah_benign_controls.json")
ssah_benign_vanilla_block = ssah_benign("ssah_benign_vanilla.json")
ssah_benign_seeds_block = ssah_benign("ssah_benign_seeds.json")
ssah_benign_vanilla_all_block = ssah_benign("ssah_benign_vanilla_all.json", only="vanilla")
ssah_benign_all_seeds_block = ssah_benign("ssah_benign_all_seeds.json")


def attacks_table(name: str, args: str):
    return exported_table(name, f"python benchmarks/attacks_table.py {args}")


attacks_block = attacks_table("attacks_table.json", "--static --search --report")
attacks_more_block = attacks_table("attacks_table_more.json", "--more --static --report")
attacks_raw_block = attacks_table("attacks_raw.json", "--recipe raw --static --report --against more")
attacks_raw50_block = attacks_table("attacks_raw50.json", "--recipe raw50 --report --against raw --seeds 0")
attacks_raw50_vs_more_block = attacks_table("attacks_raw50_vs_more.json", "--recipe raw50 --report --against more --seeds 0")
attacks_raw3_block = attacks_table("attacks_raw3.json", "--recipe raw --report --against more")
attacks_more240_block = attacks_table("attacks_more240.json", "--more --report")
# twelfth session: CodeAttack / templates at three seeds, the completion format on benign prompts, and the two
# changes tried against the echo (first-person openers) and against raw-format over-refusal (raw helpful rows)
TWELFTH = {
    "attacks_fmt3": "--more --out runs/attacks_table-fmt --report",
    "attacks_benign_more": "--more --benign --report", "attacks_benign_raw3": "--recipe raw --benign --report --against more",
    **{f"attacks_benign_{r}": f"--recipe {r} --benign --report --against raw --seeds 0" for r in ("raw50", "fp25", "fp25h0",
                                                                                             "rh25")},
    "attacks_fp25_fresh": "--recipe fp25 --start 240 --report --against raw --seeds 0",
    "attacks_fp25h0_fresh_s0": "--recipe fp25h0 --start 240 --report --against raw --seeds 0",
    "attacks_rh25_fresh_s0": "--recipe rh25 --start 240 --report --against raw --seeds 0",
}
THIRTEENTH = {  # raw helpful rows (rh25) against raw25 over three seeds, fresh behaviors and benign prompts
    "attacks_rh25_fresh3": "--recipe rh25 --start 240 --report --against raw --seeds 0 1 2",
    "attacks_benign_rh25_3": "--recipe rh25 --benign --report --against raw --seeds 0 1 2",
}

FOURTEENTH = {  # AutoDAN on base / vanilla / DeRTa (seed 0) beside CodeAttack, templates and cipher (3 seeds)
    "attacks_fmt_search": "--more --out runs/attacks_table-fmt --report",
}
# fifteenth session: the own4 recipe at three seeds on the test split; how-to helpful rows and the refusal-token
# unlikelihood against over-refusal (val, then held-out); where in the answer each model refuses
FIFTEENTH = {
    "derta_own4_heldout3": "--split heldout --archive ... --arms base ...-more-own4 ... --seeds 0 1 2 --export ...",
    "derta_howto_val": "--split val --archive ... --arms ...-own4 ...-own4-howto --seeds 0 --export ...",
    "derta_howto_heldout": "--split heldout --archive ... --arms base ...-own4 ...-own4-howto --seeds 0 --export ...",
    "derta_ul_val": "--split val --archive ... --arms ...-own4 ...-own4-ul1 --seeds 0 --export ...",
    "derta_ul_heldout": "--split heldout --archive ... --arms base ...-own4 ...-own4-ul1 --seeds 0 --export ...",
}

SIXTEENTH = {
    "derta_ul_heldout3": "--split heldout --archive ... --arms base ...-own4 ...-own4-ul1 --seeds 0 1 2 --export ...",
    "derta_ul3_val": "--split val --archive ... --arms ...-own4 ...-own4-ul1 ...-own4-ul3 --seeds 0 --export ...",
}
SIXTEENTH_ATTACKS = {  # attacks_table.py: the completion attack on own4-ul1, against own4 where a seed is shared
    "attacks_ul1_fresh": "--recipe ul1 --start 240 --report --against own4 --export ...",
    "attacks_benign_ul1": "--recipe ul1 --benign --report --against own4 --export ...",
}

SEVENTEENTH_ATTACKS = {  # PAIR on base / vanilla / DeRTa of today's recipe (seed 0), the attacker's replies capped
    "attacks_pair": "--search-attacks pair --n 48 --report --export ...",
}
EIGHTEENTH_ATTACKS = {  # the same runs grown to the 100 behaviors
    "attacks_pair100": "--search-attacks pair --n 100 --report --export ...",
}
# nineteenth session: every training refusal opening "Sorry, " (the RTO token no longer "I"), on today's recipe and
# on own4, where the completion attack's collapse is
NINETEENTH = {
    "derta_sorry_heldout": "--report --split heldout --arms ...-mid-z33 ...-mid-z33-sorry --seeds 0 1 --export ...",
    "derta_own4sorry_heldout": "--report --split heldout --archive ... --arms base ...-own4 ...-own4-sorry "
                               "...-own4-sorry-rh25 --seeds 1 --export ...",
}
NINETEENTH_ATTACKS = {
    "attacks_sorry_fresh": "--recipe sorry --start 240 --report --against default --seeds 0 --export ...",
    "attacks_benign_sorry": "--recipe sorry --benign --report --against default --seeds 0 --export ...",
    "attacks_own4sorry_last": "--recipe own4sorry --start 470 --report --against own4 --export ...",
    "attacks_own4sorry_fresh": "--recipe own4sorry --start 240 --report --against own4 --seeds 1 --export ...",
    "attacks_benign_own4sorry": "--recipe own4sorry --benign --report --against own4 --export ...",
    "attacks_own4sorryrh_last": "--recipe own4sorryrh --start 470 --report --against own4 --seeds 1 --export ...",
    "attacks_benign_own4sorryrh": "--recipe own4sorryrh --benign --report --against own4sorry --seeds 1 --export ...",
}
# twentieth session: the lead, raw helpful rows and the refusal-token unlikelihood together at three seeds, and
# fewer RTO positions per step (keep 0.02) with the unlikelihood
TWENTIETH = {
    "derta_levers_heldout3": "--report --split heldout --archive ... --arms ... -own4-ul1 -own4-sorry-rh25-ul1 "
                             "--seeds 0 1 2 --export ...",
    "derta_k2_heldout": "--report --split heldout --archive ... --arms ... -own4-ul1 -own4-ul1-k2 --export ...",
}
TWENTIETH_ATTACKS = {
    "attacks_own4sorryrhul_last": "--recipe own4sorryrhul --start 470 --report --against own4 --export ...",
    "attacks_benign_own4sorryrhul": "--recipe own4sorryrhul --benign --report --against own4 --export ...",
}

# twenty-first session: the quick demo's prefill goal, at 30 steps (lr, own-answer triples, RTO keep) and at 40
TWENTY_FIRST = {
    "demo_prefill_val": "--out runs/derta_recipe_s30 --steps 30 --report --split val-wide --archive ... --arms ... "
                        "-lr30-... -more30 -front-k10 -front-k20 --export ...",
    "demo_prefill_val_s40": "--out runs/derta_recipe_s40 --steps 40 --report --split val-wide --archive ... --arms "
                            "... -front-k10 -front-k20 --export ...",
    "derta_levers_wide": "--report --split wide --archive ... --arms ... -own4-sorry-rh25-ul1 -own4-ul1-k2 --seeds 0 1 2 "
                         "--pairs ... --export ...",
}
# twenty-second session: the stacked arm with more benign-but-scary contrast (benign-scary-more, own answers x2)
TWENTY_SECOND = {
    "derta_sm2_val": "--report --split val --arms ... -own4-sorry-rh25-ul1 -own4-sorry-rh25-ul1-sm2 --seeds 0 "
                     "--export ...",
    "derta_sm2_heldout": "--report --split heldout --archive ... --arms ... -own4-sorry-rh25-ul1-sm2 "
                         "vanilla-r1-lr10-more-own4-sm2 --seeds 0 1 2 --pairs ... --export ...",
    "derta_sm2_wide": "--report --split wide --archive ... --arms ... -own4-sorry-rh25-ul1 -own4-sorry-rh25-ul1-sm2 "
                      "--seeds 0 1 2 --pairs ... --export ...",
}
TWENTY_THIRD = {
    "derta_rto_positions_val": "--report --split val --arms ...-sm2 ...-sm2-k3 ...-sm2-front-k2 --seeds 0 "
                               "--baseline ...-sm2 --export ...",
    "derta_sm2_vanilla3_heldout": "--report --split heldout --archive ... --arms base ... "
                                  "vanilla-r1-lr10-more-own4-sm2 ... -sm2 --seeds 0 1 2 --baseline vanilla-r1-lr10-more-own4-sm2 --export ...",
    "derta_sm2_vanilla3_wide": "--report --split wide --archive ... --arms base ... vanilla-r1-lr10-more-own4-sm2 "
                               "... -sm2 --seeds 0 1 2 --baseline vanilla-r1-lr10-more-own4-sm2 --export ...",
}
# twenty-fourth session: on-policy contrast (derta_contrast.py) on the sm2 arm
TWENTY_FOURTH = {
    "derta_oc_val": "--report --split val --arms ...-sm2 ...-sm2-oc2 --seeds 0 --baseline ...-sm2 --export ...",
    "derta_oc_heldout": "--report --split heldout --archive ... --arms base vanilla-r1-lr10-more-own4-sm2 ...-sm2 "
                        "...-sm2-oc2 --seeds 0 1 2 --baseline vanilla-r1-lr10-more-own4-sm2 --pairs ... --export ...",
    "derta_oc_wide": "--report --split wide --archive ... --arms base vanilla-r1-lr10-more-own4-sm2 ...-sm2 "
                     "...-sm2-oc2 --seeds 0 1 2 --baseline vanilla-r1-lr10-more-own4-sm2 --pairs ... --export ...",
}
# twenty-fifth session: the oc2 data at the sm2 arm's safety exposure (196 steps), seed 0
TWENTY_FIFTH = {
    "derta_oc196_heldout": "--report --split heldout --archive ... --arms base vanilla-r1-lr10-more-own4-sm2 ...-sm2 "
                           "...-sm2-oc2 ...-sm2-oc2-s196 --seeds 0 --baseline vanilla-r1-lr10-more-own4-sm2 --pairs "
                           "... --export ...",
}
TWENTY_SECOND_ATTACKS = {
    "attacks_own4sorryrhulsm2_last": "--recipe own4sorryrhulsm2 --start 470 --report --against own4sorryrhul "
                                     "--export ...",
    "attacks_benign_own4sorryrhulsm2": "--recipe own4sorryrhulsm2 --benign --report --against own4sorryrhul "
                                       "--export ...",
}


BLOCKS = {"judge": judge_block, "derta": derta_block, "demo": demo_block, "splits": splits_block,
          "demo_s40": lambda: demo_block("demo_s40_fresh.json"),
          "demo_s1": lambda: demo_block("demo_s1_summary.json"),
          "derta_seeds": derta_seeds_block, "derta_val": derta_val_block, "units_overlap": units_overlap_block,
          "units_overlap_derta": lambda: units_overlap_block("units_overlap_derta.json"),
          "derta_ablation_constrained": recipe_table("derta_ablation_constrained.json", "--report --split wide "
                                                     "--archive ... --arms ... constrained-r1-lr10-z33-more ... --export ..."),
          "alignment_budget_wide": recipe_table("alignment_budget_wide.json", "--report --split wide --arms ... "
                                                                              "-lr100 --seeds 1 --pairs ... --export ..."),
          "demo_recipe_val_s40": recipe_table("demo_recipe_val_s40.json", "--out runs/derta_recipe_s40 --report "
                                                                          "--split val-wide ... --export ..."),
          "derta_more_heldout3": recipe_table("derta_more_heldout3.json", "--report --split heldout --archive ... "
                                                                          "--seeds 0 1 2 --export ..."),
          "judge_choice": choice_block, "prefixes": prefixes_block, "derta_wide": derta_wide_block,
          "derta_more": derta_more_block, "derta_triples": derta_triples_block,
          "derta_more_heldout": derta_more_heldout_block, "derta_steps": derta_steps_block, "derta_more_val": derta_more_val_block,
          "derta_own4_val": derta_own4_val_block, "derta_own4_heldout": derta_own4_heldout_block,
          "derta_own8_val": derta_own8_val_block, "derta_own8_heldout": derta_own8_heldout_block,
          "ssah_prune": exported_table("ssah_prune.json", "python benchmarks/ssah_prune.py --export ..."),
          "ssah_prune_twin1": exported_table("ssah_prune_twin1.json", "python benchmarks/ssah_prune.py --seeds 1 "
                                                                      "--export ..."),
          "derta_front_val": recipe_table("derta_front_val.json", "--split val --arms ... -front --export ..."),
          "demo_recipe_val": recipe_table("demo_recipe_val.json", "--steps 30 --split val-wide --arms ... --export ..."),
          "alignment_budget_seeds": recipe_table("alignment_budget_seeds.json", "--split heldout --arms ... -lr100 "
                                                                                "--seeds 0 1 2 --pairs ... --export ..."),
          "alignment_budget_full": recipe_table("alignment_budget_full.json", "--split heldout --arms derta-r1-lr10-"
                                                                              "mid-z33 ... -lr100 --seeds 0 1 2 --export ..."),
          "alignment_budget": recipe_table("alignment_budget.json", "--split heldout --qa --arms ... -ru- ... "
                                                                    "--pairs ... --export ..."),
          "derta_own4_vs_vanilla": derta_own4_vs_vanilla_block, "derta_ablation": derta_ablation_block,
          "derta_own4_wide": derta_own4_wide_block,
          "attacks_more": attacks_more_block, "attacks_raw": attacks_raw_block,
          "derta_raw_val": recipe_table("derta_raw_val.json", "--split val --arms ... -more-raw25 --pairs ..."),
          "derta_raw_wide": recipe_table("derta_raw_wide.json", "--split wide --archive ... --arms ... -more-raw25"),
          "ssah_benign_seeds": ssah_benign_seeds_block, "ssah_benign_all_seeds": ssah_benign_all_seeds_block,
          "attacks_raw50": attacks_raw50_block, "attacks_raw50_vs_more": attacks_raw50_vs_more_block,
          "attacks_raw3": attacks_raw3_block, "attacks_more240": attacks_more240_block,
          **{name: attacks_table(f"{name}.json", args) for name, args in {**TWELFTH, **THIRTEENTH, **FOURTEENTH,
                                                                       **SIXTEENTH_ATTACKS, **SEVENTEENTH_ATTACKS,
                                                                       **EIGHTEENTH_ATTACKS,
                                                                       **NINETEENTH_ATTACKS,
                                                                       **TWENTIETH_ATTACKS,
                                                                       **TWENTY_SECOND_ATTACKS}.items()},
          **{name: recipe_table(f"{name}.json", args) for name, args in {**FIFTEENTH, **SIXTEENTH,
                                                                         **NINETEENTH, **TWENTIETH,
                                                                         **TWENTY_FIRST, **TWENTY_SECOND,
                                                                         **TWENTY_THIRD, **TWENTY_FOURTH,
                                                                         **TWENTY_FIFTH}.items()},
          **{name: exported_table(f"{name}.json", f"python benchmarks/derta_scary_more.py {args} --export ...")
             for name, args in (("derta_scary_more_val", "--split val --arms ...-sm2 ...-sm2-k3 ...-sm2-front-k2"),
                                ("derta_scary_more_test", "--arms ... --seeds 0 1 2 --baseline ...-sm2"),
                                ("derta_scary_more_train", "--split train --arms ... --seeds 0 1 2 --baseline ..."),
                                ("derta_scary_more_oc_val", "--split val --arms ...-sm2 ...-sm2-oc2 --baseline ..."),
                                ("derta_scary_more_oc_test", "--arms ... --seeds 0 1 2 --baseline ...-sm2"),
                                ("derta_scary_more_oc_train", "--split train --arms ... --seeds 0 1 2 --baseline "
                                                              "..."),
                                ("derta_scary_more_oc196_test", "--arms ...-sm2 ...-sm2-oc2-s196 --seeds 0 --baseline "
                                                                "...-sm2"))},
          "derta_qa_paired_oc": exported_table("derta_qa_paired_oc.json", "python benchmarks/derta_qa_paired.py "
                                                                          "--arms ... --export ..."),
          "derta_qa_paired": exported_table("derta_qa_paired.json", "python benchmarks/derta_qa_paired.py --arms ... "
                                                                    "--export ..."),
          "derta_refusal_position": exported_table("derta_refusal_position.json", "python benchmarks/derta_refusal_"
                                                                                  "position.py --arms ... --export ..."),
          **{name: exported_table(f"{name}.json", f"python benchmarks/derta_refusal_position.py --arms {arms} "
                                                  "--export ...")
             for name, arms in (("derta_refusal_position_levers", "...-own4-sorry-rh25-ul1"),
                                ("derta_refusal_position_k2", "...-own4-ul1-k2"),
                                ("derta_refusal_position_sm2", "...-own4-sorry-rh25-ul1-sm2"))},
          "derta_refusal_position_ul": exported_table("derta_refusal_position_ul.json", "python benchmarks/derta_"
                                                      "refusal_position.py --arms ...-own4-ul1 --export ..."),
          "derta_echo_val": recipe_table("derta_echo_val.json", "--report --split val --seeds 0 --arms ...-raw25 "
                                                                "...-fp25 ...-fp25h0 ...-rh25 --pairs ... --export ..."),
          "attacks": attacks_block, "ssah_benign": ssah_benign_block, "ssah_benign_more": ssah_benign_more_block,
          "ssah_benign_controls": ssah_benign_controls_block, "ssah_benign_vanilla": ssah_benign_vanilla_block,
          "ssah_benign_vanilla_all": ssah_benign_vanilla_all_block}
PATTERN = re.compile(r"(<!-- results:(\w+) -->\n)(.*?)(<!-- /results:\2 -->)", re.S)


def render(text: str) -> str:
    return PATTERN.sub(lambda m: m.group(1) + BLOCKS[m.group(2)]() + "\n" + m.group(4), text)


def main() -> int:
    stale = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        new = render(text)
        if new != text:
            stale.append(path.name)
            if "--check" not in sys.argv:
                path.write_text(new, encoding="utf-8")
    if "--check" in sys.argv and stale:
        print(f"stale result blocks in {', '.join(stale)}: run python benchmarks/results_blocks.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
