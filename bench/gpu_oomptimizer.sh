#!/usr/bin/env bash
# GPU validation of the batch-size search (issue 5), for a session that has a CUDA GPU.
#
#   bash bench/gpu_oomptimizer.sh            # canary-1b-small-decoder, bf16, 40 GiB budget
#   PRESET=canary-180m-flash BUDGET=20GiB bash bench/gpu_oomptimizer.sh
#
# Needs one CUDA GPU and a Python environment with a CUDA build of torch 2.13 and padless
# installed (`pip install -e .`); the device machine has no network, so bring it along.
# Compares the simulator with real steps (bench/bench_oomptimizer_gpu.py): peak allocated and
# reserved memory at fixed batch sizes, and the batch sizes each probe's search chooses.
# Expected run time on an H100/H200: a few minutes (six shapes; the simulator uses $WORKERS
# processes). Writes bench/results/<date>-oomptimizer-gpu-<preset>.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."

PRESET=${PRESET:-canary-1b-small-decoder}
BUDGET=${BUDGET:-40GiB}
DTYPE=${DTYPE:-bf16}
WORKERS=${WORKERS:-4}
PYTHON=${PYTHON:-python}

"$PYTHON" - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device (or a CPU build of torch)"
print(torch.__version__, torch.version.cuda, torch.cuda.get_device_name())
PY
nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv || true
"$PYTHON" bench/bench_oomptimizer_gpu.py --preset "$PRESET" --budget "$BUDGET" \
    --dtype "$DTYPE" --workers "$WORKERS"
