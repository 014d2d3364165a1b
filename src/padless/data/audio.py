"""Audio loading for Examples: decode, cut the segment, down-mix, resample to 16 kHz.

``load_audio(example)`` returns float32 mono samples at ``MODEL_SAMPLING_RATE``, shape (T,):

- ``FileAudio``: soundfile (libsndfile: wav, flac, ogg/vorbis/opus, mp3) opens the file and
  seeks to the segment, so a 3 s cut of an hour-long recording reads 3 s, not the hour.
- ``ShardAudio``: one ranged read of the member's tar header and bytes (``pread`` locally, a
  range request on object storage), decoded from memory; the tar is never scanned. The header
  must name this example's member and size, so an index that disagrees with its tar is an
  error, never another example's audio.
- ``ArrayAudio``: passed through (down-mixed and resampled if needed).

Multi-channel audio is averaged to mono, unless ``example.extras["channel"]`` names the channel
to keep (the lhotse reader sets it for cuts of one channel of a multi-channel file). Resampling
uses soxr (a real band-limited resampler, "HQ" quality by default).

``load_pcm(example)`` returns the stored integer samples without conversion (frames, channels),
for lossless copies such as the shard writer; float sources (32/64-bit float files, in-memory
arrays) are quantised to the integer type. Unreadable, corrupt or too short audio, NaN or
infinite samples, and float samples outside [-1, 1] asked for as integers raise ``AudioError``
naming the example id and the file.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import soundfile as sf

from padless.data import fs
from padless.data.errors import AudioError
from padless.data.example import (
    MODEL_SAMPLING_RATE,
    ArrayAudio,
    Example,
    FileAudio,
    ShardAudio,
    shard_key,
)


@dataclass(frozen=True)
class AudioConfig:
    """How ``load_audio`` turns stored audio into model input."""

    #: Output sampling rate in Hz.
    sampling_rate: int = MODEL_SAMPLING_RATE
    #: soxr quality: "HQ" (default; transparent for speech), "VHQ" (slower), "MQ"/"LQ"/"QQ".
    resample_quality: str = "HQ"
    #: Seconds a file may end before the manifest's segment does (manifests round durations);
    #: a larger shortfall is an AudioError rather than a silently shorter example.
    duration_tolerance: float = 0.1


DEFAULT_AUDIO_CONFIG = AudioConfig()

_TAR_BLOCK = 512  # a USTAR header: the block in front of every member's data

#: libsndfile subtypes whose samples fit int16 exactly; others are read as int32.
_INT16_SUBTYPES = frozenset(("PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW", "DWVW_12", "DWVW_16"))
#: Subtypes that store floats. libsndfile reads them as integers without scaling unless told
#: to (a sample of 0.5 becomes 0), so integer reads of these go through float64 here.
_FLOAT_SUBTYPES = frozenset(("FLOAT", "DOUBLE"))


def describe_source(example: Example) -> str:
    """Where an example's audio lives, for error messages."""
    audio = example.audio
    if isinstance(audio, FileAudio):
        return audio.path
    if isinstance(audio, ShardAudio):
        return f"{audio.shard} @ byte {audio.offset}"
    return "in-memory array" if isinstance(audio, ArrayAudio) else "no audio"


def load_audio(example: Example, config: AudioConfig = DEFAULT_AUDIO_CONFIG) -> np.ndarray:
    """Float32 mono samples at ``config.sampling_rate``, shape (T,)."""
    samples, rate = _read(example, "float32", config)  # (frames, channels)
    mono = _to_mono(example, samples)
    if rate != config.sampling_rate:
        import soxr

        mono = soxr.resample(mono, rate, config.sampling_rate, quality=config.resample_quality)
    return np.ascontiguousarray(mono, dtype=np.float32)


def load_pcm(
    example: Example, dtype: str = "int16", config: AudioConfig = DEFAULT_AUDIO_CONFIG
) -> tuple[np.ndarray, int]:
    """Stored samples as integers, unconverted: ((frames, channels) array of ``dtype``, rate).

    For 16-bit sources ``dtype="int16"`` returns the exact stored PCM; ``"int32"`` holds 24-bit
    sources exactly (left-aligned, as libsndfile returns them). Float sources are rounded to
    the nearest integer step (full scale 1.0 = 2**15 or 2**31); a sample outside [-1, 1] would
    have to be clipped and is an `AudioError` instead.
    """
    return _read(example, dtype, config)


