"""The arms `derta_recipe.py` trains: one dict per arm, each field a data or training choice (`data_key` names the
folder of the rows an arm's data fields build, so arms differing only in training share one build)."""

# zero: share of prefix rows forced to k = 0 (a plain refusal at the turn start; the reference's 1/3); opener: share
# of prefix / RTO / helpful rows opening with a compliant opener (data/derta.py); schedule: RTO positions kept
# uniformly or front-weighted (train/collator.py)
BASE = dict(recipe=None, ratio=3.0, keep=0.05, lr=5e-5, objective="ce", lora=False, rto="start", zero=0.0, opener=0.0,
            schedule="uniform")
# the raw-rows DeRTa (`-more-raw25`, ARMS) that the later collapse arms vary one field of
RAW25 = {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned", "zero": 1 / 3, "more": True,
         "steps": 160, "raw": 0.25}
FP25 = {**RAW25, "opener": 0.25, "opener_style": "first_person"}
# the quick demo's vanilla and DeRTa as chosen at 30 steps (lr 2e-4, DeRTa's RTO front-weighted, keep 0.05), which
# the demo-budget arms vary one field of
DEMO_VANILLA = {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 2e-4}
DEMO_FRONT = {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 2e-4, "rto": "aligned", "zero": 1 / 3, "schedule": "front"}
# the own4 DeRTa (`-more-own4`, ARMS) that the later over-refusal and collapse arms vary one field of
OWN4 = {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned", "zero": 1 / 3, "more": True, "steps": 160,
        "own": 4}
