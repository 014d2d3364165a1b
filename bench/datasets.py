"""Benchmark datasets for the sampling engine, written as metadata-only NeMo manifests.

Three generators, each a command of this script and a function of this module:

    python bench/datasets.py canary-mix --n 1000000 --seed 0 --out /tmp/canary-1m.jsonl
    python bench/datasets.py real --real-dir ../shared/data/real --work-dir /tmp/padless-work \
        --out /tmp/real.jsonl [--vocab-per-lang 1024]
    python bench/datasets.py big --n 1000000 --from /tmp/real.jsonl --out /tmp/real-1m.jsonl

Every line is a NeMo-style JSON object without audio (``audio_filepath`` absent, so readers give
``Example.audio = None``) and with ``num_tokens`` = Canary prompt (5) + text tokens + EOS (1), so
the sampler needs no tokenizer::

    {"id": "cmix-0000000", "duration": 17.134, "num_tokens": 93, "source_lang": "en",
     "target_lang": "de", "taskname": "ast", "pnc": "yes"}

``canary-mix`` is synthetic (the shape below); ``real`` tokenizes the shared real metadata with
padless's Canary tokenizer; ``big`` bootstraps any manifest to N lines with fresh ids. Files are
written where ``--out`` says (never into the repo: 1M lines are ~150 MB). Import it from other
bench scripts with ``sys.path.insert(0, "bench")`` then ``import datasets as bench_datasets``
(the name would shadow Hugging Face ``datasets``, which padless does not use).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import orjson
import typer

#: Canary-1B decoder prompt length: <|startoftranscript|><|src|><|task|><|tgt|><|pnc|>.
PROMPT_TOKENS = 5
#: Tokens every target adds after the text: <|endoftext|>.
EOS_TOKENS = 1
#: Duration range of the mix (the paper's buckets span 0.5-40 s).
MIN_DURATION = 0.5
MAX_DURATION = 40.0
#: Tokens-per-second threshold the paper filters at (Canary-1B-Flash).
TPS_FILTER = 25.0
#: Salts of the random streams (see `_rng`).
_MIX_STREAM = 0x6D6978
_BOOTSTRAP_STREAM = 0x626967


@dataclass(frozen=True)
class MixComponent:
    """One kind of recording in the synthetic mix.

    ``shape`` picks the duration law and ``p1``/``p2`` its parameters: ``uniform`` (low, high),
    ``lognormal`` (median seconds, sigma of log), ``normal`` (mean, std). Draws outside
    [MIN_DURATION, MAX_DURATION] are redrawn, so each law is truncated to that range.
    ``speech_fraction`` is the (low, high) uniform range of the share of the recording that
    carries speech; it scales the transcript length (music, noise and silence add no tokens).
    """

    name: str
    weight: float
    shape: Literal["uniform", "lognormal", "normal"]
    p1: float
    p2: float
    speech_fraction: tuple[float, float]


@dataclass(frozen=True)
class CanaryMixConfig:
    """The shape of the synthetic Canary-like length mix (defaults: the documented mix).

    Mean duration ~17 s over 0.5-40 s, four languages with ASR and AST, a per-language speaking
    rate in 1024-piece SentencePiece tokens, long low-speech recordings (low TPS) and a small
    share of high-TPS outliers (bad synthetic translations) that a TPS <= 25 filter removes.
    """

    components: tuple[MixComponent, ...] = (
        # Commands, backchannels, short answers.
        MixComponent("short", 0.04, "uniform", MIN_DURATION, 2.0, (0.7, 1.0)),
        # Crowd-sourced read prompts (Common Voice: ~5 s, leading/trailing silence).
        MixComponent("crowd-read", 0.20, "lognormal", 5.0, 0.35, (0.6, 0.95)),
        # Read audiobooks segmented to ~10-20 s (LibriSpeech / MLS).
        MixComponent("audiobook", 0.28, "normal", 14.5, 3.5, (0.85, 1.0)),
        # Long-form speech cut at <= 40 s (parliament, podcasts, video).
        MixComponent("long-form", 0.425, "normal", 25.0, 8.0, (0.75, 1.0)),
        # Long recordings with little speech: music, noise, silence; few tokens (low TPS).
        MixComponent("low-speech", 0.05, "uniform", 10.0, MAX_DURATION, (0.0, 0.25)),
        # Bad synthetic translations / hallucinated targets: far too many tokens (high TPS).
        MixComponent("tps-outlier", 0.005, "lognormal", 3.0, 0.6, (1.0, 1.0)),
    )
    languages: tuple[str, ...] = ("en", "de", "fr", "es")
    #: Share of each language as the source (spoken) language.
    source_weights: tuple[float, ...] = (0.55, 0.15, 0.15, 0.15)
    #: Text tokens per second of speech in each language (1024-piece BPE, punctuated text).
    text_tokens_per_speech_second: tuple[float, ...] = (4.4, 5.2, 5.0, 5.3)
    #: Per-speaker speaking-rate spread: lognormal sigma of a multiplicative factor.
    speaker_rate_sigma: float = 0.25
    #: Share of AST examples (en -> de/fr/es, de/fr/es -> en); the rest is ASR.
    ast_share: float = 0.25
    #: Share of targets with punctuation and capitalisation.
    pnc_share: float = 0.9
    #: Text TPS range (uniform) of the outlier component: always above TPS_FILTER.
    outlier_text_tps: tuple[float, float] = (26.0, 60.0)
    #: Id prefix; ids are ``{prefix}-{index}`` zero-padded.
    id_prefix: str = "cmix"
    tasks: tuple[str, ...] = field(default=("asr", "ast"), init=False)

    def __post_init__(self) -> None:
        if abs(sum(c.weight for c in self.components) - 1.0) > 1e-9:
            raise ValueError("mix component weights must sum to 1")
        if len(self.source_weights) != len(self.languages) or len(
            self.text_tokens_per_speech_second
        ) != len(self.languages):
            raise ValueError("one source weight and one token rate per language")
        if self.languages[0] != "en":
            raise ValueError("AST pairs are built around English: languages[0] must be 'en'")


@dataclass(frozen=True)
class MixSample:
    """A generated mix as columns (one row per example)."""

    duration: np.ndarray  # (N,) float64 seconds, rounded to ms
    num_tokens: np.ndarray  # (N,) int64: prompt + text + EOS
    source_lang: np.ndarray  # (N,) int8 index into config.languages
    target_lang: np.ndarray  # (N,) int8
    task: np.ndarray  # (N,) int8: 0 asr, 1 ast
    pnc: np.ndarray  # (N,) bool
    component: np.ndarray  # (N,) int8 index into config.components
    config: CanaryMixConfig

    def __len__(self) -> int:
        return int(self.duration.shape[0])


def _draw_durations(rng: np.random.Generator, comp: MixComponent, n: int) -> np.ndarray:
    def draw(k: int) -> np.ndarray:
        if comp.shape == "uniform":
            return rng.uniform(comp.p1, comp.p2, k)
        if comp.shape == "lognormal":
            return comp.p1 * np.exp(rng.normal(0.0, comp.p2, k))
        return rng.normal(comp.p1, comp.p2, k)

    out = np.round(draw(n), 3)
    bad = (out < MIN_DURATION) | (out > MAX_DURATION)
    while bad.any():  # truncate by redrawing: no pile-up at the range ends
        out[bad] = np.round(draw(int(bad.sum())), 3)
        bad = (out < MIN_DURATION) | (out > MAX_DURATION)
    return out


def _rng(seed: int, stream: int) -> np.random.Generator:
    """A generator for one of this module's streams. Seeding with the bare ``seed`` would share
    the stream of every other ``default_rng(seed)``, e.g. the reservoir keys of a sampler's
    plan, and correlate the data with the sample drawn from it (measured: a bottom-k sample of
    the mix with seed 0 had a mean duration of 9.8 s instead of 16.8 s)."""
    return np.random.default_rng([seed, stream])


def sample_canary_mix(n: int, seed: int = 0, config: CanaryMixConfig | None = None) -> MixSample:
    """Draw ``n`` examples of the Canary-like mix; the same (n, seed, config) gives the same mix."""
    cfg = config or CanaryMixConfig()
    rng = _rng(seed, _MIX_STREAM)
    weights = np.array([c.weight for c in cfg.components])
    component = rng.choice(len(cfg.components), size=n, p=weights).astype(np.int8)

    duration = np.empty(n)
    speech = np.empty(n)
    for k, comp in enumerate(cfg.components):
        mask = component == k
        m = int(mask.sum())
        duration[mask] = _draw_durations(rng, comp, m)
        speech[mask] = rng.uniform(*comp.speech_fraction, m)

    num_langs = len(cfg.languages)
    source = rng.choice(num_langs, size=n, p=np.asarray(cfg.source_weights)).astype(np.int8)
    outlier = np.array([c.name == "tps-outlier" for c in cfg.components])[component]
    task = ((rng.random(n) < cfg.ast_share) | outlier).astype(np.int8)
    # AST pairs: English -> one of the others; any other language -> English.
    other = rng.integers(1, num_langs, n).astype(np.int8)
    target = np.where(task == 1, np.where(source == 0, other, 0), source).astype(np.int8)
    pnc = rng.random(n) < cfg.pnc_share

    rate = np.asarray(cfg.text_tokens_per_speech_second)[target]
    speaker = np.exp(rng.normal(0.0, cfg.speaker_rate_sigma, n))
    text = rng.poisson(duration * speech * rate * speaker)
    bad_tps = rng.uniform(*cfg.outlier_text_tps, n)
    text = np.where(outlier, np.ceil(duration * bad_tps), text).astype(np.int64)
    num_tokens = PROMPT_TOKENS + text + EOS_TOKENS
    return MixSample(duration, num_tokens, source, target, task, pnc, component, cfg)


def _id_width(n: int) -> int:
    return max(7, len(str(max(n - 1, 0))))


def write_canary_mix(sample: MixSample, out: Path) -> None:
    """Write a generated mix as a metadata-only NeMo manifest."""
    cfg = sample.config
    langs = cfg.languages
    width = _id_width(len(sample))
    pnc_text = ("no", "yes")
    rows = zip(
        sample.duration.tolist(),
        sample.num_tokens.tolist(),
        sample.source_lang.tolist(),
        sample.target_lang.tolist(),
        sample.task.tolist(),
        sample.pnc.tolist(),
        strict=True,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        f.writelines(
            orjson.dumps(
                {
                    "id": f"{cfg.id_prefix}-{i:0{width}d}",
                    "duration": d,
                    "num_tokens": t,
                    "source_lang": langs[s],
                    "target_lang": langs[g],
                    "taskname": cfg.tasks[k],
                    "pnc": pnc_text[p],
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for i, (d, t, s, g, k, p) in enumerate(rows)
        )


def length_statistics(duration: np.ndarray, num_tokens: np.ndarray) -> dict[str, float | int]:
    """Duration and tokens-per-second summary used to check a manifest against its description."""
    tps = num_tokens / duration
    pct = np.percentile(duration, [10, 50, 90, 99])
    return {
        "examples": int(duration.shape[0]),
        "hours": float(duration.sum() / 3600),
        "duration_mean": float(duration.mean()),
        "duration_min": float(duration.min()),
        "duration_p10": float(pct[0]),
        "duration_p50": float(pct[1]),
        "duration_p90": float(pct[2]),
        "duration_p99": float(pct[3]),
        "duration_max": float(duration.max()),
        "tokens_mean": float(num_tokens.mean()),
        "tps_median": float(np.median(tps)),
        "tps_p99": float(np.percentile(tps, 99)),
        f"share_tps_over_{TPS_FILTER:g}": float((tps > TPS_FILTER).mean()),
        "share_tps_under_2": float((tps < 2.0).mean()),
    }


def read_lengths(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(durations, num_tokens) of a manifest with ``num_tokens`` on every line."""
    durations: list[float] = []
    tokens: list[int] = []
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = orjson.loads(line)
            if row.get("num_tokens") is None:
                raise ValueError(f"{path}:{lineno}: no num_tokens")
            durations.append(float(row["duration"]))
            tokens.append(int(row["num_tokens"]))
    return np.asarray(durations), np.asarray(tokens, dtype=np.int64)


