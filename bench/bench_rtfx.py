"""CPU RTFx of the three tiny presets in both decoding modes, in one run, on the embedded corpus.

    python bench/bench_rtfx.py --corpus data/demo --threads 1 --batch-size 32 --repeats 3

1. Main table (the issue's acceptance): `run_rtfx` over tiny-canary-1b, tiny-canary-1b-small-
   decoder and tiny-canary-1b-flash x {kv, recompute}, random weights, ``--forced-length`` (each
   utterance emits exactly its reference's text tokens + EOS), Open ASR Leaderboard convention
   (longest first, untimed warm-up batch, timed pass including audio reading). Every repeat
   runs all six pairs back to back; the median per pair is reported, so ratios come from
   measurements taken under the same machine load.
2. Where the time goes: one pass per preset and mode split into audio + features + encoder vs
   decoder, to explain why the CPU ratios differ from the paper's GPU ones.
3. Batch compaction: decoder-only time of tiny-canary-1b with finished rows kept vs dropped
   (``compact_threshold``), encoder states computed once and reused.

The corpus (0.6 h, seed 0) and its tokenizer (512 BPE pieces per language: the largest power of
two SentencePiece accepts on this corpus; Canary uses 1024) are created under ``--corpus`` when
missing. Writes ``bench/results/<date>-rtfx-cpu.md`` and ``.json``.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import torch
import typer

from padless.data.audio import load_audio
from padless.data.corpus.config import CorpusConfig
from padless.data.corpus.writer import synthesize_corpus
from padless.data.stream import read_manifest
from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer
from padless.infer import DecodingOptions, decode_memory
from padless.infer.cpu import keep_freed_memory
from padless.infer.rtfx import (
    RtfxConfig,
    RtfxResult,
    TimingInputs,
    build_timing_model,
    run_rtfx,
    timing_inputs,
)
from padless.infer.transcribe import longest_first_batches, pad_audio
from padless.model import AEDModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import (  # bench/record.py
    RESULTS,
    command,
    environment,
    environment_info,
    record_path,
    today,
    write_json_record,
    write_record,
)

PRESETS = ("tiny-canary-1b", "tiny-canary-1b-small-decoder", "tiny-canary-1b-flash")
MODES = ("kv", "recompute")
# Paper, Table 3: RTFx ratios to Canary-1B (GPU); the CPU prototype of these shapes.
PAPER = {"tiny-canary-1b-small-decoder": 3.2, "tiny-canary-1b-flash": 2.9}
PROTOTYPE = {"tiny-canary-1b-small-decoder": 2.0, "tiny-canary-1b-flash": 1.6}


def prepare(corpus: Path, hours: float, seed: int, pieces: int) -> CanaryTokenizer:
    if not (corpus / "corpus.json").exists():
        synthesize_corpus(CorpusConfig(hours=hours, seed=seed), corpus, progress=True)
    tok_dir = corpus / f"tokenizer-{pieces}"
    if not (tok_dir / "tokenizer.json").exists():
        config = TokenizerTrainConfig(vocab_per_lang=pieces)
        train_tokenizer([str(corpus / "train.jsonl")], tok_dir, config)
    return CanaryTokenizer.load(tok_dir)


def breakdown(
    model: AEDModel,
    examples: list,
    inputs: TimingInputs,
    batch_size: int,
    mode: str,
    clock: Callable[[], float] = time.perf_counter,
) -> tuple[float, float]:
    """(seconds in audio + features + encoder, seconds in the decoder) of one pass, by
    ``clock`` (wall time; ``time.process_time`` on a shared machine, with one thread)."""
    encode_s = decode_s = 0.0
    options = DecodingOptions(cache="kv" if mode == "kv" else "recompute")
    for batch in longest_first_batches(examples, batch_size):
        start = clock()
        audio, lens = pad_audio([load_audio(examples[i]) for i in batch])
        with torch.inference_mode():
            memory, memory_lens = model.encode(audio, lens)
        middle = clock()
        forced = inputs.forced_lengths
        assert forced is not None
        decode_memory(
            model,
            memory,
            memory_lens,
            [inputs.prompts[i] for i in batch],
            options,
            [forced[i] for i in batch],
        )
        encode_s += middle - start
        decode_s += clock() - middle
    return encode_s, decode_s


def compaction(
    model: AEDModel,
    examples: list,
    inputs: TimingInputs,
    batch_size: int,
    thresholds: list[float | None],
    repeats: int,
) -> dict[tuple[str, float | None], float]:
    """Median decoder-only seconds per (mode, threshold) over the corpus, encoder run once."""
    encoded = []
    for batch in longest_first_batches(examples, batch_size):
        audio, lens = pad_audio([load_audio(examples[i]) for i in batch])
        with torch.inference_mode():
            encoded.append((batch, *model.encode(audio, lens)))
    forced = inputs.forced_lengths
    assert forced is not None
    times: dict[tuple[str, float | None], list[float]] = {}
    for _ in range(repeats):
        for mode in MODES:
            for threshold in thresholds:
                options = DecodingOptions(
                    cache="kv" if mode == "kv" else "recompute", compact_threshold=threshold
                )
                start = time.perf_counter()
                for batch, memory, memory_lens in encoded:
                    decode_memory(
                        model,
                        memory,
                        memory_lens,
                        [inputs.prompts[i] for i in batch],
                        options,
                        [forced[i] for i in batch],
                    )
                times.setdefault((mode, threshold), []).append(time.perf_counter() - start)
    return {key: statistics.median(runs) for key, runs in times.items()}


def main(
    corpus: Annotated[Path, typer.Option(help="Embedded corpus folder (created if missing).")] = (
        Path("data/demo")
    ),
    hours: Annotated[float, typer.Option(help="Corpus size when it must be created.")] = 0.6,
    seed: Annotated[int, typer.Option(help="Corpus seed and weight seed.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Utterances per batch.")] = 32,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
    repeats: Annotated[int, typer.Option(help="Timed passes per pair (median).")] = 3,
    pieces: Annotated[int, typer.Option(help="Tokenizer BPE pieces per language.")] = 512,
    out_dir: Annotated[Path, typer.Option(help="Where the records go.")] = RESULTS,
) -> None:
    tokenizer = prepare(corpus, hours, seed, pieces)
    torch.set_num_threads(threads)
    malloc = keep_freed_memory()
    splits = [str(corpus / f"{split}.jsonl") for split in ("train", "dev", "test")]
    examples = list(read_manifest(splits))
    inputs = timing_inputs(examples, tokenizer, forced_length=True)
    config = RtfxConfig(batch_size=batch_size, forced_length=True, repeats=repeats)
    models = {
        name: build_timing_model(name, config, tokenizer.vocab_size, seed) for name in PRESETS
    }
    load_before = os.getloadavg()

    def progress(name: str, mode: str, repeat: int, rtfx: float) -> None:
        print(f"  pass {repeat + 1}: {name:<30} {mode:<10} RTFx {rtfx:7.1f}", file=sys.stderr)

    start = time.perf_counter()
    results = run_rtfx(models, examples, MODES, config, tokenizer, on_result=progress)
    main_s = time.perf_counter() - start
    print("breakdown", file=sys.stderr)
    split = {
        (name, mode): breakdown(models[name], examples, inputs, batch_size, mode)
        for name in PRESETS
        for mode in MODES
    }
    print("compaction", file=sys.stderr)
    thresholds: list[float | None] = [None, 0.5, 0.25]
    compact = compaction(models[PRESETS[0]], examples, inputs, batch_size, thresholds, repeats)
    load_after = os.getloadavg()

    record = {
        "command": command(),
        "config": asdict(config) | {"threads": threads, "malloc_keep_freed": malloc},
        "corpus": str(corpus),
        "tokenizer_pieces": pieces,
        "tokenizer_vocab": tokenizer.vocab_size,
        "utterances": len(examples),
        "forced_tokens": sum(inputs.forced_lengths or []),
        "results": [asdict(r) for r in results],
        "breakdown_s": {f"{n}/{m}": list(v) for (n, m), v in split.items()},
        "compaction_decoder_s": {f"{m}/{t}": v for (m, t), v in compact.items()},
        "load_average": {"before": load_before, "after": load_after},
        "machine": environment_info("torch"),
    }
    write_json_record("rtfx-cpu", record, out_dir)
    plot(record, record_path("rtfx-cpu", ".png", out_dir))
    write_record("rtfx-cpu", render(record, results, split, compact, main_s), out_dir)


def plot(record: dict, path: Path) -> None:
    """RTFx per preset and mode (median, passes as whiskers) and the encoder/decoder split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r["preset"], r["decoding"]): r for r in record["results"]}
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.38
    for k, mode in enumerate(MODES):
        xs = [i + (k - 0.5) * width for i in range(len(PRESETS))]
        rtfx = [by[(name, mode)]["rtfx"] for name in PRESETS]
        low = [r - min(by[(n, mode)]["rtfx_runs"]) for n, r in zip(PRESETS, rtfx, strict=True)]
        high = [max(by[(n, mode)]["rtfx_runs"]) - r for n, r in zip(PRESETS, rtfx, strict=True)]
        left.bar(xs, rtfx, width, yerr=[low, high], capsize=3, label=mode)
        split = [record["breakdown_s"][f"{name}/{mode}"] for name in PRESETS]
        encoder = [e for e, _ in split]
        right.bar(
            xs, encoder, width, color="0.6", label="audio + features + encoder" if k else None
        )
        right.bar(xs, [d for _, d in split], width, bottom=encoder, label=f"decoder ({mode})")
    labels = [PRESETS[0], *(name.removeprefix(PRESETS[0] + "-") for name in PRESETS[1:])]
    for ax in (left, right):
        ax.set_xticks(range(len(PRESETS)), labels)
        ax.legend(fontsize=8)
    left.set_ylabel("RTFx (audio s / wall s)")
    left.set_title("RTFx, median of passes (whiskers: min-max)")
    right.set_ylabel("seconds, one pass")
    right.set_title("Where the time goes")
    fig.suptitle(f"Tiny presets on CPU, {record['utterances']} utterances, forced length")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(
    record: dict,
    results: list[RtfxResult],
    split: dict[tuple[str, str], tuple[float, float]],
    compact: dict[tuple[str, float | None], float],
    main_s: float,
) -> str:
    by = {(r.preset, r.decoding): r for r in results}
    base = PRESETS[0]
    lines = [
        f"# CPU RTFx of the tiny presets, kv vs recompute ({today()})",
        "",
        f"Command: `{record['command']}`",
        "",
        f"Corpus: `{record['corpus']}` (train + dev + test), {record['utterances']} utterances, "
        f"{results[0].audio_s:,.1f} s of audio; forced length: {record['forced_tokens']:,} "
        f"output tokens (text + EOS, tokenizer with {record['tokenizer_pieces']} pieces per "
        "language, "
        f"vocab {record['tokenizer_vocab']}). Random weights (seed), fp32, batch "
        f"{record['config']['batch_size']}, {record['config']['threads']} torch thread(s), "
        f"glibc keep-freed-memory: {record['config']['malloc_keep_freed']}. "
        f"Median of {record['config']['repeats']} interleaved passes; main table took "
        f"{main_s:,.0f} s.",
        "",
        "## RTFx",
        "",
        "| preset | params | kv RTFx | recompute RTFx | kv / recompute | kv passes | rc passes |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for name in PRESETS:
        kv, rc = by[(name, "kv")], by[(name, "recompute")]
        lines.append(
            f"| {name} | {kv.params / 1e6:.2f}M | {kv.rtfx:.1f} | {rc.rtfx:.1f} | "
            f"**{kv.rtfx / rc.rtfx:.2f}x** | {', '.join(f'{x:.1f}' for x in kv.rtfx_runs)} | "
            f"{', '.join(f'{x:.1f}' for x in rc.rtfx_runs)} |"
        )
    lines += [
        "",
        "Same passes by process CPU time (audio s / CPU s; other processes on the shared machine "
        "inflate wall time, not this):",
        "",
        "| preset | kv RTFx (CPU time) | recompute RTFx (CPU time) | kv / recompute |",
        "|---|---:|---:|---:|",
    ]
    for name in PRESETS:
        kv, rc = by[(name, "kv")], by[(name, "recompute")]
        lines.append(
            f"| {name} | {kv.rtfx_cpu:.1f} | {rc.rtfx_cpu:.1f} | {kv.rtfx_cpu / rc.rtfx_cpu:.2f}x |"
        )
    lines += [
        "",
        "## Ratios to tiny-canary-1b (same decoding mode)",
        "",
        "| preset | recompute (NeMo-like) | recompute, CPU time | paper (GPU) | CPU prototype "
        "(issue) | kv | kv, CPU time |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(name: str, mode: str, cpu: bool = False) -> float:
        a, b = by[(name, mode)], by[(base, mode)]
        return a.rtfx_cpu / b.rtfx_cpu if cpu else a.rtfx / b.rtfx

    for name in PRESETS[1:]:
        lines.append(
            f"| {name} | {ratio(name, 'recompute'):.2f}x | "
            f"{ratio(name, 'recompute', True):.2f}x | {PAPER[name]}x | ~{PROTOTYPE[name]}x | "
            f"{ratio(name, 'kv'):.2f}x | {ratio(name, 'kv', True):.2f}x |"
        )
    lines += [
        "",
        "## Where the time goes (one pass each, seconds)",
        "",
        "| preset | mode | audio + features + encoder | decoder | decoder share |",
        "|---|---|---:|---:|---:|",
    ]
    for (name, mode), (enc, dec) in split.items():
        lines.append(f"| {name} | {mode} | {enc:.2f} | {dec:.2f} | {dec / (enc + dec):.0%} |")
    lines += [
        "",
        f"## Batch compaction ({base}, decoder only, seconds, median)",
        "",
        "| mode | never compact | compact at 50% finished | compact at 25% finished |",
        "|---|---:|---:|---:|",
    ]
    for mode in MODES:
        cells = [compact[(mode, t)] for t in (None, 0.5, 0.25)]
        lines.append(f"| {mode} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")
    # The machine's load average was taken right after the measurements (load_average.after).
    before = record["load_average"]["before"]
    lines += ["", environment(load_before=before, info=record["machine"])]
    return "\n".join(lines)


if __name__ == "__main__":
    typer.run(main)
