"""Where NeMo's greedy decoding and padless's ``recompute`` reference spend their time: the
torch profiler's operators on one batch, same converted weights, same tokens.

Run in the NeMo peer environment after ``speed.py`` built its model::

    bench/peers/nemo/.venv/bin/python bench/peers/nemo/profile_recompute.py \\
        --corpus data/nemo-corpus --model data/nemo-speed/canary-speed.nemo

``recompute`` is meant to cost what NeMo's scheme costs (re-projecting self-attention keys and
values over the history and cross-attention keys and values over every encoder frame at every
step). The operator table shows whether the matrix products agree and what else each side
spends.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import profile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parents[1]))  # bench/record.py (after NeMo's `datasets`)

from equivalence import nemo_features, nemo_model  # noqa: E402
from speed import DELTA, cut, nemo_generate  # noqa: E402

from padless.data.audio import load_audio  # noqa: E402
from padless.data.stream import read_manifest  # noqa: E402
from padless.infer import DecodingOptions, decode_memory  # noqa: E402
from padless.infer.transcribe import pad_audio  # noqa: E402
from padless.interop.nemo import from_nemo  # noqa: E402
from record import command, environment, write_record  # noqa: E402

ROWS = 8


def top_ops(prof: profile, rows: int = ROWS) -> tuple[float, dict[str, float]]:
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) / 1e6
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:rows]
    return total, {e.key: e.self_cpu_time_total / 1e6 for e in ranked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True, help="speed.py's .nemo model")
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    nemo = nemo_model(args.model)
    conv = from_nemo(args.model)
    tok = conv.tokenizer
    examples = list(read_manifest(str(args.corpus / "test.jsonl"), require_text=False))
    waves = sorted((load_audio(ex) for ex in examples), key=len, reverse=True)
    batch = waves[args.batch_size : 2 * args.batch_size]  # the second batch of speed.py
    audio, lens = pad_audio(batch)
    prompt = tok.prompt_ids(tok.block_order[0], tok.block_order[0], "asr", True)
    prompts = torch.tensor([prompt] * len(batch))
    with torch.inference_mode():
        _, _, memory, enc_lens = nemo_features(nemo, audio, lens)
        ours_memory, ours_lens = conv.model.encode(audio, lens)
    options = DecodingOptions(cache="recompute", max_generation_delta=DELTA)
    limit = torch.full_like(ours_lens, ours_memory.shape[1])

    def run_nemo() -> list[list[int]]:
        rows = nemo_generate(nemo, "greedy", memory, enc_lens, prompts).tolist()
        return [cut(r, len(prompt), tok.eos_id) for r in rows]

    def run_ours() -> list[list[int]]:
        hyps = decode_memory(
            conv.model, ours_memory, ours_lens, [prompt] * len(batch), options, limit_lens=limit
        )
        return [h.tokens for h in hyps]

    results = {}
    for name, run in (("NeMo greedy", run_nemo), ("padless recompute greedy", run_ours)):
        run()  # warm-up
        with profile() as prof:
            tokens = run()
        results[name] = (top_ops(prof), tokens)
    (nemo_total, nemo_ops), nemo_tokens = results["NeMo greedy"]
    (ours_total, ours_ops), ours_tokens = results["padless recompute greedy"]
    names = list(dict.fromkeys([*nemo_ops, *ours_ops]))
    lines = [
        "# Profile: NeMo's greedy decoding against padless's recompute reference",
        "",
        f"`{command()}`",
        "",
        f"One batch of {len(batch)} utterances ({float(lens.sum()) / 16000:.1f} s of audio), "
        f"decoder only, max_generation_delta {DELTA} with NeMo's batch limit on both sides; "
        f"identical tokens: {nemo_tokens == ours_tokens} "
        f"({sum(len(t) for t in nemo_tokens)} tokens). Self CPU seconds per operator "
        "(torch.profiler, 1 thread), the top "
        f"{ROWS} of each side. Shared 2-core machine under load: compare the two columns.",
        "",
        "| operator | NeMo s | padless recompute s |",
        "|---|---|---|",
    ]
    for name in names:
        a, b = nemo_ops.get(name), ours_ops.get(name)
        lines.append(
            f"| {name} | {'' if a is None else f'{a:.3f}'} | {'' if b is None else f'{b:.3f}'} |"
        )
    lines.append(f"| **all operators** | **{nemo_total:.3f}** | **{ours_total:.3f}** |")
    lines += ["", environment("torch", "nemo_toolkit")]
    write_record("nemo-recompute-profile", "\n".join(lines))


if __name__ == "__main__":
    main()
