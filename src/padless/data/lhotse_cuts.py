"""Lhotse cut manifests (``cuts.jsonl`` / ``cuts.jsonl.gz``) read without importing lhotse.

A MonoCut line maps to an Example as follows:

- ``id``, ``duration`` from the cut; audio ``FileAudio(source, offset=cut.start,
  duration=cut.duration)`` from the recording source that holds the cut's channel (``file``
  and ``url`` sources; a cut without a recording is metadata-only). Relative file paths resolve
  against the working directory, as lhotse resolves them. When that source file has several
  channels, ``extras["channel"]`` names the one to read (``load_audio`` honours it).
- ``sampling_rate`` from the recording.
- text: the supervisions' texts joined by spaces in time order; language: the first
  supervision's ``language``, as a code (lhotse recipes often store "English": obvious names map
  to codes, anything else is reported as an unknown language).
- the cut's ``custom`` fields use the NeMo vocabulary: ``source_lang``, ``target_lang``,
  ``taskname``, ``pnc``, ``answer`` (a translation target that replaces the transcript),
  ``num_tokens``; the supervision's ``custom`` fields count as the cut's. Other custom fields,
  and the supervision's ``speaker`` and ``gender``, go to ``Example.extras``.

Only MonoCut lines are supported; other cut types (MixedCut, MultiCut, PaddingCut), in-memory or
command audio sources, recording transforms other than Resample (speed, volume, reverb change the
audio), and RecordingSet/SupervisionSet manifests are reported as errors.
"""

from __future__ import annotations

import os
from typing import Any

from padless.data.example import MODEL_SAMPLING_RATE, Example, FileAudio
from padless.data.nemo import (
    FieldChecks,
    FieldError,
    Parser,
    check_duration,
    check_num_tokens,
    check_offset,
    check_sampling_rate,
    check_text,
    example_id,
    parse_pnc,
    parse_task,
)

#: cut.custom keys with a meaning for Example (the NeMo names).
_MAPPED_CUSTOM = frozenset(
    ("source_lang", "target_lang", "taskname", "pnc", "answer", "num_tokens")
)
_SUPERVISION_EXTRAS = ("speaker", "gender")


def looks_like_lhotse(d: dict[str, Any]) -> bool:
    """True for a decoded line of a lhotse manifest (cuts, or the recordings/supervisions that
    the cut parser then reports as not being cuts)."""
    if "type" in d and str(d["type"]).endswith("Cut"):
        return True
    return ("recording" in d and "supervisions" in d) or _is_recording_or_supervision(d)


def _is_recording_or_supervision(d: dict[str, Any]) -> bool:
    return ("sources" in d and "sampling_rate" in d) or ("recording_id" in d and "start" in d)


