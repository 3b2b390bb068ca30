#!/bin/bash
# What derta_recipe.py's `-more` arms stand on, rebuilt from a fresh checkout (runs/ does not outlive a machine):
# the base model's own answers to the benign prompts (distilled), the refusal-SFT model that writes the harvest's
# refusals (vanilla-r1-lr10, seed 0) and the harvested triples (derta_triples.py). Two lanes, one thread each: the
# base model's half of the harvest (~35 min here) runs while the refuser distills and trains (~15 min). Deterministic:
# each rebuild so far gave the same 316 triples, source by source (RESULTS.md).
#
#     bash benchmarks/derta_rebuild.sh    # then e.g. derta_recipe.py --arms ... --seeds 0 --train-only
set -euo pipefail
cd "$(dirname "$0")/.."
P=${PYTHON:-.venv/bin/python}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p runs/derta_recipe
$P -c "from safekeel.models import prepare; prepare()"  # once, before two processes would both convert it
$P benchmarks/derta_triples.py --samples 2 --base-only > runs/derta_recipe/rebuild-harvest.log 2>&1 &
harvest=$!
$P benchmarks/derta_recipe.py --arms vanilla-r1-lr10 --seeds 0 --train-only  # distills the own answers first
$P - <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from derta_recipe import scary_more
print(len(scary_more(Path("runs/derta_recipe"))), "own answers to benign-scary-more train prompts")
PY
wait $harvest
$P benchmarks/derta_triples.py --samples 2
