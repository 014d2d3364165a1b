"""NeMo JSON-lines manifests (the Canary format) and the field checks every reader shares.

One JSON object per line::

    {"audio_filepath": "audio/a.flac", "duration": 3.2, "offset": 0.0, "text": "hello",
     "source_lang": "en", "target_lang": "en", "taskname": "asr", "pnc": "yes", "id": "a"}

- ``audio_filepath``: relative paths resolve against the manifest's folder (also for fsspec URLs).
  Without it the example is metadata-only (``audio=None``).
- ``duration`` (s, required, finite, > 0) and ``offset`` (s, default 0): the audio segment.
- ``answer`` or ``text``: the target text (``answer`` wins; a ``text`` beside it goes to extras).
- ``source_lang`` / ``target_lang``; ``lang`` sets both (the shared real-metadata format).
  ``target_lang`` defaults to ``source_lang``. Codes such as ``en``/``pt-BR``; obvious English
  names (``"English"``) map to codes.
- ``taskname``: ``asr``/``transcribe``, or ``ast``/``s2t_translation``/``translate`` (-> ast);
  without it the task is asr when the languages agree, ast otherwise.
- ``pnc``: ``"yes"``/``"no"``/``true``/``false`` (default on).
- optional ``id`` (else ``derive_id(audio path, offset)``), ``num_tokens``, ``sampling_rate``.
- every other key goes to ``Example.extras``.

A field that cannot be used raises `FieldError`; the reader turns it into ``ManifestError``
with ``file:line`` (or skips and counts it under ``on_error="skip"``).

Speed: the parser is a closure over local names with one fast path per field (type check and
dict lookup); the slow paths only run to produce an error or to fill a cache (throughput:
``bench/bench_metadata.py``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from padless.data import fs
from padless.data.example import MODEL_SAMPLING_RATE, Example, FileAudio, Task, derive_id

#: Turns one decoded manifest line into an Example, or raises FieldError.
Parser = Callable[[dict[str, Any]], Example]

_INF = math.inf


class FieldError(Exception):
    """A field that cannot become part of an Example. The reader adds ``file:line``.

    ``reason`` is the full problem ("negative duration -1.5"); ``key`` its category
    ("negative duration"), under which ``on_error="skip"`` counts it.
    """

    def __init__(self, reason: str, key: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key or reason


# --- single fields -------------------------------------------------------------------------


def check_duration(value: Any, name: str = "duration") -> float:
    """A finite positive number of seconds, else FieldError naming what is wrong."""
    if (type(value) is float or type(value) is int) and 0.0 < value < _INF:
        return float(value)
    if value is None:
        raise FieldError(f"missing {name}", f"missing {name}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FieldError(f"non-numeric {name} {value!r}", f"non-numeric {name}")
    if math.isnan(value):
        raise FieldError(f"NaN {name}", f"NaN {name}")
    if value < 0:
        raise FieldError(f"negative {name} {value}", f"negative {name}")
    if value == 0:
        raise FieldError(f"zero {name}", f"zero {name}")
    raise FieldError(f"infinite {name}", f"infinite {name}")


def check_offset(value: Any) -> float:
    """A finite non-negative start time in seconds (``None`` means 0)."""
    if value is None or value == 0:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < _INF:
        raise FieldError(f"bad offset {value!r} (expected seconds >= 0)", "bad offset")
    return float(value)


#: ISO 639-1/-3 code with optional subtags: en, yue, pt-BR, zh_Hans.
_LANGUAGE_CODE = re.compile(r"[a-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")

#: Full names some toolkits (lhotse recipes among them) store instead of codes.
LANGUAGE_NAMES: dict[str, str] = {
    "arabic": "ar",
    "catalan": "ca",
    "chinese": "zh",
    "czech": "cs",
    "danish": "da",
    "dutch": "nl",
    "english": "en",
    "estonian": "et",
    "finnish": "fi",
    "french": "fr",
    "german": "de",
    "greek": "el",
    "hindi": "hi",
    "hungarian": "hu",
    "indonesian": "id",
    "italian": "it",
    "japanese": "ja",
    "korean": "ko",
    "mandarin": "zh",
    "norwegian": "no",
    "persian": "fa",
    "polish": "pl",
    "portuguese": "pt",
    "romanian": "ro",
    "russian": "ru",
    "slovak": "sk",
    "slovenian": "sl",
    "spanish": "es",
    "swedish": "sv",
    "turkish": "tr",
    "ukrainian": "uk",
    "vietnamese": "vi",
}


def normalize_language(value: str) -> str | None:
    """The language code for ``value`` ("en", "EN", "English" -> "en"), or None if it is none."""
    if _LANGUAGE_CODE.fullmatch(value):
        return value
    lowered = value.strip().lower()
    if lowered in LANGUAGE_NAMES:
        return LANGUAGE_NAMES[lowered]
    return lowered if _LANGUAGE_CODE.fullmatch(lowered) else None


_TASKS: dict[str, Task] = {
    "asr": "asr",
    "transcribe": "asr",
    "ast": "ast",
    "s2t_translation": "ast",
    "s2tt": "ast",
    "translate": "ast",
    "translation": "ast",
}

_PNC: dict[Any, bool] = {
    True: True,
    False: False,
    "yes": True,
    "no": False,
    "true": True,
    "false": False,
    "True": True,
    "False": False,
}


def parse_task(value: Any, source_lang: str | None, target_lang: str | None) -> Task:
    if value is None:
        return "asr" if target_lang == source_lang else "ast"
    task = _TASKS.get(value) if type(value) is str else None
    if task is None:
        raise FieldError(f"unknown taskname {value!r}", "unknown task")
    return task


def parse_pnc(value: Any) -> bool:
    if value is None:
        return True
    try:
        return _PNC[value]
    except (KeyError, TypeError):
        raise FieldError(f"bad pnc {value!r} (expected yes/no/true/false)", "bad pnc") from None


def check_num_tokens(value: Any) -> int | None:
    if value is None or (type(value) is int and value >= 0):
        return value
    raise FieldError(f"bad num_tokens {value!r} (expected an integer >= 0)", "bad num_tokens")


def check_sampling_rate(value: Any) -> int:
    if type(value) is int and value > 0:
        return value
    raise FieldError(f"bad sampling_rate {value!r} (expected an integer > 0)", "bad sampling_rate")


def check_text(value: Any, require_text: bool) -> str | None:
    """The text, or None where it may be absent. Whitespace-only text counts as missing where
    text is required: it is a broken transcript, not a target. The empty string stays a
    target (an utterance without speech, trained to produce nothing)."""
    if type(value) is str:
        if require_text and value.isspace():
            raise FieldError("missing text (whitespace only)", "missing text")
        return value
    if value is None:
        if require_text:
            raise FieldError("missing text", "missing text")
        return None
    raise FieldError(f"text is not a string: {value!r}", "bad text")


class FieldChecks:
    """The rules a reader applies to every example, with a cache for the language check.

    require_text: a training example must carry its target text; False for inference or
        metadata-only use (e.g. durations-only manifests).
    languages: if given, every language must be one of these codes; None accepts any code.
    """

    def __init__(self, require_text: bool = True, languages: Iterable[str] | None = None) -> None:
        self.require_text = require_text
        self.languages = None if languages is None else frozenset(languages)
        # Raw manifest value -> accepted code; filled on first sight so the hot path is one
        # dict lookup. Languages are few, so it stays tiny.
        self.known_languages: dict[Any, str | None] = {}

    def language(self, value: Any, field: str) -> str | None:
        """The code for a language value, validated once per distinct value (the NeMo and
        shard parsers inline the cache lookup; this is their slow path)."""
        try:
            return self.known_languages[value]
        except (KeyError, TypeError):
            pass
        if value is None:
            if self.languages is not None:
                raise FieldError(f"missing {field}", "missing language")
            code = None
        else:
            code = normalize_language(value) if type(value) is str else None
            if code is None:
                raise FieldError(
                    f"unknown {field} {value!r} (not a language code)", "unknown language"
                )
            if self.languages is not None and code not in self.languages:
                allowed = ", ".join(sorted(self.languages))
                raise FieldError(
                    f"unknown {field} {value!r} (expected one of {allowed})", "unknown language"
                )
        self.known_languages[value] = code
        return code


def example_id(value: Any, audio: FileAudio | None) -> str:
    """The manifest's id as a string, or one derived from the audio path and offset."""
    if type(value) is str and value:
        return value
    if type(value) is int:
        return str(value)
    if value is None or value == "":
        if audio is None:
            raise FieldError("missing id (and no audio_filepath to derive one from)", "missing id")
        return derive_id(audio.path, audio.offset)
    raise FieldError(f"bad id {value!r} (expected a string)", "bad id")


