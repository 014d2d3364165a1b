"""The 5-token Canary-1B prompt: exact ids from the fixed layout, and task/language rules."""

from __future__ import annotations

import pytest

from padless.data.example import Example
from padless.data.prompt import (
    PROMPT_FORMATS,
    CanaryPromptFormat,
    PromptError,
    example_langs,
    get_prompt_format,
)

FMT = CanaryPromptFormat()


def ex(src: str | None, tgt: str | None, task: str = "asr", pnc: bool = True) -> Example:
    return Example(
        id="clip-7",
        duration=1.0,
        audio=None,
        text="x",
        source_lang=src,
        target_lang=tgt,
        task=task,  # type: ignore[arg-type]
        pnc=pnc,
    )


@pytest.mark.parametrize(
    ("src", "tgt", "task", "pnc", "tokens"),
    [
        (
            "en",
            "en",
            "asr",
            True,
            ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|en|>", "<|pnc|>"],
        ),
        (
            "de",
            "de",
            "asr",
            False,
            ["<|startoftranscript|>", "<|de|>", "<|transcribe|>", "<|de|>", "<|nopnc|>"],
        ),
        (
            "fr",
            "en",
            "ast",
            True,
            ["<|startoftranscript|>", "<|fr|>", "<|translate|>", "<|en|>", "<|pnc|>"],
        ),
        (
            "en",
            "es",
            "ast",
            False,
            ["<|startoftranscript|>", "<|en|>", "<|translate|>", "<|es|>", "<|nopnc|>"],
        ),
    ],
)
def test_canary_prompt_tokens(src: str, tgt: str, task: str, pnc: bool, tokens: list[str]) -> None:
    assert FMT.tokens(src, tgt, task, pnc) == tokens  # type: ignore[arg-type]
    assert FMT.tokens_for(ex(src, tgt, task, pnc)) == tokens


def test_asr_missing_language_defaults_to_the_other() -> None:
    assert example_langs(ex("fr", None)) == ("fr", "fr")
    assert example_langs(ex(None, "de")) == ("de", "de")
    with pytest.raises(PromptError, match="example 'clip-7': ast example has no target_lang"):
        example_langs(ex("fr", None, "ast"))
    with pytest.raises(PromptError, match="example 'clip-7': asr example has no source_lang"):
        example_langs(ex(None, None))


def test_invalid_combinations_name_the_example() -> None:
    with pytest.raises(
        PromptError,
        match=r"example 'clip-7': asr needs source_lang == target_lang, got 'en' -> 'de'",
    ):
        FMT.tokens_for(ex("en", "de", "asr"))
    with pytest.raises(
        PromptError, match=r"example 'clip-7': ast needs source_lang != target_lang, got 'en'"
    ):
        FMT.tokens_for(ex("en", "en", "ast"))
    with pytest.raises(PromptError, match=r"example 'clip-7': unknown task 'diarize'"):
        FMT.tokens_for(ex("en", "en", "diarize"))


def test_format_registry() -> None:
    assert isinstance(get_prompt_format("canary"), CanaryPromptFormat)
    assert set(PROMPT_FORMATS) == {"canary", "canary2"}
    with pytest.raises(ValueError, match="unknown prompt format 'canary3'; known: canary, canary2"):
        get_prompt_format("canary3")


def test_canary2_prompt_fixes_the_slots_padless_examples_lack() -> None:
    fmt = get_prompt_format("canary2")
    assert fmt.tokens("en", "de", "ast", False) == [
        "<|startofcontext|>",
        "<|startoftranscript|>",
        "<|emo:undefined|>",
        "<|en|>",
        "<|de|>",
        "<|nopnc|>",
        "<|noitn|>",
        "<|notimestamp|>",
        "<|nodiarize|>",
    ]
    assert fmt.tokens("fr", "fr", "asr", True)[3:6] == ["<|fr|>", "<|fr|>", "<|pnc|>"]
    with pytest.raises(PromptError, match="asr needs source_lang == target_lang"):
        fmt.tokens("en", "de", "asr", True)