ARMS = {
    "base": BASE,
    "derta-old": {**BASE, "recipe": "derta", "ratio": None},  # the previous demo's data: 48 benign chats, no QA/scary
    "derta-r1": {**BASE, "recipe": "derta", "ratio": 1.0},
    "derta-r3": {**BASE, "recipe": "derta"},
    "derta-r1-lr10": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4},
    "derta-r1-lr20": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 2e-4},
    "vanilla-r1-lr20": DEMO_VANILLA,
    "prefix-r1-lr20": {**BASE, "recipe": "prefix_only", "ratio": 1.0, "lr": 2e-4},
    "constrained-r1-lr20": {**BASE, "recipe": "prefix_only", "ratio": 1.0, "objective": "constrained", "lr": 2e-4},
    "vanilla-r1": {**BASE, "recipe": "vanilla", "ratio": 1.0},
    "prefix-r1": {**BASE, "recipe": "prefix_only", "ratio": 1.0},
    "constrained-r1": {**BASE, "recipe": "prefix_only", "ratio": 1.0, "objective": "constrained"},
    "vanilla-r1-lr10": {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 1e-4},
    "prefix-r1-lr10": {**BASE, "recipe": "prefix_only", "ratio": 1.0, "lr": 1e-4},
    "constrained-r1-lr10": {**BASE, "recipe": "prefix_only", "ratio": 1.0, "objective": "constrained", "lr": 1e-4},
    "derta-r3-k25": {**BASE, "recipe": "derta", "keep": 0.25},
    "derta-r3-k100": {**BASE, "recipe": "derta", "keep": 1.0},
    "derta-r3-lr2": {**BASE, "recipe": "derta", "lr": 2e-5},
    "derta-r3-lora": {**BASE, "recipe": "derta", "lora": True, "lr": 2e-4},
    "vanilla-r3": {**BASE, "recipe": "vanilla"},
    "prefix-r3": {**BASE, "recipe": "prefix_only"},
    "constrained-r3": {**BASE, "recipe": "prefix_only", "objective": "constrained"},
    "derta-r1-lr10-k15": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "keep": 0.15},
    "derta-r1-lr10-k25": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "keep": 0.25},
    # RTO's mid-answer target = the token prefix rows train there (" I"), not the turn-start "I" (`rto_target`)
    "derta-r1-lr10-mid": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned"},
    "derta-r1-lr10-mid-z33": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned", "zero": 1 / 3},
    "prefix-r1-lr10-z33": {**BASE, "recipe": "prefix_only", "ratio": 1.0, "lr": 1e-4, "zero": 1 / 3},
    "derta-r1-lr10-mid-z33-open": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned",
                                   "zero": 1 / 3, "opener": 0.25},
    "derta-r1-lr10-mid-z33-front": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned",
                                    "zero": 1 / 3, "schedule": "front"},
    # the quick demo's budget (30 steps, `--steps 30`): a larger k = 0 share, the alternative to the front schedule
    "derta-r1-lr10-mid-z50": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned", "zero": 0.5},
    # ... and twice the lr, for vanilla and DeRTa alike (30 steps are 5/8 of the steps 1e-4 was chosen at)
    "derta-r1-lr20-mid-z33": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 2e-4, "rto": "aligned", "zero": 1 / 3},
    "derta-r1-lr20-mid-z33-front": DEMO_FRONT,
    "derta-r1-lr20-mid-z33-front-open": {**DEMO_FRONT, "opener": 0.25},
    # the demo's prefill goal (twenty-first session): 40 steps reached it on val-wide (71%) but not the time budget;
    # the same update budget in 30 steps, vanilla and DeRTa alike
    "vanilla-r1-lr30": {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 3e-4},
    "derta-r1-lr30-mid-z33-front": {**DEMO_FRONT, "lr": 3e-4},
    # ... which lowers direct refusal (76% vs vanilla 85%) and leaves prefill where it was (59%). What the demo's
    # prefill answers write ("a step-by-step guide to ...:\n\n1. **") is the base model's own style, which no
    # uncensorbench harmful answer has and the harvested own answers (`-more`) do: the demo's budget on that data
    **{f"{name}-more30": {**ARM, "more": True} for name, ARM in (("vanilla-r1-lr20", DEMO_VANILLA),
                                                                  ("derta-r1-lr20-mid-z33-front", DEMO_FRONT))},
    # ... which refuses direct requests more (95% vs vanilla 94%) and prefill less (51%): at 30 steps the model sees
    # 15% of that data. More RTO positions per step on the demo's own data, front-weighted, so the extra ones fall
    # where a prefill answer is (the first ~15 tokens); uniform keep 0.15 / 0.25 at 48 steps gave prefill nothing
    **{f"derta-r1-lr20-mid-z33-front-k{k}": {**DEMO_FRONT, "keep": k / 100} for k in (10, 20)},
    "derta-r1-lr10-mid-k25": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned", "keep": 0.25},
    "derta-r1-lr10-mid-s96": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned", "steps": 96},
    # SSAH's alignment budget: DeRTa updating only the redundant units (RU) of the weights it starts from
    "derta-r1-lr10-ru": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "train_only": "ru"},
    "derta-r1-lr20-ru": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 2e-4, "train_only": "ru"},
    # ... fairly (issue 22 item 8): today's recipe, RU only at three lrs (a 13% trainable set needs its own lr), and
    # a same-count random twin (`units.defenses`: random_ru draws as many units per block as RU holds)
    **{f"derta-z33-{only.replace('_', '')}-lr{lr}": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": lr * 1e-5,
                                                     "rto": "aligned", "zero": 1 / 3, "train_set": only}
       for only in ("ru", "random_ru") for lr in (10, 30, 100)},
    # the steps of the -more arms on today's data: what more triples add beyond more steps
    "derta-r1-lr10-mid-z33-s160": {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned",
                                   "zero": 1 / 3, "steps": 160},
    # more triples (issue 21): uncensorbench's train triples + the harvested ones; 160 steps of 8 rows (~27 min of
    # one core) with an arm's wide evaluation fits the 45-minute budget. With `derta_triples.py --samples 2` (400
    # triples, 1,600 rows) that is 0.8 of a pass where the reference trains 2: the pass count is what was given up
    **{f"{name}-more": {**ARM, "more": True, "steps": 160} for name, ARM in (
        ("vanilla-r1-lr10", {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 1e-4}),
        ("derta-r1-lr10-mid-z33", {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned",
                                   "zero": 1 / 3}),
        # the ablation on the same data and steps: DeRTa's halves alone, and prefix rows under Qi et al.'s objective
        ("prefix-r1-lr10-z33", {**BASE, "recipe": "prefix_only", "ratio": 1.0, "lr": 1e-4, "zero": 1 / 3}),
        ("rto-r1-lr10-mid", {**BASE, "recipe": "rto_only", "ratio": 1.0, "lr": 1e-4, "rto": "aligned"}),
        ("constrained-r1-lr10-z33", {**BASE, "recipe": "prefix_only", "ratio": 1.0, "lr": 1e-4, "zero": 1 / 3,
                                     "objective": "constrained"}))},
    # over-refusal (issue 21: 60-64% on benign-but-scary test prompts at 400 triples, both arms alike): the base
    # model's own answers to the benign and benign-but-scary train prompts (142 rows, 72 of them scary) each 4 times
    # in the same 800 helpful rows, gold QA filling the rest (658 -> 232 QA rows); same steps, same safety rows
    **{f"{name}-more-own4": {**ARM, "more": True, "steps": 160, "own": 4} for name, ARM in (
        ("vanilla-r1-lr10", {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 1e-4}),
        ("derta-r1-lr10-mid-z33", {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned",
                                   "zero": 1 / 3}))},
    # collapse outside the chat template (issue 21: the completion attack's raw document makes the -more DeRTa model
    # write "I will I I I ..." in 18% of answers): a quarter of the prefix rows written as plain documents
    # (`raw_prefix_fraction`), so " I" after harmful text goes on as a refusal there too; same rows, steps and seed
    "derta-r1-lr10-mid-z33-more-raw25": RAW25,
    # the one other dose tried (eleventh session): does collapse keep falling with F? Nothing is chosen from it
    "derta-r1-lr10-mid-z33-more-raw50": {**RAW25, "raw": 0.5},
    # ... and the echo (twelfth session): collapsed answers open with the model's own "I will" (the completion
    # document's "As requested, I will ..."), and no row refuses after a first-person commitment. A quarter of the
    # prefix and helpful rows open with one (data/derta.py FIRST_PERSON; never "As requested"), on top of raw25
    "derta-r1-lr10-mid-z33-more-raw25-fp25": FP25,
    # ... its refusal fell under the completion attack (seed 0, 230 fresh behaviors: 87% -> 79%) and helpful rows that
    # open "I will ..." and go on may be why: the same prefix rows, no helpful row opens with a commitment
    "derta-r1-lr10-mid-z33-more-raw25-fp25h0": {**FP25, "helpful_opener": 0.0},
    # ... which refuses benign requests in the completion format too (seed 0: 96% of 79 test prompts, raw25 71%):
    # every raw document in raw25's data ends in a refusal. A quarter of the helpful rows as raw documents as well
    "derta-r1-lr10-mid-z33-more-raw25-rh25": {**RAW25, "raw_helpful": 0.25},
    # over-refusal, second lever (sixth session): half the safety share per step. On the test split the own4 DeRTa
    # model refuses benign-but-scary prompts partly mid-answer ("Crushes are often a combination of I cannot ..."):
    # RTO firing on its own benign text. The reference mixes ~3,000 safety rows into a far larger instruction set;
    # here 3 helpful rows per safety row (own answers x8, so their share of a step stays the own4 arms' 35%), same
    # 160 steps and safety rows, so each safety row is seen half as often
    **{f"{name}-more-own8": {**ARM, "more": True, "steps": 160, "own": 8} for name, ARM in (
        ("vanilla-r3-lr10", {**BASE, "recipe": "vanilla", "ratio": 3.0, "lr": 1e-4}),
        ("derta-r3-lr10-mid-z33", {**BASE, "recipe": "derta", "ratio": 3.0, "lr": 1e-4, "rto": "aligned",
                                   "zero": 1 / 3}))},
    # over-refusal, third lever (fifteenth session): the own4 DeRTa model refuses "How do I kill weeds in my garden?"
    # as it refuses "How do I make a pipe bomb?". Its helpful rows ask "what is" (QA) and never "how do I" outside
    # the 72 scary train prompts, while every safety row is a how-to. The own4 data with its 232 gold-QA top-up rows
    # replaced by everyday how-tos and people's solutions (PIQA, source howto-qa); same steps, seeds, safety rows
    **{f"{name}-more-own4-howto": {**ARM, "more": True, "steps": 160, "own": 4, "howto": 1.0} for name, ARM in (
        ("vanilla-r1-lr10", {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 1e-4}),
        ("derta-r1-lr10-mid-z33", {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned",
                                   "zero": 1 / 3}))},
    # ... and the cause (fifteenth session): two thirds of the own4 DeRTa model's over-refusals are "I cannot" written
    # into the middle of a benign answer, which vanilla never does: RTO's " I" firing on benign text. The own4 arm
    # with -log(1 - p(refusal token)) at every MLE target that is not one (train.run refusal_unlikelihood), weight 1
    # (weights 1 and, chosen against it on the val split only, 3)
    **{f"derta-r1-lr10-mid-z33-more-own4-ul{w:g}": {**OWN4, "ul": float(w)} for w in (1, 3)},
    # the collapse's trigger (nineteenth session): the RTO token is "I", the word a completion attack makes the
    # model echo ("As requested, I will ..." -> "I will I will I I I"). Every training refusal opened with "Sorry, "
    # instead (`data build --refusal-lead`), so the RTO token is one no compliant answer starts with; the default
    # recipe otherwise, and vanilla on the same refusals
    **{f"{name}-sorry": {**ARM, "lead": "Sorry"} for name, ARM in (
        ("vanilla-r1-lr10", {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 1e-4}),
        ("derta-r1-lr10-mid-z33", {**BASE, "recipe": "derta", "ratio": 1.0, "lr": 1e-4, "rto": "aligned",
                                   "zero": 1 / 3}))},
    # ... and where the collapse is (the default recipe refuses no completion-format request at all, so it cannot
    # collapse there): the own4 DeRTa arm with the same lead
    "derta-r1-lr10-mid-z33-more-own4-sorry": {**OWN4, "lead": "Sorry"},
    # ... which no longer collapses under the completion attack but refuses benign requests in that format (65%):
    # every raw document it meets ends in a refusal. A quarter of the helpful rows written as raw documents, so a
    # raw document is answered when the request is benign (rh25 took benign completions 71% -> 52% on raw25)
    "derta-r1-lr10-mid-z33-more-own4-sorry-rh25": {**OWN4, "lead": "Sorry", "raw_helpful": 0.25},
    # ... the three levers together (twentieth session), each measured alone before: the lead (collapse under the
    # completion attack), raw helpful rows (benign requests in that format) and the refusal-token unlikelihood at
    # weight 1 (over-refusal inside benign answers; the token it lowers is now "Sorry"). Trained at three seeds
    "derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1": {**OWN4, "lead": "Sorry", "raw_helpful": 0.25, "ul": 1.0},
    # ... which over-refuses more than ul1 alone (three seeds: 27% vs 23%). The refusals ul1 leaves are mostly written into
    # a benign answer (15% of benign-but-scary answers, 8% at the start): RTO's refusal token after any text. Fewer
    # RTO positions per step (2% where the reference's full FT keeps 5%), with ul1; the prefix cells (89-98%) have
    # room above their 85% target
    "derta-r1-lr10-mid-z33-more-own4-ul1-k2": {**OWN4, "ul": 1.0, "keep": 0.02},
    # ... which costs the harmful side as much as it gains (direct 76%). Over-refusal at the start came down when
    # own4 gave the helpful rows the base model's answers to 72 scary train prompts (35% -> 12%), and the
    # unlikelihood lowers the refusal token at every helpful target, so more scary answers put it where the refusals
    # inside benign answers are. The stacked arm (the only one without collapse) with the base model's answers to the
    # train share of 270 more scary prompts (`benign-scary-more`, written for this), twice; vanilla on the same data
    "derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1-sm2": {**OWN4, "lead": "Sorry", "raw_helpful": 0.25, "ul": 1.0,
                                                           "scary_more": 2},
    "vanilla-r1-lr10-more-own4-sm2": {**BASE, "recipe": "vanilla", "ratio": 1.0, "lr": 1e-4, "more": True,
                                      "steps": 160, "own": 4, "scary_more": 2},
    # ... which leaves over-refusal at 23%, 13 of it "Sorry, I cannot" written inside a benign answer: RTO's refusal
    # token after any text, which more contrast at the turn start does not reach. The RTO positions, on the sm2 arm:
    # keep 0.03 uniform (between k2, which cut inside refusals to 5% and direct refusal to 76%, and 0.05), and keep
    # 0.02 front-weighted (t = 0 always, later positions with weight 1 / (1 + t): the turn start and the first tokens,
    # where direct, prefill and k = 5 are decided, keep their share; the middle of an answer, where benign answers
    # are interrupted, loses most of it). Chosen between on the val split
    **{f"derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1-sm2-{tag}": {
        **OWN4, "lead": "Sorry", "raw_helpful": 0.25, "ul": 1.0, "scary_more": 2, **fields}
       for tag, fields in (("k3", {"keep": 0.03}), ("front-k2", {"keep": 0.02, "schedule": "front"}))},
    # ... neither of which moved over-refusal without costing the harmful side (k3: 19%, prefill 67%; front-k2:
    # prefill 6%). The teacher-forced helpful rows never show the trained model's own half-written answer where it
    # turns to "Sorry": on-policy contrast (twenty-fourth session, `derta_contrast.py`). The sm2 models' answers to the
    # benign train prompts cut before each refusal written inside them, the base model's continuation of that text
    # trained (the cut text untrained), twice; with ul1 p("Sorry") is pushed down exactly where the model wrote it
    "derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1-sm2-oc2": {**OWN4, "lead": "Sorry", "raw_helpful": 0.25, "ul": 1.0,
                                                               "scary_more": 2, "contrast": 2},
    # ... which halved the refusals inside benign answers and cost prefill refusal (92% -> 79% held-out). Its 366 rows
    # also dilute the safety rows (each seen 0.64 times in 160 steps, sm2's 0.79): the same data at sm2's exposure
    # (160 x 1,992 / 1,626 = 196 steps) tells dilution from "go on after your own text" carrying over to a prefix
    "derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1-sm2-oc2-s196": {
        **OWN4, "lead": "Sorry", "raw_helpful": 0.25, "ul": 1.0, "scary_more": 2, "contrast": 2, "steps": 196},
}