def pcm_subtype(example: Example) -> str:
    """libsndfile subtype of the stored audio ("PCM_16", "PCM_24", "FLOAT", ...)."""
    audio = example.audio
    if isinstance(audio, ArrayAudio):
        return "FLOAT"
    try:
        with _open(example) as snd:
            return str(snd.subtype)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise _error(example, err) from err


def is_int16_exact(subtype: str) -> bool:
    """True when samples of this subtype fit int16 without loss."""
    return subtype in _INT16_SUBTYPES


def is_float(subtype: str) -> bool:
    """True when this subtype stores floating-point samples (``pcm_subtype`` of a float file or
    an in-memory array)."""
    return subtype in _FLOAT_SUBTYPES


# --- reading -------------------------------------------------------------------------------


@contextmanager
def _open(example: Example) -> Iterator[sf.SoundFile]:
    audio = example.audio
    if isinstance(audio, FileAudio):
        if not fs.is_url(audio.path):
            with sf.SoundFile(fs.local_path(audio.path)) as snd:
                yield snd
            return
        with fs.open_binary(audio.path) as raw, sf.SoundFile(raw) as snd:
            yield snd
        return
    if isinstance(audio, ShardAudio):
        data = _read_member(example, audio)
        with sf.SoundFile(io.BytesIO(data)) as snd:
            yield snd
        return
    raise AudioError(example.id, describe_source(example), "example has no audio reference")


def _read_member(example: Example, audio: ShardAudio) -> memoryview:
    """The member's bytes, after checking that the tar header in front of them names this
    example's member with this size. The header is read in the same range request as the
    payload (512 bytes more), so an index whose offsets do not match its tar (swapped lines, a
    tar rewritten beside an old index) fails here instead of returning another example's
    audio."""
    start = audio.offset - _TAR_BLOCK
    if start < 0:
        raise AudioError(
            example.id,
            describe_source(example),
            f"offset {audio.offset} leaves no room for the tar header before the member",
        )
    data = fs.read_range(audio.shard, start, _TAR_BLOCK + audio.size)
    if len(data) != _TAR_BLOCK + audio.size:
        got = max(len(data) - _TAR_BLOCK, 0)
        raise AudioError(
            example.id,
            describe_source(example),
            f"shard truncated: read {got} of {audio.size} bytes",
        )
    expected = f"{shard_key(example.id)}.{audio.format}"
    member = _ustar_member(data[:_TAR_BLOCK])
    if member is None:
        raise AudioError(
            example.id,
            describe_source(example),
            "no tar header in front of the member: the index does not match the tar",
        )
    name, size = member
    if name != expected or size != audio.size:
        raise AudioError(
            example.id,
            describe_source(example),
            f"the tar member here is {name!r} ({size} bytes), the index expects "
            f"{expected!r} ({audio.size} bytes): the index does not match the tar",
        )
    return memoryview(data)[_TAR_BLOCK:]


def _ustar_member(block: bytes) -> tuple[str, int] | None:
    """(name, size) from a USTAR header block, or None when it is not one. Reads only the
    fields the check needs (~1 us; `tarfile.TarInfo.frombuf` parses all of them, ~12 us). The
    checksum is not verified: a header that names this very member with its exact size does
    not arise by chance."""
    if block[257:262] != b"ustar":
        return None
    name = block[:100].split(b"\0", 1)[0]
    prefix = block[345:500].split(b"\0", 1)[0]
    if prefix:
        name = prefix + b"/" + name
    field = block[124:136]
    try:
        if field[0] & 0x80:  # GNU base-256 for sizes beyond the octal field
            size = int.from_bytes(field[1:], "big")
        else:
            size = int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        return None
    return name.decode("utf-8", "surrogateescape"), size


