"""The columns of `attacks_table.py`: which `derta_recipe.py` arm is the vanilla and the DeRTa model of each recipe,
and where each recipe's runs live. One recipe per change measured under attack, so a table always names the arms
its columns came from."""

# the derta_recipe.py arm behind each column: today's recipe, or (--more) the same trained on the harvested triples
MORE = {"base": None, "vanilla": "vanilla-r1-lr10-more"}  # the columns every recipe on the harvested triples shares
OWN4 = {"base": None, "vanilla": "vanilla-r1-lr10-more-own4"}  # ... and every recipe varying the own4 DeRTa
RECIPES = {"default": {"base": None, "vanilla": "vanilla-r1-lr10", "derta": "derta-r1-lr10-mid-z33"},
           "more": {**MORE, "derta": "derta-r1-lr10-mid-z33-more"},
           # ... DeRTa with a quarter of its prefix rows as plain documents (the completion attack's collapse)
           "raw": {**MORE, "derta": "derta-r1-lr10-mid-z33-more-raw25"},
           "raw50": {**MORE, "derta": "derta-r1-lr10-mid-z33-more-raw50"},
           # ... raw25 with a quarter of prefix and helpful rows opening "I will ..." (the completion attack's echo)
           "fp25": {**MORE, "derta": "derta-r1-lr10-mid-z33-more-raw25-fp25"},
           # ... the same prefix rows, no helpful row opening with a commitment
           "fp25h0": {**MORE, "derta": "derta-r1-lr10-mid-z33-more-raw25-fp25h0"},
           # ... raw25 with a quarter of the helpful rows as raw documents too
           "rh25": {**MORE, "derta": "derta-r1-lr10-mid-z33-more-raw25-rh25"},
           # own4 (own answers x4), alone and with the refusal-token unlikelihood (sixteenth session): does pushing
           # p("I") down at non-refusal targets also stop the "I I I" collapse under the completion attack?
           "own4": {**OWN4, "derta": "derta-r1-lr10-mid-z33-more-own4"},
           "ul1": {**OWN4, "derta": "derta-r1-lr10-mid-z33-more-own4-ul1"},
           # today's recipe with every training refusal opening "Sorry, " (nineteenth session): the RTO token is no
           # longer the "I" the completion attack's "I will" makes the model echo
           "sorry": {"base": None, "vanilla": "vanilla-r1-lr10-sorry", "derta": "derta-r1-lr10-mid-z33-sorry"},
           "own4sorry": {**OWN4, "derta": "derta-r1-lr10-mid-z33-more-own4-sorry"},
           "own4sorryrh": {**OWN4, "derta": "derta-r1-lr10-mid-z33-more-own4-sorry-rh25"},
           # ... with the refusal-token unlikelihood too (the three levers together)
           "own4sorryrhul": {**OWN4, "derta": "derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1"},
           # ... with the base model's answers to the train prompts of benign-scary-more (twenty-second session)
           "own4sorryrhulsm2": {**OWN4, "derta": "derta-r1-lr10-mid-z33-more-own4-sorry-rh25-ul1-sm2"}}


def run_root(recipe: str) -> str:
    return "runs/attacks_table" if recipe == "default" else f"runs/attacks_table-{recipe}"
