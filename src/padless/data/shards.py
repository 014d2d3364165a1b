"""Indexed tar shards: WebDataset-style tars of FLAC audio plus a JSON-lines metadata index.

Layout of a shard folder::

    DIR/shards.json                  the shard list: {"format": "padless.shards", "version": 1,
                                     "examples": N, "duration": seconds, "shards": [
                                       {"tar", "index", "examples", "duration", "tar_bytes",
                                        "index_bytes"}, ...]}
    DIR/shard-000000.tar             members <key>.flac (the audio) and <key>.json (metadata)
    DIR/shard-000000.index.jsonl     one line per example: the Example fields, plus "key" and
                                     the byte "offset" and "size" of the FLAC member's data

``key`` is a filesystem-safe form of the example id: characters outside ``[A-Za-z0-9_-]`` become
``_`` (a ``.`` would end a WebDataset key), and an altered or truncated id gets a hash suffix
so distinct ids keep distinct keys. The tars are plain USTAR archives readable by ``tar`` and
WebDataset; padless itself never scans them: the stream reads only the index
(``Example.audio = ShardAudio(tar, offset, size)``) and ``load_audio`` reads one byte range.

Writing is lossless for integer PCM: 16-bit (and 8-bit) sources are stored as 16-bit FLAC and
read back bit-identical, 24/32-bit integer and float sources as 24-bit FLAC (float audio is
quantized to 24 bits, about -144 dBFS of noise). The sampling rate and channels are kept; only
the example's segment (offset, duration) of a longer file is stored. Output is deterministic:
the same examples and shard size give the same bytes, whatever the number of processes.
"""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from padless.data import fs
from padless.data.errors import (
    NoExamplesError,
    OnError,
    PadlessInputError,
    ShardError,
    SkipCounter,
)
from padless.data.example import Example, ShardAudio, shard_key
from padless.data.nemo import (
    FieldChecks,
    FieldError,
    Parser,
    check_duration,
    check_num_tokens,
    check_sampling_rate,
    check_text,
)

SHARDS_FORMAT = "padless.shards"
SHARDS_VERSION = 1
SHARD_LIST = "shards.json"

_INF = float("inf")


def shard_names(index: int) -> tuple[str, str]:
    """File names of shard ``index``: (tar, metadata index)."""
    return f"shard-{index:06d}.tar", f"shard-{index:06d}.index.jsonl"


# --- the shard list ------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardInfo:
    """One shard as listed in ``shards.json``; paths relative to the shard folder."""

    tar: str
    index: str
    examples: int
    duration: float  # seconds of audio
    tar_bytes: int
    index_bytes: int


@dataclass(frozen=True)
class ShardSet:
    """A shard folder (local or fsspec URL) and its shard list."""

    root: str
    shards: tuple[ShardInfo, ...]

    @property
    def examples(self) -> int:
        return sum(s.examples for s in self.shards)

    @property
    def duration(self) -> float:
        return sum(s.duration for s in self.shards)

    @property
    def list_path(self) -> str:
        return fs.join(self.root, SHARD_LIST)

    def tar_path(self, shard: ShardInfo) -> str:
        return fs.join(self.root, shard.tar)

    def index_path(self, shard: ShardInfo) -> str:
        return fs.join(self.root, shard.index)

    @staticmethod
    def is_shard_set(path: str) -> bool:
        """True for a shard folder or its ``shards.json``."""
        if path.endswith(SHARD_LIST):
            return True
        return fs.isdir(path) and fs.exists(fs.join(path, SHARD_LIST))

    @classmethod
    def load(cls, path: str) -> ShardSet:
        """Read a shard folder's ``shards.json`` (``path`` is the folder or the file)."""
        list_path = path if path.endswith(SHARD_LIST) else fs.join(path, SHARD_LIST)
        with fs.open_binary(list_path) as f:
            try:
                doc = orjson.loads(f.read())
            except orjson.JSONDecodeError as err:
                raise ShardError(list_path, f"not JSON: {err}") from None
        if not isinstance(doc, dict):
            raise ShardError(list_path, f"not a padless shard list (a JSON {type(doc).__name__})")
        if doc.get("format") != SHARDS_FORMAT or doc.get("version") != SHARDS_VERSION:
            raise ShardError(
                list_path,
                f"not a padless shard list (format {doc.get('format')!r}, version "
                f"{doc.get('version')!r}; expected {SHARDS_FORMAT!r} {SHARDS_VERSION})",
            )
        try:
            shards = tuple(ShardInfo(**s) for s in doc["shards"])
        except (KeyError, TypeError) as err:
            raise ShardError(list_path, f"malformed shard list: {err}") from None
        return cls(fs.parent(list_path), shards)

    def to_json(self) -> bytes:
        doc = {
            "format": SHARDS_FORMAT,
            "version": SHARDS_VERSION,
            "examples": self.examples,
            "duration": round(self.duration, 3),
            "shards": [s.__dict__ for s in self.shards],
        }
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n"


