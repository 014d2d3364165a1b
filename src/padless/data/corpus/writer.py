"""`synthesize_corpus`: plan, synthesize and write the embedded corpus to a folder.

Layout of ``DIR``::

    audio/0000/s0-0000000.flac ...   16 kHz 16-bit mono FLAC, 1000 files per folder
    train.jsonl dev.jsonl test.jsonl NeMo (Canary) manifests, audio paths relative to DIR
    shards/<split>/...               the same examples as indexed tar shards
    corpus.json                      config and counts; written last, it marks DIR complete

Utterances are synthesized by a pool of worker processes (one espeak-ng engine each; espeak-ng is
not thread-safe) and written by this process in index order, so the output does not depend on the
number of workers. Utterance i is a function of (config, i) alone; the corpus is utterances
0..N-1 for the smallest N whose total duration reaches ``config.hours``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import shutil
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from padless.data.corpus.config import SPLITS, CorpusConfig
from padless.data.corpus.synth import RenderedUtterance, render_batch

CORPUS_JSON = "corpus.json"
_FORMAT = "padless-corpus"
_VERSION = 1
# What synthesize_corpus writes; only these are removed when a corpus is rewritten.
_OWN_ENTRIES = ("audio", "shards", *(f"{split}.jsonl" for split in SPLITS), CORPUS_JSON)
_BATCH = 4  # utterances per worker task: ~20 s of audio, amortises the inter-process hop


@dataclass(frozen=True)
class CorpusSummary:
    """What `synthesize_corpus` wrote, and how fast."""

    out_dir: Path
    utterances: int
    seconds: float  # of audio
    by_split: dict[str, tuple[int, float]]  # split -> (utterances, seconds)
    by_direction: dict[str, tuple[int, float]]  # "de asr", "de->en ast" -> (utterances, seconds)
    wall_seconds: float  # all of it
    shard_seconds: float  # of which writing the shards
    workers: int

    @property
    def speed(self) -> float:
        """Seconds of audio produced per second of wall time (x real time)."""
        return self.seconds / self.wall_seconds if self.wall_seconds > 0 else float("inf")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def direction(source_lang: str, target_lang: str, task: str) -> str:
    """Short label of a task direction: ``"de asr"``, ``"de->en ast"``."""
    return f"{source_lang} {task}" if task == "asr" else f"{source_lang}->{target_lang} {task}"


def manifest_paths(out_dir: str | Path) -> dict[str, Path]:
    """The NeMo manifest of each split inside a corpus folder."""
    return {split: Path(out_dir) / f"{split}.jsonl" for split in SPLITS}


def is_complete(out_dir: str | Path, config: CorpusConfig) -> bool:
    """Whether ``out_dir`` holds a finished corpus made with exactly ``config``."""
    meta_path = Path(out_dir) / CORPUS_JSON
    if not meta_path.is_file():
        return False
    meta = orjson.loads(meta_path.read_bytes())
    return (
        meta.get("complete") is True
        and meta.get("config") == _config_json(config)
        and all(p.is_file() for p in manifest_paths(out_dir).values())
    )


def synthesize_corpus(
    config: CorpusConfig,
    out_dir: str | Path,
    workers: int | None = None,
    progress: bool = True,
) -> CorpusSummary:
    """Generate the corpus of ``config`` into ``out_dir`` (see the module docstring).

    ``workers`` synthesis processes (default: the CPUs this process may use). A previous corpus
    in ``out_dir`` is replaced; a folder holding anything else under our names is refused.
    """
    out = Path(out_dir)
    workers = workers or usable_cpus()
    _prepare(out, config)
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    seconds: defaultdict[str, float] = defaultdict(float)
    total = 0.0
    target = config.hours * 3600
    manifests = {split: path.open("wb") for split, path in manifest_paths(out).items()}
    try:
        with _progress_bar(progress, target) as advance:
            for utt in _synthesized(config, workers, target):
                rel = _write_audio(out, utt)
                record = {"audio_filepath": rel, **utt.record}
                manifests[utt.plan.split].write(orjson.dumps(record) + b"\n")
                plan = utt.plan
                for key in (plan.split, direction(plan.source_lang, plan.target_lang, plan.task)):
                    counts[key] += 1
                    seconds[key] += utt.duration
                total += utt.duration
                advance(utt.duration)
    finally:
        for f in manifests.values():
            f.close()

    shards_start = time.perf_counter()
    for split, path in manifest_paths(out).items():
        if counts[split]:
            jobs = min(workers, -(-counts[split] // config.shard_size))  # a process per shard
            _write_split_shards(path, out / "shards" / split, config.shard_size, jobs)
    end = time.perf_counter()

    summary = CorpusSummary(
        out_dir=out,
        utterances=sum(counts[split] for split in SPLITS),
        seconds=total,
        by_split={s: (counts[s], seconds[s]) for s in SPLITS},
        by_direction={k: (counts[k], seconds[k]) for k in sorted(counts) if k not in SPLITS},
        wall_seconds=end - start,
        shard_seconds=end - shards_start,
        workers=workers,
    )
    _write_meta(out, config, summary, complete=True)
    return summary


def _synthesized(config: CorpusConfig, workers: int, target: float) -> Iterator[RenderedUtterance]:
    """Rendered utterances 0, 1, 2, ... in order, until their durations reach ``target``.

    Keeps about two batches per worker in flight, and stops submitting once the finished audio
    plus the expected duration of the batches in flight reaches the target, so little work is
    thrown away at the end.
    """
    context = multiprocessing.get_context("spawn")  # no inherited threads or locks
    pending: deque[tuple[int, Future[list[RenderedUtterance]]]] = deque()
    next_index, done, produced = 0, 0, 0.0
    pool = ProcessPoolExecutor(workers, mp_context=context)
    try:
        while produced < target:
            mean = produced / done if done else 5.0  # seconds per utterance, a guess at first
            in_flight = sum(n for n, _ in pending)
            while not pending or (
                len(pending) < 2 * workers and produced + in_flight * mean < target
            ):
                batch = range(next_index, next_index + _BATCH)
                pending.append((len(batch), pool.submit(render_batch, config, batch)))
                next_index += len(batch)
                in_flight += len(batch)
            _, future = pending.popleft()
            for utt in future.result():
                if produced >= target:
                    break
                done += 1
                produced += utt.duration
                yield utt
    finally:  # also on an error or an interrupt: drop the batches not started yet
        pool.shutdown(wait=True, cancel_futures=True)


def _write_split_shards(manifest: Path, out_dir: Path, shard_size: int, jobs: int) -> None:
    """The examples of one manifest, as the NeMo reader reads them, written as indexed shards."""
    from padless.data.shards import ShardWriterConfig, write_shards
    from padless.data.stream import read_manifest

    config = ShardWriterConfig(shard_size=shard_size, jobs=jobs)
    write_shards(read_manifest(str(manifest)), out_dir, config)


def _write_audio(out: Path, utt: RenderedUtterance) -> str:
    rel = f"audio/{utt.plan.index // 1000:04d}/{utt.plan.id}.flac"
    path = out / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(utt.flac)
    return rel


def _prepare(out: Path, config: CorpusConfig) -> None:
    """Clear a previous corpus from ``out`` (only our own entries), then mark it in progress."""
    out.mkdir(parents=True, exist_ok=True)
    ours = out / CORPUS_JSON
    present = [name for name in _OWN_ENTRIES if (out / name).exists()]
    if present and not ours.is_file():
        raise FileExistsError(
            f"{out} holds {', '.join(present)} but no {CORPUS_JSON}: not a padless corpus; "
            "choose an empty or new folder"
        )
    for name in present:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
    _write_meta(out, config, None, complete=False)


def _config_json(config: CorpusConfig) -> dict[str, Any]:
    # Through JSON so tuples compare equal to the lists read back from corpus.json.
    config_json: dict[str, Any] = orjson.loads(orjson.dumps(dataclasses.asdict(config)))
    return config_json


def _write_meta(out: Path, config: CorpusConfig, summary: CorpusSummary | None, complete: bool):
    meta: dict[str, Any] = {"format": _FORMAT, "version": _VERSION, "complete": complete}
    meta["config"] = _config_json(config)
    if summary is not None:  # no wall-clock times: the file is reproducible like the audio
        meta["utterances"] = summary.utterances
        meta["hours"] = summary.seconds / 3600
        meta["splits"] = {
            s: {"utterances": n, "hours": t / 3600} for s, (n, t) in summary.by_split.items()
        }
        meta["directions"] = {
            d: {"utterances": n, "hours": t / 3600} for d, (n, t) in summary.by_direction.items()
        }
    (out / CORPUS_JSON).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")


@contextlib.contextmanager
def _progress_bar(enabled: bool, total_seconds: float) -> Iterator[Callable[[float], None]]:
    """A rich progress bar over seconds of audio; yields ``advance(seconds)``."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("synthesizing"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f}/{task.total:,.0f} s of audio"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, disable=not enabled) as bar:
        task = bar.add_task("synth", total=total_seconds)
        yield lambda seconds: bar.advance(task, seconds)
