#!/usr/bin/env bash
# bf16 RTFx of the three full-size presets on one CUDA GPU, both decoding modes, in one run:
# canary-1b (24+24), canary-1b-small-decoder (24+4), canary-1b-flash (32+4); random weights,
# --forced-length (each utterance emits its reference's text tokens + EOS), batch 128, the
# Open ASR Leaderboard convention (longest first, untimed warm-up, audio reading timed).
#
#   bash bench/gpu_rtfx.sh [CORPUS_DIR]        # default data/demo; created if missing
#
# The presets keep their full-size 4108-token vocabulary: token counts come from the corpus
# tokenizer (512 pieces per language) and are written into a manifest as num_tokens, so
# bench-rtfx needs no --tokenizer (which would resize the output head). Writes
# bench/results/<date>-rtfx-gpu.json and .md. Needs: `make install` (or the venv) and a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
CORPUS=${1:-data/demo}
HOURS=${HOURS:-1.0}
BATCH=${BATCH:-128}
REPEATS=${REPEATS:-3}
OUT="bench/results/$(date +%F)-rtfx-gpu"
PADLESS=${PADLESS:-padless}

python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device')"
if [ ! -f "$CORPUS/corpus.json" ]; then
  "$PADLESS" corpus synth --out "$CORPUS" --hours "$HOURS" --seed 0
fi

python - "$CORPUS" <<'EOF'
import sys
from pathlib import Path

import orjson

from padless.data.stream import read_manifest
from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer

corpus = Path(sys.argv[1])
tok_dir = corpus / "tokenizer-512"
if not (tok_dir / "tokenizer.json").exists():
    train_tokenizer([str(corpus / "train.jsonl")], tok_dir, TokenizerTrainConfig(vocab_per_lang=512))
tok = CanaryTokenizer.load(tok_dir)
with (corpus / "rtfx-gpu.jsonl").open("wb") as out:
    for split in ("train", "dev", "test"):
        path = corpus / f"{split}.jsonl"
        rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
        for row, example in zip(rows, read_manifest(str(path)), strict=True):
            row["num_tokens"] = tok.num_tokens(example)
            out.write(orjson.dumps(row) + b"\n")
EOF

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT.gpu.txt" || true
"$PADLESS" bench-rtfx \
  --presets canary-1b,canary-1b-small-decoder,canary-1b-flash \
  --manifest "$CORPUS/rtfx-gpu.jsonl" \
  --device cuda --dtype bf16 --batch-size "$BATCH" \
  --decoding kv,recompute --forced-length --repeats "$REPEATS" --json > "$OUT.json"

python - "$OUT.json" "$OUT.gpu.txt" "$*" <<'EOF' > "$OUT.md"
import sys
from pathlib import Path

import orjson

report = orjson.loads(Path(sys.argv[1]).read_bytes())
by = {(r["preset"], r["decoding"]): r for r in report["results"]}
paper = {"canary-1b": 345, "canary-1b-small-decoder": 1097, "canary-1b-flash": 992}
print(f"# GPU RTFx of the full-size presets, bf16 (from bench/gpu_rtfx.sh)\n")
print(f"Command: `bash bench/gpu_rtfx.sh {sys.argv[3]}`; config: `{report['config']}`\n")
print("| preset | params | kv RTFx | recompute RTFx | kv / recompute | paper RTFx (RTX 6000 Ada) |")
print("|---|---:|---:|---:|---:|---:|")
for name in paper:
    kv, rc = by[(name, "kv")], by[(name, "recompute")]
    print(
        f"| {name} | {kv['params'] / 1e6:.0f}M | {kv['rtfx']:.0f} | {rc['rtfx']:.0f} | "
        f"{kv['rtfx'] / rc['rtfx']:.2f}x | {paper[name]} |"
    )
print("\n| ratio to canary-1b | recompute | kv | paper |\n|---|---:|---:|---:|")
for name in ("canary-1b-small-decoder", "canary-1b-flash"):
    rc = by[(name, "recompute")]["rtfx"] / by[("canary-1b", "recompute")]["rtfx"]
    kv = by[(name, "kv")]["rtfx"] / by[("canary-1b", "kv")]["rtfx"]
    print(f"| {name} | {rc:.2f}x | {kv:.2f}x | {paper[name] / paper['canary-1b']:.1f}x |")
print(f"\nMachine: `{report['machine']}`\n\n```\n{Path(sys.argv[2]).read_text()}```")
EOF
cat "$OUT.md"