# --- the NeMo parser -----------------------------------------------------------------------


def nemo_parser(manifest_path: str, checks: FieldChecks) -> Parser:
    """A parser for the lines of one NeMo manifest (relative audio paths resolve against its
    folder)."""
    base = fs.parent(manifest_path)
    prefix = base.rstrip("/") + "/"
    languages = checks.known_languages
    require_text = checks.require_text
    tasks = _TASKS
    pncs = {None: True, **_PNC}
    new_tuple = tuple.__new__

    def parse(d: dict[str, Any]) -> Example:
        # Known keys are popped, so what is left of the freshly decoded dict *is* the extras
        # (building a filtered copy cost ~0.6 us per line, a third of the whole budget). The
        # keys every Canary line has come first; the rarer ones are only looked for when
        # something is left over.
        pop = d.pop
        duration = pop("duration", None)
        path = pop("audio_filepath", None)
        ex_id = pop("id", None)
        text = pop("text", None)
        src = pop("source_lang", None)
        tgt = pop("target_lang", None)
        taskname = pop("taskname", None)
        pnc_value = pop("pnc", None)
        offset = num_tokens = None
        sampling_rate = MODEL_SAMPLING_RATE
        if d:
            offset = pop("offset", None)
            lang = pop("lang", None)
            if src is None:
                src = lang
            answer = pop("answer", None)
            if answer is not None:
                if text is not None:
                    d["text"] = text  # the target is the answer; the transcript goes to extras
                text = answer
            num_tokens = pop("num_tokens", None)
            if num_tokens is not None:
                num_tokens = check_num_tokens(num_tokens)
            rate = pop("sampling_rate", None)
            if rate is not None:
                sampling_rate = check_sampling_rate(rate)

        if type(duration) is not float or not 0.0 < duration < _INF:
            duration = check_duration(duration)

        if path is None:
            audio = None
        else:
            if type(path) is not str or not path:
                raise FieldError(f"bad audio_filepath {path!r}", "bad audio_filepath")
            if path[0] != "/" and "://" not in path:
                path = prefix + path
            # tuple.__new__ is what FileAudio(...) runs, minus a Python-level call (~0.2 us).
            audio = new_tuple(
                FileAudio, (path, 0.0 if not offset else check_offset(offset), duration)
            )

        if type(ex_id) is not str or not ex_id:
            ex_id = example_id(ex_id, audio)
        # isspace() stops at the first non-space character: O(1) for real text.
        if type(text) is not str or text.isspace():
            text = check_text(text, require_text)

        if tgt is None:
            tgt = src
        try:
            src_code = languages[src]
        except (KeyError, TypeError):
            src_code = checks.language(src, "source_lang")
        try:
            tgt_code = languages[tgt]
        except (KeyError, TypeError):
            tgt_code = checks.language(tgt, "target_lang")

        if taskname is None:
            task: Task = "asr" if tgt_code == src_code else "ast"
        else:
            task = tasks.get(taskname) if type(taskname) is str else None  # type: ignore[assignment]
            if task is None:
                task = parse_task(taskname, src_code, tgt_code)
        try:
            pnc = pncs[pnc_value]
        except (KeyError, TypeError):
            pnc = parse_pnc(pnc_value)

        return Example(
            ex_id,
            duration,
            audio,
            text,
            src_code,
            tgt_code,
            task,
            pnc,
            sampling_rate,
            num_tokens,
            d or None,
        )

    return parse