# --- index lines ---------------------------------------------------------------------------


def example_metadata(example: Example) -> dict[str, Any]:
    """The metadata of an Example as stored in a shard (the ``<key>.json`` member)."""
    return {
        "id": example.id,
        "duration": example.duration,
        "text": example.text,
        "source_lang": example.source_lang,
        "target_lang": example.target_lang,
        "task": example.task,
        "pnc": example.pnc,
        "sampling_rate": example.sampling_rate,
        "num_tokens": example.num_tokens,
        "extras": None if example.extras is None else dict(example.extras),
    }


def index_parser(tar_path: str, checks: FieldChecks) -> Parser:
    """A parser for the lines of one shard index; audio points into ``tar_path``."""
    languages = checks.known_languages
    require_text = checks.require_text
    new_tuple = tuple.__new__

    def parse(d: dict[str, Any]) -> Example:
        get = d.get
        duration, text = get("duration"), get("text")
        src, tgt, task, pnc = get("source_lang"), get("target_lang"), get("task"), get("pnc")
        ex_id, offset, size, extras = get("id"), get("offset"), get("size"), get("extras")
        sampling_rate, num_tokens = get("sampling_rate"), get("num_tokens")
        if type(duration) is not float or not 0.0 < duration < _INF:
            duration = check_duration(duration)
        if type(text) is not str or text.isspace():
            text = check_text(text, require_text)
        try:
            src = languages[src]
        except (KeyError, TypeError):
            src = checks.language(src, "source_lang")
        try:
            tgt = languages[tgt]
        except (KeyError, TypeError):
            tgt = checks.language(tgt, "target_lang")
        if task != "asr" and task != "ast":
            raise FieldError(f"unknown task {task!r}", "unknown task")
        if type(pnc) is not bool:
            raise FieldError(f"bad pnc {pnc!r} (expected true/false)", "bad pnc")
        if type(sampling_rate) is not int or sampling_rate <= 0:
            sampling_rate = check_sampling_rate(sampling_rate)
        if num_tokens is not None:
            num_tokens = check_num_tokens(num_tokens)
        if type(ex_id) is not str or not ex_id:
            raise FieldError(f"bad id {ex_id!r}", "bad id")
        if type(offset) is not int or type(size) is not int or offset < 0 or size <= 0:
            raise FieldError(f"bad byte range offset={offset!r} size={size!r}", "bad byte range")
        if extras is not None and type(extras) is not dict:
            raise FieldError("extras is not a JSON object", "bad extras")
        return Example(
            ex_id,
            duration,
            # tuple.__new__ is what ShardAudio(...) runs, minus a Python-level call (~0.2 us).
            new_tuple(ShardAudio, (tar_path, offset, size, "flac")),
            text,
            src,
            tgt,
            task,
            pnc,
            sampling_rate,
            num_tokens,
            extras,
        )

    return parse


# --- writing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShardWriterConfig:
    """How ``write_shards`` splits and stores examples."""

    #: Examples per shard (the last shard may hold fewer).
    shard_size: int = 1000
    #: Processes encoding FLAC, one shard each at a time; the output does not depend on it.
    jobs: int = 1
    #: Unreadable audio or a duplicate id: "raise", or "skip" (counted and reported).
    on_error: OnError = "raise"
    #: Replace an existing shard set in the output folder instead of refusing.
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.shard_size < 1 or self.jobs < 1:
            raise ValueError(f"shard_size and jobs must be >= 1, got {self}")