def _read(example: Example, dtype: str, config: AudioConfig) -> tuple[np.ndarray, int]:
    audio = example.audio
    if isinstance(audio, ArrayAudio):
        return _from_array(example, audio, dtype), audio.sampling_rate
    try:
        with _open(example) as snd:
            rate = int(snd.samplerate)
            start, frames = 0, -1
            if isinstance(audio, FileAudio):
                start = round(audio.offset * rate)
                if start >= snd.frames:
                    raise AudioError(
                        example.id,
                        describe_source(example),
                        f"offset {audio.offset:.3f} s is past the end of the file "
                        f"({snd.frames / rate:.3f} s)",
                    )
                if audio.duration is not None:
                    frames = round(audio.duration * rate)
                if start:
                    snd.seek(start)
            stored_float = snd.subtype in _FLOAT_SUBTYPES
            read_dtype = "float64" if stored_float and dtype.startswith("int") else dtype
            samples = snd.read(frames, dtype=read_dtype, always_2d=True)  # (frames, channels)
    except (sf.LibsndfileError, RuntimeError, OSError) as err:
        raise _error(example, err) from err
    if frames > 0 and frames - len(samples) > config.duration_tolerance * rate:
        raise AudioError(
            example.id,
            describe_source(example),
            f"file ends {(frames - len(samples)) / rate:.3f} s before the segment "
            f"(offset {start / rate:.3f} s + duration {frames / rate:.3f} s)",
        )
    if len(samples) == 0:
        raise AudioError(example.id, describe_source(example), "no samples")
    if samples.dtype.kind == "f":
        _check_finite(example, samples)
        if samples.dtype != np.dtype(dtype):
            samples = _quantize(example, samples, dtype)
    return samples, rate


def _from_array(example: Example, audio: ArrayAudio, dtype: str) -> np.ndarray:
    samples = np.asarray(audio.samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    elif samples.ndim == 2:
        samples = samples.T  # (channels, T) -> (T, channels)
    else:
        raise AudioError(example.id, "in-memory array", f"array has shape {samples.shape}")
    if samples.dtype.kind == "f":
        _check_finite(example, samples)
    if dtype == "float32":
        return samples.astype(np.float32, copy=False)
    if samples.dtype == np.dtype(dtype):
        return samples
    return _quantize(example, samples, dtype)


def _check_finite(example: Example, samples: np.ndarray) -> None:
    """NaN or infinite samples are an error: they would reach the model as NaN features and
    loss (training) or as a confident-looking transcript of garbage (inference). One pass over
    the samples, small next to decoding them."""
    finite = np.isfinite(samples)
    if not finite.all():
        bad = samples.size - int(np.count_nonzero(finite))
        nan = int(np.count_nonzero(np.isnan(samples)))
        raise AudioError(
            example.id,
            describe_source(example),
            f"{bad} non-finite samples of {samples.size} ({nan} NaN, {bad - nan} infinite)",
            "non-finite samples",
        )


def _quantize(example: Example, samples: np.ndarray, dtype: str) -> np.ndarray:
    """Float samples (full scale 1.0) as integers of ``dtype``, rounded to the nearest step.
    Samples beyond full scale are refused: clipping them would change the audio silently."""
    peak = float(np.max(np.abs(samples)))
    if peak > 1.0:
        over = int(np.count_nonzero(np.abs(samples) > 1.0))
        raise AudioError(
            example.id,
            describe_source(example),
            f"{over} float samples outside [-1, 1] (peak {peak:.3f}) cannot be stored as "
            f"{dtype} without clipping",
            "float samples outside [-1, 1]",
        )
    info = np.iinfo(np.dtype(dtype))
    scaled = np.round(samples.astype(np.float64) * -float(info.min))
    return np.clip(scaled, info.min, info.max).astype(dtype)


def _to_mono(example: Example, samples: np.ndarray) -> np.ndarray:
    channels = samples.shape[1]
    if channels == 1:
        return samples[:, 0]
    channel: Any = (example.extras or {}).get("channel")
    if channel is not None:
        if type(channel) is not int or not 0 <= channel < channels:
            raise AudioError(
                example.id,
                describe_source(example),
                f"channel {channel!r} requested, file has {channels} channels",
            )
        return samples[:, channel]
    return samples.mean(axis=1)


def _error(example: Example, err: Exception) -> AudioError:
    if isinstance(err, AudioError):
        return err
    audio = example.audio
    # libsndfile reports a missing file as "System error": look (on the error path only).
    missing = isinstance(err, FileNotFoundError)
    if isinstance(audio, FileAudio) and not fs.is_url(audio.path):
        missing = missing or not os.path.exists(fs.local_path(audio.path))
    if missing:
        reason = f"file not found: {describe_source(example)}"
    elif isinstance(err, sf.LibsndfileError | RuntimeError):
        reason = f"cannot decode audio: {err}"
    else:
        reason = f"cannot read audio: {err}"
    return AudioError(example.id, describe_source(example), reason)
