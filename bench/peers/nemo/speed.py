"""Side-by-side decoding speed: NeMo's own decoding against padless's, same converted weights,
same audio, same batches, CPU, one process.

Run in the NeMo peer environment, from the repo root::

    bench/peers/nemo/.venv/bin/python bench/peers/nemo/speed.py --corpus data/nemo-corpus

A random-weight Canary model (`SHAPE`, the tiny-canary-1b preset's widths and depths) is built
with NeMo, saved and converted. The corpus's test split is sorted longest first and cut into
batches of ``--batch-size``. Per batch, in turn: NeMo (preprocessor + encoder + projection, then
its greedy or beam generator, what ``transcribe`` runs) and padless (``AEDModel.encode``, then
``decode_memory`` with the ``kv`` and ``recompute`` caches), each timed as encoder and decoder.
Random weights rarely emit EOS, so every row decodes to its limit; padless is given NeMo's
batch limit (the batch's encoder frames + max_generation_delta - prompt), so both sides emit
the same tokens, which the script checks. ``--checkpoint`` times a real NeMo Canary model
instead (e.g. canary-1b-flash, a local .nemo: nothing is downloaded).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parents[1]))  # bench/record.py (after NeMo's `datasets`)

import canary  # noqa: E402
from equivalence import nemo_features, nemo_model  # noqa: E402

from padless.data.audio import load_audio  # noqa: E402
from padless.data.stream import read_manifest  # noqa: E402
from padless.infer import DecodingOptions, decode_memory  # noqa: E402
from padless.infer.transcribe import pad_audio  # noqa: E402
from padless.interop.nemo import from_nemo  # noqa: E402
from record import command, environment, write_record  # noqa: E402

SHAPE = canary.Shape("canary-speed", "canary", 80, 176, 6, 4, 176, 6, 4, 64, 9, 256, 2)
DELTA = 10
BEAM = 4
SYSTEMS = ("nemo", "padless-kv", "padless-recompute")


def nemo_generate(model: Any, strategy: str, memory, enc_lens, prompts: torch.Tensor):
    """NeMo's generator on a batch (raw rows: prompt, tokens, EOS, padding)."""
    from omegaconf import OmegaConf

    model.change_decoding_strategy(
        OmegaConf.create(
            {
                "strategy": strategy,
                "greedy": {"max_generation_delta": DELTA},
                "beam": {"beam_size": BEAM, "length_penalty": 0.0, "max_generation_delta": DELTA},
            }
        )
    )
    inner = model.decoding.decoding
    mask = (torch.arange(memory.shape[1], device=memory.device)[None] < enc_lens[:, None]).float()
    with torch.inference_mode():
        if strategy == "greedy":
            return inner.greedy_search(
                decoder_input_ids=prompts, encoder_hidden_states=memory, encoder_input_mask=mask
            )[0]
        return inner.beam_search(
            decoder_input_ids=prompts, encoder_hidden_states=memory, encoder_input_mask=mask
        )