def example_to_nemo(example: Example, relative_to: str | None = None) -> dict[str, Any]:
    """The NeMo manifest line for an Example (FileAudio or metadata-only); inverse of the parser.

    ``relative_to``: a folder; audio paths inside it are written relative to it.
    """
    line: dict[str, Any] = {"id": example.id}
    if example.audio is not None:
        if not isinstance(example.audio, FileAudio):
            raise ValueError(f"example {example.id!r}: only file audio has a NeMo audio_filepath")
        path = example.audio.path
        prefix = None if relative_to is None else relative_to.rstrip("/") + "/"
        if prefix is not None and path.startswith(prefix):
            path = path[len(prefix) :]
        line["audio_filepath"] = path
        if example.audio.offset:
            line["offset"] = example.audio.offset
    line["duration"] = example.duration
    if example.text is not None:
        line["text"] = example.text
    if example.source_lang is not None:
        line["source_lang"] = example.source_lang
    if example.target_lang is not None:
        line["target_lang"] = example.target_lang
    line["taskname"] = example.task
    line["pnc"] = "yes" if example.pnc else "no"
    if example.num_tokens is not None:
        line["num_tokens"] = example.num_tokens
    if example.sampling_rate != MODEL_SAMPLING_RATE:
        line["sampling_rate"] = example.sampling_rate
    extras = dict(example.extras or {})
    if "text" in extras and example.text is not None:
        # The parser keeps a transcript that stood beside an ``answer`` in extras["text"].
        line["answer"] = line.pop("text")
        line["text"] = extras.pop("text")
    for key, value in extras.items():
        line.setdefault(key, value)
    return line
