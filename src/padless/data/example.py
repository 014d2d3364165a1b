"""The `Example` record: metadata of one training or evaluation utterance.

Samplers read only this metadata; audio is read later, inside DataLoader workers, through the
`audio` reference. Millions of these stream through the sampler, so the record is a slotted
dataclass and the audio references are NamedTuples (cheap to build, immutable, hashable).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

Task = Literal["asr", "ast"]
TASKS: tuple[Task, ...] = ("asr", "ast")

#: Sampling rate every model in padless consumes; audio is resampled to it on load.
MODEL_SAMPLING_RATE = 16_000


class FileAudio(NamedTuple):
    """Audio in a file (local path or fsspec URL), optionally a segment of it."""

    path: str
    offset: float = 0.0  # seconds from the start of the file
    duration: float | None = None  # seconds to read; None reads to the end


class ShardAudio(NamedTuple):
    """Audio stored as one member of a tar shard, read by byte range without scanning the tar."""

    shard: str  # path or fsspec URL of the .tar file
    offset: int  # byte offset of the member's data (not its tar header)
    size: int  # member size in bytes
    format: str = "flac"


class ArrayAudio(NamedTuple):
    """Audio already in memory: float32 samples, shape (num_samples,) or (channels, num_samples)."""

    samples: np.ndarray
    sampling_rate: int


AudioRef = FileAudio | ShardAudio | ArrayAudio


@dataclass(slots=True)
class Example:
    """One utterance, metadata only.

    ``num_tokens`` is the decoder length (prompt + text tokens + EOS). It is ``None`` until a
    tokenizer computes it (``CanaryTokenizer.num_tokens`` caches it here) or a manifest carries
    it. It is the only field that code outside the readers may set; treat the rest as read-only.
    """

    id: str
    duration: float  # seconds of audio this example covers
    audio: AudioRef | None
    text: str | None = None  # transcript (asr) or translation (ast) target
    source_lang: str | None = None
    target_lang: str | None = None
    task: Task = "asr"
    pnc: bool = True  # punctuation and capitalisation in the target
    sampling_rate: int = MODEL_SAMPLING_RATE  # of the stored audio
    num_tokens: int | None = None
    extras: Mapping[str, Any] | None = None  # free-form fields a reader did not map

    @property
    def tokens_per_second(self) -> float | None:
        """Output tokens per input second, or ``None`` before ``num_tokens`` is known."""
        if self.num_tokens is None:
            return None
        return self.num_tokens / self.duration


def derive_id(path: str, offset: float = 0.0) -> str:
    """An id for an example whose manifest gave none: the audio path, plus the offset if any."""
    if offset:
        return f"{path}#{offset:.3f}"
    return path


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_KEY = 80  # keeps "<key>.flac" within USTAR's 100-character name field


def shard_key(example_id: str) -> str:
    """A filesystem- and WebDataset-safe member key for an example id: its audio is the tar
    member ``<key>.flac``, which `load_audio` checks in the member's header."""
    safe = _UNSAFE.sub("_", example_id)[:_MAX_KEY]
    if safe != example_id:
        digest = hashlib.blake2b(example_id.encode(), digest_size=8).hexdigest()
        safe = f"{safe[: _MAX_KEY - 17]}_{digest}"
    return safe
