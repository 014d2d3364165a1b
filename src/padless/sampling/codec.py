"""Examples as plain lists, for sampler state dicts (JSON- and ``torch.save``-friendly).

A sampler's state holds the examples in its buffer themselves rather than ids to re-read: the
buffer holds examples from anywhere in the stream read so far, and re-reading them by id would
need random access to every source. ~150 bytes per metadata-only example, so a 20k buffer is a
~3 MB state, built and restored in tens of milliseconds whatever the epoch position.

Items that are not `Example`s (other sequence-to-sequence data) are stored as they are; they
must then be picklable for the state to be saved.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from padless.data.example import ArrayAudio, Example, FileAudio, ShardAudio

_TAG = "padless.example"


def encode_item(item: Any) -> Any:
    if not isinstance(item, Example):
        return item
    return [
        _TAG,
        item.id,
        item.duration,
        _encode_audio(item.audio),
        item.text,
        item.source_lang,
        item.target_lang,
        item.task,
        item.pnc,
        item.sampling_rate,
        item.num_tokens,
        dict(item.extras) if item.extras is not None else None,
    ]


def decode_item(data: Any) -> Any:
    if not (isinstance(data, list | tuple) and len(data) == 12 and data[0] == _TAG):
        return data
    _, id_, duration, audio, text, src, tgt, task, pnc, rate, num_tokens, extras = data
    return Example(
        id=id_,
        duration=duration,
        audio=_decode_audio(audio),
        text=text,
        source_lang=src,
        target_lang=tgt,
        task=task,
        pnc=pnc,
        sampling_rate=rate,
        num_tokens=num_tokens,
        extras=extras,
    )


def _encode_audio(audio: Any) -> Any:
    if audio is None:
        return None
    if isinstance(audio, FileAudio):
        return ["file", audio.path, audio.offset, audio.duration]
    if isinstance(audio, ShardAudio):
        return ["shard", audio.shard, audio.offset, audio.size, audio.format]
    if isinstance(audio, ArrayAudio):
        return ["array", np.asarray(audio.samples), audio.sampling_rate]
    raise TypeError(f"cannot encode audio reference {type(audio).__name__}")


def _decode_audio(data: Any) -> Any:
    if data is None:
        return None
    kind, *fields = data
    if kind == "file":
        return FileAudio(*fields)
    if kind == "shard":
        return ShardAudio(*fields)
    if kind == "array":
        return ArrayAudio(np.asarray(fields[0]), fields[1])
    raise ValueError(f"unknown audio reference kind {kind!r} in sampler state")
