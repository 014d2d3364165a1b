#!/usr/bin/env bash
# configs/canary-1b-flash.yaml for a few hundred steps on one CUDA GPU: bf16 autocast, the 2D
# 30x2 plan after a TPS-25 filter, and the batch-size table of the simulated search for this
# GPU's memory. Reports step time, audio seconds per second and peak memory per bucket against
# the peak the table predicted.
#
#   bash bench/gpu_train.sh [CORPUS_DIR]      # default data/gpu-corpus (synthesized if missing)
#
# Env: STEPS (300), HOURS of corpus (4), BUDGET for the search (default: 90% of the GPU).
# The corpus tokenizer has 512 pieces per language (vocabulary 2060); the search simulates the
# preset with its full 4108-token head, so its predicted peaks are a little high. Writes
# bench/results/<date>-train-gpu.md. Needs: `make install` (or the venv) and a GPU.
# Prepared without a GPU at hand: not run yet.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-data/gpu-corpus}
STEPS=${STEPS:-300}
HOURS=${HOURS:-4}
RUN=runs/gpu-train
OUT="bench/results/$(date +%F)-train-gpu.md"
PADLESS=${PADLESS:-padless}

python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
if [ ! -f "$CORPUS/corpus.json" ]; then
  "$PADLESS" corpus synth --out "$CORPUS" --hours "$HOURS" --seed 0
fi
if [ ! -f "$CORPUS/tokenizer-512/tokenizer.json" ]; then
  "$PADLESS" tokenizer train "$CORPUS/train.jsonl" --vocab-per-lang 512 --out "$CORPUS/tokenizer-512"
fi
mkdir -p "$RUN"
"$PADLESS" plan "$CORPUS/shards/train" --tokenizer "$CORPUS/tokenizer-512" --num-buckets 30 \
  --num-subbuckets 2 --tps-max 25 --min-duration 0.5 --max-duration 40 --out "$RUN/plan.json"
if [ -z "${BUDGET:-}" ]; then
  BUDGET=$(python -c "import torch; print(f'{0.9 * torch.cuda.mem_get_info()[1] / 2**30:.1f}GiB')")
fi
"$PADLESS" oomptimize --model canary-1b-flash --plan "$RUN/plan.json" --probe simulate \
  --memory-budget "$BUDGET" --dtype bf16 --out "$RUN/batch-sizes.json"

rm -rf "$RUN/train"
"$PADLESS" train configs/canary-1b-flash.yaml --run-dir "$RUN/train" \
  "data.train=$CORPUS/shards/train" "data.dev=null" "data.tokenizer=$CORPUS/tokenizer-512" \
  "data.plan=$RUN/plan.json" "data.num_workers=8" "batch.path=$RUN/batch-sizes.json" \
  "train.max_steps=$STEPS" "schedule.warmup_steps=100" "checkpoint.every_steps=0" \
  "checkpoint.keep_last=1" "validation.every_steps=0" "logging.interval=20" "resume=null"

python - "$RUN" "$STEPS" "$BUDGET" <<'EOF' > "$OUT"
import json, sys
from collections import defaultdict
from pathlib import Path

import torch

run, steps, budget = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
rows = [json.loads(line) for line in (run / "train" / "metrics.jsonl").read_text().splitlines()]
table = json.loads((run / "batch-sizes.json").read_text())
predicted = {r["index"]: r.get("peak_memory_bytes") for r in table["buckets"]}
warm = rows[20:]  # the first steps include CUDA start-up and allocator growth
by_bucket = defaultdict(list)
for r in warm:
    by_bucket[r["bucket"]].append(r)
print(f"# canary-1b-flash training on one GPU, bf16 (from bench/gpu_train.sh)\n")
print(f"GPU: {torch.cuda.get_device_name()}; {steps} steps; search budget {budget}.\n")
step = sum(r["step_time_s"] for r in warm) / len(warm)
speed = sum(r["audio_s"] for r in warm) / sum(r["step_time_s"] for r in warm)
print(f"Steps 21-{steps}: {step:.3f} s per step, {speed:.0f} audio s/s, "
      f"loss {warm[0]['loss']:.3f} -> {warm[-1]['loss']:.3f}, "
      f"peak {max(r['peak_mem_mb'] for r in rows) / 1024:.1f} GiB.\n")
print("| bucket | steps | batch size | step (s) | audio s/s | peak so far (GiB) | table's peak (GiB) |")
print("|---:|---:|---:|---:|---:|---:|---:|")
for b, rs in sorted(by_bucket.items()):
    p = predicted.get(b)
    print(f"| {b} | {len(rs)} | {rs[0]['batch_size']} | "
          f"{sum(r['step_time_s'] for r in rs) / len(rs):.3f} | "
          f"{sum(r['audio_s'] for r in rs) / sum(r['step_time_s'] for r in rs):.0f} | "
          f"{max(r['peak_mem_mb'] for r in rs) / 1024:.1f} | "
          f"{'-' if p is None else f'{p / 2**30:.1f}'} |")
print("\n`peak so far` is the allocator's running maximum (torch.cuda.max_memory_allocated), so a"
      " bucket's value bounds its own peak from above.")
EOF
cat "$OUT"
echo "-> $OUT"