def clock(device: torch.device) -> float:
    """Wall time after the device's queued work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def cut(row: list[int], prompt_len: int, eos: int) -> list[int]:
    row = row[prompt_len:]
    return row[: row.index(eos)] if eos in row else row


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.checkpoint is not None:
        path = args.checkpoint
    else:
        texts = canary.corpus_texts(args.corpus / "train.jsonl")
        path = canary.build(SHAPE, texts, args.work / f"{SHAPE.name}.nemo")
    device = torch.device(args.device)
    nemo = nemo_model(path).to(device)
    conv = from_nemo(path)
    model, tok = conv.model.to(device), conv.tokenizer
    examples = list(read_manifest(str(args.corpus / "test.jsonl"), require_text=False))
    waves = sorted((load_audio(ex) for ex in examples), key=len, reverse=True)
    lang = tok.block_order[0]
    prompt = tok.prompt_ids(lang, lang, "asr", True)
    batches = [waves[i : i + args.batch_size] for i in range(0, len(waves), args.batch_size)]
    times = {
        (s, strategy): {"encoder": 0.0, "decoder": 0.0}
        for s in SYSTEMS
        for strategy in ("greedy", "beam")
    }
    tokens: dict[tuple[str, str], int] = dict.fromkeys(times, 0)
    agree = {strategy: 0 for strategy in ("greedy", "beam")}
    rows = 0
    for index, batch in enumerate([batches[0], *batches]):  # the first pass warms up
        warmup = index == 0
        audio, lens = (t.to(device) for t in pad_audio(batch))
        prompts = torch.tensor([prompt] * len(batch), device=device)
        for strategy in ("greedy", "beam"):
            outputs: dict[str, list[list[int]]] = {}
            t0 = clock(device)
            with torch.inference_mode():
                _, _, memory, enc_lens = nemo_features(nemo, audio, lens)
            t1 = clock(device)
            raw = nemo_generate(nemo, strategy, memory, enc_lens, prompts).tolist()
            t2 = clock(device)
            outputs["nemo"] = [cut(r, len(prompt), tok.eos_id) for r in raw]
            if not warmup:
                times["nemo", strategy]["encoder"] += t1 - t0
                times["nemo", strategy]["decoder"] += t2 - t1
            for cache in ("kv", "recompute"):
                options = DecodingOptions(
                    strategy=strategy,
                    beam_size=BEAM,
                    length_penalty=0.0,
                    cache=cache,
                    max_generation_delta=DELTA,
                )
                t0 = clock(device)
                with torch.inference_mode():
                    mem, mem_lens = model.encode(audio, lens)
                t1 = clock(device)
                # NeMo's batch limit: every row gets the batch's encoder frames.
                limit = torch.full_like(mem_lens, mem.shape[1])
                hyps = decode_memory(
                    model, mem, mem_lens, [prompt] * len(batch), options, limit_lens=limit
                )
                t2 = clock(device)
                outputs[f"padless-{cache}"] = [h.tokens for h in hyps]
                if not warmup:
                    times[f"padless-{cache}", strategy]["encoder"] += t1 - t0
                    times[f"padless-{cache}", strategy]["decoder"] += t2 - t1
            if not warmup:
                for system in SYSTEMS:
                    tokens[system, strategy] += sum(len(t) for t in outputs[system])
                agree[strategy] += sum(
                    a == b == c for a, b, c in zip(*(outputs[s] for s in SYSTEMS), strict=True)
                )
        if not warmup:
            rows += len(batch)
        print(f"batch {index}/{len(batches)}", {k: v for k, v in times.items()}, flush=True)
    audio_s = sum(len(w) for w in waves) / 16000
    return {
        "model": str(path),
        "shape": SHAPE if args.checkpoint is None else None,
        "utterances": rows,
        "audio_s": audio_s,
        "times": times,
        "tokens": tokens,
        "identical": {k: f"{v}/{rows}" for k, v in agree.items()},
        "threads": torch.get_num_threads(),
        "device": str(device),
    }


def render(result: dict[str, Any], args: argparse.Namespace) -> str:
    audio_s = result["audio_s"]
    lines = [
        "# Decoding speed side by side: NeMo against padless (CPU)",
        "",
        f"`{command()}`",
        "",
        f"Model: {result['model']} (random weights built with NeMo; shape "
        f"{result['shape']}). {result['utterances']} utterances, {audio_s:.1f} s of audio "
        f"(the corpus's test split), longest first in batches of {args.batch_size}; "
        f"max_generation_delta {DELTA}, beam {BEAM}, length penalty 0; "
        f"device {result['device']}, {result['threads']} torch thread(s). Each batch runs "
        "NeMo then padless kv then padless recompute, for greedy then beam; one warm-up batch "
        "first, not counted. "
        f"{args.conditions} Compare rows within this record only.",
        "",
        f"Identical tokens on all three (utterances): greedy {result['identical']['greedy']}, "
        f"beam {result['identical']['beam']}.",
        "",
        "| search | system | encoder s | decoder s | total s | RTFx | decoder share | tokens | "
        "x NeMo (total) | x NeMo (decoder) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for strategy in ("greedy", "beam"):
        base = result["times"]["nemo", strategy]
        base_total = base["encoder"] + base["decoder"]
        for system in SYSTEMS:
            t = result["times"][system, strategy]
            total = t["encoder"] + t["decoder"]
            lines.append(
                f"| {strategy} | {system} | {t['encoder']:.2f} | {t['decoder']:.2f} | "
                f"{total:.2f} | {audio_s / total:.1f} | {t['decoder'] / total:.0%} | "
                f"{result['tokens'][system, strategy]} | {base_total / total:.2f} | "
                f"{base['decoder'] / t['decoder']:.2f} |"
            )
    lines += ["", environment("torch", "nemo_toolkit", load_before=args.load_before)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="padless corpus synth folder")
    parser.add_argument("--checkpoint", type=Path, help="a local NeMo Canary .nemo to time")
    parser.add_argument("--work", type=Path, default=Path("data/nemo-speed"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument(
        "--conditions",
        default="",
        help="how the machine was shared during the run, for the record",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.load_before = os.getloadavg()
    result = run(args)
    text = render(result, args)
    if args.no_record:
        print(text)
    else:
        write_record("nemo-speed" if args.device == "cpu" else "nemo-speed-gpu", text)


if __name__ == "__main__":
    main()
