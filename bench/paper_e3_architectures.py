"""E3 of the paper: RTFx and size of the three architectures, both decoding modes, in one run.

    python bench/paper_e3_architectures.py [--corpus data/demo] [--quick]

The paper's Table 3 (RTX 6000 Ada, NeMo): Canary-1B (24+24 layers) RTFx 345 with 1018M
parameters, the small decoder (24+4) 1097 with 680M, Canary-1B-Flash (32+4) 992 with 882M.

- Parameter counts of the full-size presets, built on the meta device (no memory, no time).
- RTFx of the tiny presets on CPU (always): `padless.infer.rtfx.run_rtfx` as in
  ``bench/bench_rtfx.py`` (random weights, forced length, longest first, untimed warm-up,
  median of interleaved passes), kv cache and recompute decoding (NeMo's decoder recomputes).
- Where the time goes (`bench_rtfx.breakdown`): audio + features + encoder vs decoder seconds
  per preset and mode. Amdahl's law with the measured decoder share ``s`` of canary-1b and the
  measured decoder speed-up ``k`` of a small-decoder preset predicts its RTFx ratio
  ``1 / (1 - s + s / k)``, and says what decoder share the paper's GPU ratio implies: the
  measurement behind the rows that differ from the paper.
- With a CUDA device: the full-size presets in bf16 through ``bench/gpu_rtfx.sh`` (its record
  is linked; its table is appended).

Writes ``bench/results/<date>-e3-architectures.{md,json,png}``. ``--quick``: a 0.1 h corpus, one
pass. The machine is shared: the load average is recorded; CPU-time RTFx is reported beside wall
time, and ratios come from passes interleaved under the same load.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_rtfx  # bench/bench_rtfx.py: corpus preparation and the time breakdown
from paper import PaperRow, paper_table, rows_json  # bench/paper.py
from record import (  # bench/record.py
    REPO,
    RESULTS,
    command,
    environment,
    environment_info,
    record_path,
    today,
    write_json_record,
    write_record,
)

NAME = "e3-architectures"
FULL = ("canary-1b", "canary-1b-small-decoder", "canary-1b-flash")
TINY = tuple(f"tiny-{name}" for name in FULL)
MODES = ("kv", "recompute")
#: Paper, Table 3.
PAPER_RTFX = {"canary-1b": 345.0, "canary-1b-small-decoder": 1097.0, "canary-1b-flash": 992.0}
PAPER_PARAMS_M = {"canary-1b": 1018.0, "canary-1b-small-decoder": 680.0, "canary-1b-flash": 882.0}


def full_size_parameters() -> dict[str, dict[str, int]]:
    """Parameters by part of each full-size preset, counted on the meta device."""
    from padless.model import build_on_meta, get_config, parameter_counts

    return {name: parameter_counts(build_on_meta(get_config(name))) for name in FULL}


def amdahl(share: float, speedup: float, rest: float = 1.0) -> float:
    """Whole-pass speed-up when the part taking ``share`` of the time gets ``speedup`` faster
    and the rest takes ``rest`` times as long as before (a deeper encoder: > 1)."""
    return 1.0 / ((1.0 - share) * rest + share / speedup)


def implied_share(ratio: float, speedup: float, rest: float = 1.0) -> float:
    """The share the sped-up part must have had for the whole to gain ``ratio`` (`amdahl`
    solved for ``share``)."""
    return (rest - 1.0 / ratio) / (rest - 1.0 / speedup)


def run_gpu(corpus: Path) -> dict[str, Any] | None:
    """``bench/gpu_rtfx.sh`` on the full-size presets when CUDA is there; its record's paths."""
    if not torch.cuda.is_available():
        return None
    start = time.perf_counter()
    subprocess.run(["bash", "bench/gpu_rtfx.sh", str(corpus)], check=True, cwd=REPO)
    md = REPO / "bench" / "results" / f"{today()}-rtfx-gpu.md"
    return {"record": str(md), "wall_s": round(time.perf_counter() - start, 1)}


def analyse(by: dict[tuple[str, str], Any], split: dict[tuple[str, str], tuple[float, float]]):
    """Per small-decoder preset and mode: measured ratio, decoder share of tiny-canary-1b,
    decoder speed-up, Amdahl's prediction, and the share the paper's ratio implies."""
    base = TINY[0]
    out: dict[str, dict[str, float]] = {}
    for name, full in zip(TINY[1:], FULL[1:], strict=True):
        for mode in MODES:
            enc0, dec0 = split[(base, mode)]
            enc1, dec1 = split[(name, mode)]
            share = dec0 / (enc0 + dec0)
            k = dec0 / dec1
            paper = PAPER_RTFX[full] / PAPER_RTFX[FULL[0]]
            out[f"{name}/{mode}"] = {
                "ratio": by[(name, mode)].rtfx_cpu / by[(base, mode)].rtfx_cpu,
                "ratio_wall": by[(name, mode)].rtfx / by[(base, mode)].rtfx,
                "decoder_share_base": share,
                "decoder_speedup": k,
                "encoder_ratio": enc1 / enc0,
                "amdahl": amdahl(share, k, enc1 / enc0),
                "paper_ratio": paper,
                "paper_implied_share": implied_share(paper, k, enc1 / enc0),
            }
    return out