def bootstrap_manifest(src: Path, out: Path, n: int, seed: int = 0, prefix: str = "big") -> int:
    """Write ``n`` lines drawn with replacement from ``src``, each with a fresh unique id.

    Every field but ``id`` is copied verbatim. Returns the number of source lines.
    """
    # Source lines without their id, as "{...}" JSON, packed in one buffer: keeping 1M small
    # bytes objects from orjson.dumps costs ~3 us each in allocator churn, the buffer ~0.2 us.
    packed = bytearray()
    ends: list[int] = []
    with open(src, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise ValueError(f"{src}:{lineno}: bad JSON: {err}") from err
            if not isinstance(row, dict):
                raise ValueError(f"{src}:{lineno}: not a JSON object")
            row.pop("id", None)
            packed += orjson.dumps(row)
            ends.append(len(packed))
    if not ends:
        raise ValueError(f"{src}: no lines to resample")
    starts = [0, *ends[:-1]]
    view = memoryview(packed)
    pick = _rng(seed, _BOOTSTRAP_STREAM).integers(0, len(ends), n).tolist()
    width = _id_width(n)

    def lines() -> Iterator[bytes]:
        for i, j in enumerate(pick):
            head = f'{{"id":"{prefix}-{i:0{width}d}"'.encode()
            start, end = starts[j], ends[j]
            if end - start == 2:  # "{}": the line had only an id
                yield head + b"}\n"
            else:
                yield head + b"," + view[start + 1 : end] + b"\n"

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        f.writelines(lines())
    return len(ends)


@dataclass(frozen=True)
class RealReport:
    """What `real_manifest` read and wrote."""

    files: tuple[str, ...]  # files with transcripts, tokenized and written
    skipped_files: tuple[str, ...]  # files without any transcript (durations only)
    rows_without_text: int  # rows without a transcript inside the files above (not written)
    tokenizer_dir: Path
    tokenizer_trained: bool  # False: loaded from the work-dir cache
    duration: np.ndarray  # (N,) of the written rows
    num_tokens: np.ndarray  # (N,)
    languages: dict[str, int]  # rows per language
    #: Per file, median text tokens (without prompt and EOS) per second, rows of >= 2 s.
    text_tps_median: dict[str, float]


def _text_rows(path: Path) -> tuple[list[dict], int]:
    rows, missing = [], 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: bad JSON: {err}") from err
            if not isinstance(row.get("text"), str):
                missing += 1
                continue
            for key in ("id", "duration", "lang"):
                if key not in row:
                    raise ValueError(f"{path}:{lineno}: missing {key!r}")
            rows.append(row)
    return rows, missing


def real_manifest(
    real_dir: Path, out: Path, work_dir: Path, vocab_per_lang: int = 1024, seed: int = 0
) -> RealReport:
    """Tokenize the real metadata files that have transcripts and write them with num_tokens.

    The tokenizer (padless's Canary tokenizer, one SentencePiece BPE model of ``vocab_per_lang``
    pieces per language, trained on these transcripts) is cached under ``work_dir`` keyed by the
    files' names and sizes and the vocabulary size, so reruns only count. ``num_tokens`` is the
    tokenizer's own count: 5 prompt tokens (ASR, source = target = ``lang``) + text + EOS. Every
    row is written, whatever its length: filters (TPS, duration) belong to the sampler.
    """
    import hashlib

    from padless.data.example import Example
    from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer

    files = sorted(real_dir.glob("*.jsonl"))
    if not files:
        raise FileNotFoundError(f"{real_dir}: no *.jsonl metadata files")
    with_text: list[tuple[Path, list[dict]]] = []
    skipped_files, missing = [], 0
    for path in files:
        rows, gaps = _text_rows(path)
        if rows:
            with_text.append((path, rows))
            missing += gaps
        else:
            skipped_files.append(path.name)
    if not with_text:
        raise ValueError(f"{real_dir}: no file has transcripts")

    key = hashlib.sha1(
        repr([(p.name, p.stat().st_size) for p, _ in with_text] + [vocab_per_lang, seed]).encode()
    ).hexdigest()[:10]
    tok_dir = work_dir / f"tokenizer-real-{vocab_per_lang}-{key}"
    trained = not (tok_dir / "tokenizer.json").exists()
    if trained:
        config = TokenizerTrainConfig(vocab_per_lang=vocab_per_lang, seed=seed, on_error="skip")
        tokenizer = train_tokenizer([str(p) for p, _ in with_text], tok_dir, config).tokenizer
    else:
        tokenizer = CanaryTokenizer.load(tok_dir)

    examples = [
        Example(
            id=str(row["id"]),
            duration=float(row["duration"]),
            audio=None,
            text=row["text"],
            source_lang=row["lang"],
            target_lang=row["lang"],
        )
        for _, rows in with_text
        for row in rows
    ]
    counts = tokenizer.num_tokens_batch(examples)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "wb") as f:
        f.writelines(
            orjson.dumps(
                {
                    "id": ex.id,
                    "duration": ex.duration,
                    "num_tokens": n,
                    "source_lang": ex.source_lang,
                    "target_lang": ex.target_lang,
                    "taskname": "asr",
                    "pnc": "yes",
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for ex, n in zip(examples, counts, strict=True)
        )
    langs: dict[str, int] = {}
    for ex in examples:
        assert ex.target_lang is not None
        langs[ex.target_lang] = langs.get(ex.target_lang, 0) + 1
    duration = np.array([ex.duration for ex in examples])
    tokens = np.array(counts, dtype=np.int64)
    file_of = np.repeat(np.arange(len(with_text)), [len(rows) for _, rows in with_text])
    text_tps = {}
    for i, (path, _) in enumerate(with_text):
        sel = (file_of == i) & (duration >= 2.0)
        rate = (tokens[sel] - PROMPT_TOKENS - EOS_TOKENS) / duration[sel]
        text_tps[path.name] = float(np.median(rate)) if sel.any() else math.nan
    return RealReport(
        files=tuple(p.name for p, _ in with_text),
        skipped_files=tuple(skipped_files),
        rows_without_text=missing,
        tokenizer_dir=tok_dir,
        tokenizer_trained=trained,
        duration=duration,
        num_tokens=tokens,
        languages=langs,
        text_tps_median=text_tps,
    )


# --- command line ---------------------------------------------------------------------------

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__.split("\n\n")[0])


def _print_stats(title: str, stats: dict[str, float | int]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    table.add_column("statistic")
    table.add_column("value", justify="right")
    for key, value in stats.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console(stderr=True).print(table)


@app.command("canary-mix")
def canary_mix_cmd(
    out: Path = typer.Option(..., help="Manifest to write (.jsonl)."),
    n: int = typer.Option(1_000_000, help="Number of examples."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same file."),
) -> None:
    """Write the synthetic Canary-like length mix (see CanaryMixConfig for its shape)."""
    start = time.perf_counter()
    sample = sample_canary_mix(n, seed)
    write_canary_mix(sample, out)
    elapsed = time.perf_counter() - start
    _print_stats(f"{out} ({elapsed:.1f} s)", length_statistics(sample.duration, sample.num_tokens))


@app.command("big")
def big_cmd(
    out: Path = typer.Option(..., help="Manifest to write (.jsonl)."),
    src: Path = typer.Option(..., "--from", help="Manifest to resample."),
    n: int = typer.Option(1_000_000, help="Number of lines to write."),
    seed: int = typer.Option(0, help="Random seed."),
    prefix: str = typer.Option("big", help="Id prefix of the written lines."),
) -> None:
    """Resample a manifest to N lines (bootstrap, fresh ids) for 1M-scale throughput tests."""
    start = time.perf_counter()
    source_lines = bootstrap_manifest(src, out, n, seed, prefix)
    typer.echo(
        f"wrote {n} lines to {out} from {source_lines} lines of {src} "
        f"in {time.perf_counter() - start:.1f} s",
        err=True,
    )


@app.command("real")
def real_cmd(
    out: Path = typer.Option(..., help="Manifest to write (.jsonl)."),
    real_dir: Path = typer.Option(..., help="The shared real metadata folder."),
    work_dir: Path = typer.Option(..., help="Where the trained tokenizer is cached."),
    vocab_per_lang: int = typer.Option(1024, help="SentencePiece pieces per language."),
    seed: int = typer.Option(0, help="Seed of the tokenizer's sentence sample."),
) -> None:
    """Tokenize the real metadata files with transcripts and write them with num_tokens."""
    from rich.console import Console

    start = time.perf_counter()
    with Console(stderr=True).status("training or loading the tokenizer, counting tokens"):
        report = real_manifest(real_dir, out, work_dir, vocab_per_lang, seed)
    elapsed = time.perf_counter() - start
    action = "trained" if report.tokenizer_trained else "loaded"
    typer.echo(
        f"{action} {report.tokenizer_dir}; wrote {len(report.duration)} rows of "
        f"{', '.join(report.files)} ({report.languages}); skipped files without text: "
        f"{', '.join(report.skipped_files) or 'none'}; rows without text: "
        f"{report.rows_without_text}",
        err=True,
    )
    _print_stats(f"{out} ({elapsed:.1f} s)", length_statistics(report.duration, report.num_tokens))


@app.command("record")
def record_cmd(
    real_dir: Path = typer.Option(..., help="The shared real metadata folder."),
    n: int = typer.Option(1_000_000, help="Lines of the synthetic and bootstrapped manifests."),
    out_dir: Path = typer.Option(Path(__file__).parent / "results", help="Record folder."),
) -> None:
    """Time every generator at full size in a temporary folder; write a dated record with the
    statistics of each manifest (the check of the mix against its description)."""
    import tempfile

    # Imported here: loading this module by path (as tests do) leaves sys.path alone.
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from record import command, environment, today, write_record  # bench/record.py

    timings: list[tuple[str, float, dict[str, float | int]]] = []
    with tempfile.TemporaryDirectory(prefix="padless-datasets-") as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        sample = sample_canary_mix(n, 0)
        write_canary_mix(sample, work / "mix.jsonl")
        stats = length_statistics(sample.duration, sample.num_tokens)
        timings.append((f"canary-mix --n {n} --seed 0", time.perf_counter() - start, stats))

        start = time.perf_counter()
        report = real_manifest(real_dir, work / "real.jsonl", work / "work")
        stats = length_statistics(report.duration, report.num_tokens)
        timings.append(("real (tokenizer trained, 1024/lang)", time.perf_counter() - start, stats))
        real_rates = report.text_tps_median

        start = time.perf_counter()
        bootstrap_manifest(work / "real.jsonl", work / "big.jsonl", n, 0)
        elapsed = time.perf_counter() - start
        stats = length_statistics(*read_lengths(work / "big.jsonl"))
        timings.append((f"big --n {n} --from real.jsonl", elapsed, stats))

    keys = list(timings[0][2])
    lines = [
        f"# Benchmark datasets ({today()})\n",
        f"Command: `{command()}`\n",
        "Mix shape: `CanaryMixConfig()` defaults (see bench/datasets.py).\n",
        "| generator | seconds | " + " | ".join(keys) + " |",
        "|---|---:|" + "---:|" * len(keys),
        *(
            f"| {name} | {sec:.1f} | "
            + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in st.values())
            + " |"
            for name, sec, st in timings
        ),
        "",
        "Real transcripts, median text tokens (no prompt, no EOS) per second of recording, "
        "rows of >= 2 s (the scale of the mix's per-language rates):\n",
        "| file | text tokens/s |",
        "|---|---:|",
        *(f"| {name} | {rate:.2f} |" for name, rate in real_rates.items()),
        "",
        environment("numpy", "orjson"),
    ]
    write_record("datasets", "\n".join(lines), out_dir)


def main(argv: Sequence[str] | None = None) -> None:
    app(args=list(argv) if argv is not None else None)


if __name__ == "__main__":
    main(sys.argv[1:])