def lhotse_parser(manifest_path: str, checks: FieldChecks) -> Parser:
    """A parser for the lines of one lhotse cut manifest."""
    del manifest_path  # lhotse resolves relative paths against the working directory
    cwd = os.getcwd().rstrip("/") + "/"

    def parse(d: dict[str, Any]) -> Example:
        kind = d.get("type")
        if kind is None and _is_recording_or_supervision(d):
            raise FieldError(
                "not a cut (this looks like a lhotse RecordingSet/SupervisionSet; "
                "read cuts made with CutSet.from_manifests)",
                "not a cut",
            )
        if kind is not None and kind != "MonoCut":
            raise FieldError(f"unsupported cut type {kind!r} (only MonoCut)", "unsupported cut")
        duration = check_duration(d.get("duration"))
        start = check_offset(d.get("start"))

        custom = _dict_field(d, "custom", "cut custom")
        extras: dict[str, Any] = {}
        supervisions = d.get("supervisions") or []
        if type(supervisions) is not list:
            raise FieldError("supervisions is not a list", "bad supervisions")
        supervisions = sorted(supervisions, key=_start_of)
        texts: list[str] = []
        language = None
        for sup in supervisions:
            sup_text = sup.get("text")
            if sup_text is not None:
                texts.append(check_text(sup_text, True) or "")
            if language is None:
                language = sup.get("language")
            for key in _SUPERVISION_EXTRAS:
                if sup.get(key) is not None:
                    extras.setdefault(key, sup[key])
            for key, value in _dict_field(sup, "custom", "supervision custom").items():
                custom.setdefault(key, value)

        text = custom.get("answer")
        if text is None:
            text = " ".join(texts) if texts else None
        text = check_text(text, checks.require_text)

        source_lang = custom.get("source_lang", language)
        target_lang = custom.get("target_lang")
        src = checks.language(source_lang, "source_lang")
        tgt = src if target_lang is None else checks.language(target_lang, "target_lang")
        task = parse_task(custom.get("taskname"), src, tgt)
        pnc = parse_pnc(custom.get("pnc"))
        num_tokens = check_num_tokens(custom.get("num_tokens"))

        path, sampling_rate, channel = _audio(d.get("recording"), d.get("channel", 0))
        audio = None
        if path is not None:
            if "://" not in path and not path.startswith("/"):
                path = cwd + path
            audio = FileAudio(path, start, duration)
        if channel is not None:
            extras["channel"] = channel
        extras.update((k, v) for k, v in custom.items() if k not in _MAPPED_CUSTOM)
        if custom.get("answer") is not None and texts:
            extras["text"] = " ".join(texts)

        return Example(
            example_id(d.get("id"), audio),
            duration,
            audio,
            text,
            src,
            tgt,
            task,
            pnc,
            sampling_rate,
            num_tokens,
            extras or None,
        )

    return parse


def _start_of(sup: Any) -> float:
    if type(sup) is not dict:
        raise FieldError("a supervision is not a JSON object", "bad supervisions")
    start = sup.get("start", 0.0)
    return start if isinstance(start, int | float) else 0.0


def _dict_field(d: dict[str, Any], key: str, name: str) -> dict[str, Any]:
    value = d.get(key)
    if value is None:
        return {}
    if type(value) is not dict:
        raise FieldError(f"{name} is not a JSON object", f"bad {name}")
    return dict(value)


def _audio(recording: Any, channel: Any) -> tuple[str | None, int, int | None]:
    """(path or URL, sampling rate, channel index within that file if it has several)."""
    if recording is None:
        return None, MODEL_SAMPLING_RATE, None
    if type(recording) is not dict:
        raise FieldError("recording is not a JSON object", "bad recording")
    sampling_rate = check_sampling_rate(recording.get("sampling_rate"))
    for transform in recording.get("transforms") or []:
        name = transform.get("name") if type(transform) is dict else None
        if name != "Resample":
            # Speed, tempo, volume, reverb... change the audio (and its timeline for speed):
            # reading the stored file instead would silently give different examples.
            raise FieldError(
                f"unsupported recording transform {name!r} (padless reads stored audio; "
                "only Resample is understood)",
                "unsupported transform",
            )
        # The recording's rate is the resampled one; the stored file keeps the source rate
        # (load_audio resamples to the model rate anyway).
        stored = (transform.get("kwargs") or {}).get("source_sampling_rate", sampling_rate)
        sampling_rate = check_sampling_rate(stored)
    sources = recording.get("sources") or []
    if type(channel) is not int:
        raise FieldError(
            f"unsupported cut channel {channel!r} (one channel per MonoCut)", "bad channel"
        )
    for source in sources:
        channels = source.get("channels") or [0]
        if channel not in channels:
            continue
        kind = source.get("type")
        path = source.get("source")
        if kind not in ("file", "url") or type(path) is not str or not path:
            raise FieldError(f"unsupported audio source type {kind!r} (file or url)", "bad source")
        index = channels.index(channel) if len(channels) > 1 else None
        return path, sampling_rate, index
    raise FieldError(f"no audio source holds channel {channel}", "bad source")
