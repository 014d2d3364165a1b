"""Decoder prompts: the task tokens a decoder reads before it writes the text.

A prompt format turns an example's (source language, target language, task, pnc flag) into a
short list of special-token strings; the tokenizer maps them to ids. Formats are small classes
registered by name, so a later one (Canary-2's, with more slots) is one more class, and the
tokenizer records which format it was built for in its ``tokenizer.json``.

The Canary-1B format is five tokens::

    <|startoftranscript|> <|src|> <|transcribe|> or <|translate|> <|tgt|> <|pnc|> or <|nopnc|>

ASR requires the source and target languages to be equal, AST requires them to differ. For an
ASR example that gives only one of the two languages, the other is taken to be the same (a
transcript is in the spoken language); AST needs both.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import ClassVar

from padless.data.errors import PadlessInputError
from padless.data.example import TASKS, Example, Task

# Special tokens every padless tokenizer has, in their fixed id order (id = index). Other code
# relies on these ids: <pad> = 0, <|endoftext|> = 1, <|startoftranscript|> = 2, ...
PAD = "<pad>"
EOS = "<|endoftext|>"
SOT = "<|startoftranscript|>"
TRANSCRIBE = "<|transcribe|>"
TRANSLATE = "<|translate|>"
PNC = "<|pnc|>"
NOPNC = "<|nopnc|>"
NOSPEECH = "<|nospeech|>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, EOS, SOT, TRANSCRIBE, TRANSLATE, PNC, NOPNC, NOSPEECH)

# Language codes become tokens and file names (`<|de|>`, `de.model`): ISO-style codes such as
# "en", "pt-BR" or "yue"; nothing that could break a token or a path.
_LANG_RE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*")


def lang_token(lang: str) -> str:
    """The special token of a language code, e.g. ``"<|de|>"``."""
    return f"<|{lang}|>"


def check_lang_code(lang: str) -> str:
    """Return ``lang`` if it is a usable language code, else raise ``ValueError``."""
    if not isinstance(lang, str) or not _LANG_RE.fullmatch(lang):
        raise ValueError(
            f"bad language code {lang!r}: expected an ISO-style code like 'en', 'de' or 'pt-BR'"
        )
    return lang


class PromptError(PadlessInputError):
    """An example whose task and languages do not make a valid prompt."""

    def __init__(self, message: str, reason: str = "invalid prompt") -> None:
        # ``reason`` has a default so the error can be rebuilt from its message alone, which is
        # how DataLoader workers re-raise errors in the main process.
        super().__init__(message, reason)


def example_langs(example: Example) -> tuple[str, str]:
    """(source_lang, target_lang) of an example; for ASR a missing one equals the other.

    The target language is also the language of ``example.text`` (the transcript for ASR, the
    translation for AST), i.e. the language whose SentencePiece model tokenizes it.
    """
    source, target = example.source_lang, example.target_lang
    if example.task == "asr":
        source = source or target
        target = target or source
    if not source or not target:
        missing = "source_lang" if not source else "target_lang"
        raise PromptError(
            f"example {example.id!r}: {example.task} example has no {missing}",
            f"missing {missing}",
        )
    return source, target


class PromptFormat(ABC):
    """How (source, target, task, pnc) becomes the token strings of a decoder prompt."""

    #: Registry key, stored in ``tokenizer.json`` as ``prompt_format``.
    name: ClassVar[str]
    #: Non-language special tokens the format uses; the tokenizer must define all of them.
    tokens_used: ClassVar[tuple[str, ...]]

    @abstractmethod
    def tokens(self, source_lang: str, target_lang: str, task: Task, pnc: bool) -> list[str]:
        """The prompt as special-token strings; raises `PromptError` on an invalid combination."""

    def tokens_for(self, example: Example) -> list[str]:
        """The prompt of ``example``; errors name the example."""
        source, target = example_langs(example)
        try:
            return self.tokens(source, target, example.task, example.pnc)
        except PromptError as err:
            raise PromptError(f"example {example.id!r}: {err}", err.reason) from None


class CanaryPromptFormat(PromptFormat):
    """The 5-token Canary-1B prompt (see the module docstring)."""

    name = "canary"
    tokens_used = (SOT, TRANSCRIBE, TRANSLATE, PNC, NOPNC)

    def tokens(self, source_lang: str, target_lang: str, task: Task, pnc: bool) -> list[str]:
        if task == "asr":
            if source_lang != target_lang:
                raise PromptError(
                    f"asr needs source_lang == target_lang, got {source_lang!r} -> {target_lang!r}"
                    " (use task 'ast' for translation)",
                    "asr with different languages",
                )
            task_token = TRANSCRIBE
        elif task == "ast":
            if source_lang == target_lang:
                raise PromptError(
                    f"ast needs source_lang != target_lang, got {source_lang!r} for both"
                    " (use task 'asr' for transcription)",
                    "ast with equal languages",
                )
            task_token = TRANSLATE
        else:
            raise PromptError(f"unknown task {task!r}; expected one of {TASKS}", "unknown task")
        return [
            SOT,
            lang_token(source_lang),
            task_token,
            lang_token(target_lang),
            PNC if pnc else NOPNC,
        ]


# Canary-2's extra special tokens (canary-1b-flash, canary-180m-flash).
STARTOFCONTEXT = "<|startofcontext|>"
EMO_UNDEFINED = "<|emo:undefined|>"
NOITN = "<|noitn|>"
NOTIMESTAMP = "<|notimestamp|>"
NODIARIZE = "<|nodiarize|>"


class Canary2PromptFormat(PromptFormat):
    """The 9-token Canary-2 prompt (canary-1b-flash, canary-180m-flash)::

        <|startofcontext|> <|startoftranscript|> <|emo:undefined|> <|src|> <|tgt|>
        <|pnc|> or <|nopnc|> <|noitn|> <|notimestamp|> <|nodiarize|>

    The task is implied by the languages (equal: ASR, different: AST). The slots padless
    examples do not carry are fixed: no decoder context, emotion undefined, no inverse text
    normalisation, no timestamps, no diarization.
    """

    name = "canary2"
    tokens_used = (STARTOFCONTEXT, SOT, EMO_UNDEFINED, PNC, NOPNC, NOITN, NOTIMESTAMP, NODIARIZE)

    def tokens(self, source_lang: str, target_lang: str, task: Task, pnc: bool) -> list[str]:
        # The Canary-1 rules of task vs languages hold here too.
        CanaryPromptFormat().tokens(source_lang, target_lang, task, pnc)
        return [
            STARTOFCONTEXT,
            SOT,
            EMO_UNDEFINED,
            lang_token(source_lang),
            lang_token(target_lang),
            PNC if pnc else NOPNC,
            NOITN,
            NOTIMESTAMP,
            NODIARIZE,
        ]


#: Prompt formats by name. Add a format by subclassing `PromptFormat` and registering it here.
PROMPT_FORMATS: dict[str, type[PromptFormat]] = {
    fmt.name: fmt for fmt in (CanaryPromptFormat, Canary2PromptFormat)
}


def get_prompt_format(name: str) -> PromptFormat:
    """An instance of the registered prompt format ``name``."""
    try:
        return PROMPT_FORMATS[name]()
    except KeyError:
        raise ValueError(
            f"unknown prompt format {name!r}; known: {', '.join(sorted(PROMPT_FORMATS))}"
        ) from None