@dataclass(frozen=True)
class ShardWriteResult:
    shards: ShardSet
    skipped: SkipCounter
    seconds: float  # wall time


def write_shards(
    examples: Iterable[Example],
    out_dir: str | Path,
    config: ShardWriterConfig = ShardWriterConfig(),
    progress: Callable[[int], None] | None = None,
) -> ShardWriteResult:
    """Write ``examples`` as indexed shards into ``out_dir`` (a local folder).

    ``progress(n)`` is called as examples are written (e.g. a progress bar's ``update``).
    ``shards.json`` is written last: a folder without it is an interrupted write.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    list_path = out / SHARD_LIST
    if list_path.exists():
        if not config.overwrite:
            raise FileExistsError(f"{list_path} exists (use overwrite to replace the shard set)")
        # Remove the old set's files, so a glob over *.tar (WebDataset) finds no stale shards.
        for old in ShardSet.load(str(out)).shards:
            (out / old.tar).unlink(missing_ok=True)
            (out / old.index).unlink(missing_ok=True)
        list_path.unlink()
    started = time.perf_counter()
    skipped = SkipCounter()
    infos: list[ShardInfo] = []

    def collect(result: tuple[ShardInfo, SkipCounter], report: bool) -> None:
        info, shard_skipped = result
        infos.append(info)
        skipped.merge(shard_skipped)
        if report and progress is not None:
            progress(info.examples + shard_skipped.total)

    chunks = _chunks(_unique(examples, config.on_error, skipped), config.shard_size)
    if config.jobs == 1:  # in this process: progress per example
        for index, chunk in enumerate(chunks):
            collect(_write_shard(str(out), index, chunk, config.on_error, progress), False)
    else:  # worker processes: progress per finished shard
        # Spawned workers: no state inherited from the parent (threads, open files).
        with ProcessPoolExecutor(config.jobs, mp_context=get_context("spawn")) as pool:
            pending: list[Future[tuple[ShardInfo, SkipCounter]]] = []
            for index, chunk in enumerate(chunks):
                pending.append(pool.submit(_write_shard, str(out), index, chunk, config.on_error))
                while len(pending) > 2 * config.jobs:  # bound the examples held in memory
                    collect(pending.pop(0).result(), True)
            for future in pending:
                collect(future.result(), True)

    if not any(info.examples for info in infos):
        for info in infos:  # empty shards of examples that were all skipped
            (out / info.tar).unlink(missing_ok=True)
            (out / info.index).unlink(missing_ok=True)
        raise NoExamplesError(f"no examples to write ({skipped.report()})", skipped)
    shard_set = ShardSet(str(out), tuple(infos))
    tmp = list_path.with_suffix(".json.tmp")
    tmp.write_bytes(shard_set.to_json())
    os.replace(tmp, list_path)
    return ShardWriteResult(shard_set, skipped, time.perf_counter() - started)


def _unique(
    examples: Iterable[Example], on_error: OnError, skipped: SkipCounter
) -> Iterator[Example]:
    """Examples with ids seen before are errors: shard keys, resume state and the sampler rely
    on unique ids. Costs one set entry (~100 bytes) per example."""
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            err = PadlessInputError(f"duplicate example id {example.id!r}", "duplicate id")
            if on_error == "raise":
                raise err
            skipped.add(err)
            continue
        seen.add(example.id)
        yield example


def _chunks(examples: Iterable[Example], size: int) -> Iterator[list[Example]]:
    chunk: list[Example] = []
    for example in examples:
        chunk.append(example)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0  # deterministic bytes
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _encode_flac(example: Example) -> tuple[bytes, int]:
    """The example's audio segment as FLAC bytes, and its rate; decoded again and compared, so
    a shard never holds audio other than what was read (costs one FLAC decode, a fraction of
    the encode)."""
    import soundfile as sf

    from padless.data.audio import (
        describe_source,
        is_float,
        is_int16_exact,
        load_pcm,
        pcm_subtype,
    )
    from padless.data.errors import AudioError

    subtype = pcm_subtype(example)
    int16 = is_int16_exact(subtype)
    pcm, rate = load_pcm(example, "int16" if int16 else "int32")  # (frames, channels)
    if not int16:
        # FLAC stores 24 bits: float sources are rounded to the nearest 24-bit step (at most
        # 2**-24 of full scale off); 32-bit integer sources keep their top 24 bits.
        pcm = _to_24_bits(pcm, rounded=is_float(subtype))
    buf = io.BytesIO()
    sf.write(buf, pcm, rate, format="FLAC", subtype="PCM_16" if int16 else "PCM_24")
    flac = buf.getvalue()
    back, back_rate = sf.read(io.BytesIO(flac), dtype=str(pcm.dtype), always_2d=True)
    if back_rate != rate or back.shape != pcm.shape or not np.array_equal(back, pcm):
        raise AudioError(
            example.id, describe_source(example), "FLAC written does not decode to the samples read"
        )
    return flac, rate


def _to_24_bits(pcm: np.ndarray, rounded: bool) -> np.ndarray:
    """int32 samples with the low 8 bits cleared (what a 24-bit FLAC keeps), rounding to the
    nearest 24-bit step when ``rounded`` (else truncating, as libsndfile does)."""
    wide = pcm.astype(np.int64)
    if rounded:
        wide = np.minimum(wide + 128, np.iinfo(np.int32).max)
    return ((wide >> 8) << 8).astype(np.int32)


def _write_shard(
    out_dir: str,
    index: int,
    examples: list[Example],
    on_error: OnError,
    progress: Callable[[int], None] | None = None,
) -> tuple[ShardInfo, SkipCounter]:
    """Write one shard (tar + index) atomically; runs in a worker process when jobs > 1."""
    from padless.data.errors import AudioError

    tar_name, index_name = shard_names(index)
    tar_path, index_path = os.path.join(out_dir, tar_name), os.path.join(out_dir, index_name)
    skipped = SkipCounter()
    lines: list[bytes] = []
    keys: set[str] = set()
    duration = 0.0
    try:
        with open(tar_path + ".tmp", "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
                for example in examples:
                    try:
                        flac, rate = _encode_flac(example)
                    except AudioError as err:
                        if on_error == "raise":
                            raise
                        skipped.add(err, err.kind)
                        if progress is not None:
                            progress(1)
                        continue
                    key = shard_key(example.id)
                    if key in keys:  # only on a 64-bit hash collision of two altered ids
                        raise ValueError(f"shard key collision for id {example.id!r} ({key})")
                    keys.add(key)
                    meta = example_metadata(replace(example, sampling_rate=rate))
                    info = _member(f"{key}.flac", len(flac))
                    data_offset = tar.offset + len(info.tobuf(tar.format, tar.encoding, tar.errors))
                    tar.addfile(info, io.BytesIO(flac))
                    meta_bytes = orjson.dumps(meta)
                    tar.addfile(_member(f"{key}.json", len(meta_bytes)), io.BytesIO(meta_bytes))
                    lines.append(
                        orjson.dumps({**meta, "key": key, "offset": data_offset, "size": len(flac)})
                        + b"\n"
                    )
                    duration += example.duration
                    if progress is not None:
                        progress(1)
            tar_bytes = raw.tell()
        index_data = b"".join(lines)
        with open(index_path + ".tmp", "wb") as f:
            f.write(index_data)
        os.replace(tar_path + ".tmp", tar_path)
        os.replace(index_path + ".tmp", index_path)
    except BaseException:
        # A failed shard leaves nothing behind: no *.tmp files beside the finished shards.
        for tmp in (tar_path + ".tmp", index_path + ".tmp"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        raise
    shard = ShardInfo(
        tar_name, index_name, len(lines), round(duration, 3), tar_bytes, len(index_data)
    )
    return shard, skipped