def rows(
    by: dict[tuple[str, str], Any], params: dict[str, dict[str, int]], why: dict[str, Any]
) -> list[PaperRow]:
    out = [
        PaperRow(
            f"{full} parameters",
            params[full]["total"] / 1e6,
            PAPER_PARAMS_M[full],
            unit="M",
            digits=0,
            note="our preset's parts are in the parameter table below",
        )
        for full in FULL
    ]
    out += [
        PaperRow(
            f"{tiny} RTFx, recompute (CPU time) vs {full} (paper GPU)",
            by[(tiny, "recompute")].rtfx_cpu,
            PAPER_RTFX[full],
            digits=0,
            note=f"{by[(tiny, 'recompute')].params / 1e6:.1f}M parameters on one CPU thread "
            f"against {params[full]['total'] / 1e6:.0f}M on an RTX 6000 Ada: absolute RTFx are "
            "not comparable, the ratios between architectures are",
        )
        for tiny, full in zip(TINY, FULL, strict=True)
    ]
    for name in TINY[1:]:
        for mode in MODES:
            w = why[f"{name}/{mode}"]
            note = (
                f"tiny-canary-1b spends {w['decoder_share_base']:.0%} of its {mode} pass (CPU "
                f"time) in the decoder; this preset's decoder is {w['decoder_speedup']:.1f}x "
                f"faster and its encoder pass takes {w['encoder_ratio']:.2f}x as long, so "
                f"Amdahl's law predicts {w['amdahl']:.2f}x (measured {w['ratio']:.2f}x). For "
                f"the paper's {w['paper_ratio']:.2f}x with the same decoder speed-up, the "
                f"decoder would have to take {w['paper_implied_share']:.0%} of canary-1b's "
                "time: on the GPU the decoder's share is far larger than on this CPU, and the "
                "share, not the architecture, sets the ratio"
            )
            out.append(
                PaperRow(
                    f"{name} / {TINY[0]} RTFx, {mode}",
                    w["ratio"],
                    w["paper_ratio"] if mode == "recompute" else None,
                    unit="x",
                    note=note,
                )
            )
    return out


