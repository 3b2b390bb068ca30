#!/usr/bin/env bash
# SSAH tested in its own order on an aligned model (issue 12), with the commands a user would type:
#   units scored on the model's OWN refusals -> classes -> ablation (ESU vs as many RU vs as many random units)
#   -> fine-tuning attacks (harmful10, harmful50, benign QA chats) x all six defenses x 2 lrs (ATTACKS / DEFENSES
#   narrow the grid). Run it again with the vanilla model (and its train.jsonl) for the second aligned model.
# Every stage is skipped when its output exists, so the script resumes. Results: $OUT/ablate-*/, $OUT/tamper/.
#   benchmarks/ssah_tamper.sh ALIGNED_MODEL_DIR OUT ALIGNMENT_TRAIN_JSONL [ablate|tamper|all]
set -euo pipefail
M=$1; OUT=$2; EXCL=$3; WHAT=${4:-all}
SK=${SAFEKEEL:-safekeel}
if [ "$WHAT" != tamper ]; then
  [ -f "$OUT/units/scores.safetensors" ] || $SK units score --model "$M" --method ssah --safety own \
      --n-safety 64 --n-utility 64 --out "$OUT/units"
  [ -f "$OUT/units/unit_map.safetensors" ] || $SK units classify "$OUT/units"
fi
if [ "$WHAT" = ablate ] || [ "$WHAT" = all ]; then
  ABL=("$OUT/units" --model "$M" --behaviors harmbench --n-behaviors 50 --n-utility 24 --n-checks 60)
  [ -f "$OUT/ablate-esu/summary.json" ] || $SK units ablate "${ABL[@]}" --classes esu --control true --dense true \
      --out "$OUT/ablate-esu"
  [ -f "$OUT/ablate-ru/summary.json" ] || $SK units ablate "${ABL[@]}" --classes ru --match esu --control false \
      --dense false --out "$OUT/ablate-ru"
fi
if [ "$WHAT" = tamper ] || [ "$WHAT" = all ]; then
  $SK tamper --model "$M" --unit-map "$OUT/units" --attacks "${ATTACKS:-harmful10,harmful50,benign}" --lrs 5e-5,2e-4 \
      --defenses "${DEFENSES:-none,ssah,random,top_safety,constrained,lora}" --steps 16 --batch-size 4 --max-length 256 \
      --n-benign 16 --max-new-tokens 48 --exclude "$EXCL" --out "$OUT/tamper"
fi
