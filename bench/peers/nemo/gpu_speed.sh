#!/usr/bin/env bash
# NeMo against padless decoding speed on one CUDA GPU (the GPU variant of speed.py): the
# random-weight Canary shape of speed.py, or a real Canary model you have locally, e.g.
#
#   bash bench/peers/nemo/gpu_speed.sh [CORPUS_DIR] [MODEL.nemo]
#
# MODEL.nemo (canary-1b-flash, canary-180m-flash, ...) is read from disk; nothing is downloaded.
# Needs the peer environment (`make -C bench/peers/nemo`, built on the GPU machine with a CUDA
# torch: TORCH_SPEC=torch==2.13.0 resolves to one there) and a corpus (`padless corpus synth`,
# default data/nemo-corpus, created if missing). Writes bench/results/<date>-nemo-speed-gpu.md.
set -euo pipefail
cd "$(dirname "$0")/../../.."
CORPUS=${1:-data/nemo-corpus}
MODEL=${2:-}
PY=bench/peers/nemo/.venv/bin/python
BATCH=${BATCH:-32}
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
if [ ! -f "$CORPUS/corpus.json" ]; then
  bench/peers/nemo/.venv/bin/padless corpus synth --out "$CORPUS" --hours 1 --seed 0
fi
"$PY" bench/peers/nemo/speed.py --corpus "$CORPUS" --device cuda --batch-size "$BATCH" \
  --threads 4 ${MODEL:+--checkpoint "$MODEL"} --conditions "One GPU, not shared."