def render(record: dict[str, Any], table: list[PaperRow]) -> str:
    by = {(r["preset"], r["decoding"]): r for r in record["results"]}
    lines = [
        f"# E3: the three architectures, RTFx and size ({record['date']})",
        "",
        f"Command: `{record['command']}` ({record['wall_s']:.0f} s)",
        "",
        f"Corpus: `{record['corpus']}`, {record['utterances']} utterances, "
        f"{record['results'][0]['audio_s']:,.0f} s of audio, forced length "
        f"({record['forced_tokens']:,} output tokens). Tiny presets, random weights, fp32, "
        f"batch {record['batch_size']}, {record['threads']} torch thread, median of "
        f"{record['repeats']} interleaved passes. The machine was shared with other jobs "
        f"(load average before / after: {record['load_average']['before'][0]:.2f} / "
        f"{record['load_average']['after'][0]:.2f}); the CPU-time columns are the steadier "
        "ones.",
        "",
        "| architecture | full-size params | paper params | paper RTFx (GPU) "
        "| tiny params | kv RTFx | recompute RTFx | kv RTFx (CPU time) "
        "| recompute RTFx (CPU time) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for full, tiny in zip(FULL, TINY, strict=True):
        kv, rc = by[(tiny, "kv")], by[(tiny, "recompute")]
        lines.append(
            f"| {full} | {record['full_params'][full]['total'] / 1e6:.0f}M "
            f"| {PAPER_PARAMS_M[full]:.0f}M | {PAPER_RTFX[full]:.0f} | {kv['params'] / 1e6:.2f}M "
            f"| {kv['rtfx']:.1f} | {rc['rtfx']:.1f} | {kv['rtfx_cpu']:.1f} | {rc['rtfx_cpu']:.1f} |"
        )
    lines += [
        "",
        "## Against the paper",
        "",
        paper_table(table),
        "## Where the time goes (one pass each, process CPU seconds)",
        "",
        "| preset | mode | audio + features + encoder | decoder | decoder share |",
        "|---|---|---:|---:|---:|",
    ]
    for key, (enc, dec) in record["breakdown_s"].items():
        name, mode = key.split("/")
        lines.append(f"| {name} | {mode} | {enc:.2f} | {dec:.2f} | {dec / (enc + dec):.0%} |")
    lines += [
        "",
        "Ratios to tiny-canary-1b by CPU time; Amdahl: 1 / ((1 - s) x encoder ratio + s / k) "
        "with s the decoder share of tiny-canary-1b and k the decoder speed-up. The last column "
        "solves it for s at the paper's ratio (recompute: NeMo's decoding).",
        "",
        "| preset / mode | measured ratio | wall-time ratio | decoder share of tiny-canary-1b "
        "| decoder speed-up | encoder ratio | Amdahl | paper | decoder share the paper implies |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, w in record["why"].items():
        recompute = key.endswith("/recompute")
        paper = f"{w['paper_ratio']:.2f}x" if recompute else "-"
        implied = f"{w['paper_implied_share']:.0%}" if recompute else "-"
        lines.append(
            f"| {key} | {w['ratio']:.2f}x | {w['ratio_wall']:.2f}x | "
            f"{w['decoder_share_base']:.0%} | {w['decoder_speedup']:.1f}x "
            f"| {w['encoder_ratio']:.2f}x | {w['amdahl']:.2f}x | {paper} | {implied} |"
        )
    lines += [
        "",
        "Full-size parameters by part (meta device):",
        "",
        "| preset | encoder | projection | decoder | total |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, p in record["full_params"].items():
        lines.append(
            f"| {name} | {p['encoder'] / 1e6:.0f}M | {p['projection'] / 1e6:.1f}M "
            f"| {p['decoder'] / 1e6:.0f}M | {p['total'] / 1e6:.0f}M |"
        )
    gpu = record.get("gpu")
    lines += ["", "## GPU (full-size presets, bf16)", ""]
    if gpu is None:
        lines.append(
            "No CUDA device on this machine: the full-size presets were not timed "
            "(`bash bench/gpu_rtfx.sh` does it, and this script runs it when a GPU is present)."
        )
    else:
        lines += [
            f"`bench/gpu_rtfx.sh` ({gpu['wall_s']:.0f} s):",
            "",
            Path(gpu["record"]).read_text(),
        ]
    lines += ["", environment(load_before=record["load_average"]["before"], info=record["machine"])]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--corpus", type=Path, default=REPO / "data" / "demo")
    ap.add_argument("--hours", type=float, default=None, help="corpus size if created (0.6)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=None, help="timed passes (3; --quick: 1)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="0.1 h corpus, one pass")
    ap.add_argument("--no-gpu", action="store_true", help="skip the full-size GPU run")
    ap.add_argument("--out-dir", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from padless.data.stream import read_manifest
    from padless.infer.cpu import keep_freed_memory
    from padless.infer.rtfx import RtfxConfig, build_timing_model, run_rtfx, timing_inputs

    hours = args.hours or (0.1 if args.quick else 0.6)
    repeats = args.repeats or (1 if args.quick else 3)
    start = time.perf_counter()
    params = full_size_parameters()
    tokenizer = bench_rtfx.prepare(args.corpus, hours, 0, 512)
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    splits = [str(args.corpus / f"{s}.jsonl") for s in ("train", "dev", "test")]
    examples = list(read_manifest(splits))
    inputs = timing_inputs(examples, tokenizer, forced_length=True)
    config = RtfxConfig(batch_size=args.batch_size, forced_length=True, repeats=repeats)
    models = {n: build_timing_model(n, config, tokenizer.vocab_size, 0) for n in TINY}
    load_before = os.getloadavg()
    results = run_rtfx(models, examples, MODES, config, tokenizer)
    by = {(r.preset, r.decoding): r for r in results}
    split = {
        (n, m): bench_rtfx.breakdown(
            models[n], examples, inputs, args.batch_size, m, clock=time.process_time
        )
        for n in TINY
        for m in MODES
    }
    load_after = os.getloadavg()
    gpu = None if args.no_gpu else run_gpu(args.corpus)
    why = analyse(by, split)
    table = rows(by, params, why)
    record = {
        "date": today(),
        "command": command(),
        "quick": args.quick,
        "corpus": str(args.corpus),
        "utterances": len(examples),
        "forced_tokens": sum(inputs.forced_lengths or []),
        "batch_size": args.batch_size,
        "threads": args.threads,
        "repeats": repeats,
        "full_params": params,
        "results": [asdict(r) for r in results],
        "breakdown_s": {f"{n}/{m}": list(v) for (n, m), v in split.items()},
        "why": why,
        "gpu": gpu,
        "paper_rows": rows_json(table),
        "load_average": {"before": list(load_before), "after": list(load_after)},
        "wall_s": round(time.perf_counter() - start, 1),
        "machine": environment_info("torch"),
    }
    write_json_record(NAME, record, args.out_dir)
    png = record_path(NAME, ".png", args.out_dir)
    bench_rtfx.plot(
        {
            "results": record["results"],
            "breakdown_s": record["breakdown_s"],
            "utterances": len(examples),
        },
        png,
    )
    text = render(record, table).replace(
        "## Against the paper", f"![E3]({png.name})\n\n## Against the paper", 1
    )
    write_record(NAME, text, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
