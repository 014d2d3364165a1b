"""Transcription and translation of examples, files and in-memory arrays.

Utterances are sorted longest first and decoded in batches (little padding per batch, and the
largest batch shape comes first), then returned in input order. Each utterance gets its own
prompt, so one batch may mix languages and tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from padless.data.audio import load_audio
from padless.data.example import ArrayAudio, Example, Task
from padless.infer.ctc import CtcSpelling
from padless.infer.decode import decode_batch
from padless.infer.options import DecodingOptions
from padless.model.aed import AEDModel

if TYPE_CHECKING:
    from padless.data.tokenizer import CanaryTokenizer

AudioLoader = Callable[[Example], np.ndarray]


@dataclass(frozen=True)
class PromptOverrides:
    """Prompt fields that replace (or fill in) each example's own; None keeps the example's."""

    source_lang: str | None = None
    target_lang: str | None = None
    task: Task | None = None
    pnc: bool | None = None


@dataclass(frozen=True)
class Transcript:
    """The decoded output of one utterance."""

    id: str
    text: str
    tokens: list[int]
    source_lang: str
    target_lang: str
    task: Task
    pnc: bool
    score: float | None = None


def resolve_prompt(example: Example, overrides: PromptOverrides) -> tuple[str, str, Task, bool]:
    """(source, target, task, pnc) of one example after overrides.

    ASR targets the source language; AST targets ``overrides.target_lang`` or the example's
    own target language. A missing language is an error naming the example.
    """
    source = overrides.source_lang or example.source_lang
    if source is None:
        raise ValueError(f"example {example.id!r}: no source language (pass --source-lang)")
    task: Task = overrides.task or example.task
    target = overrides.target_lang or (source if task == "asr" else example.target_lang)
    if target is None:
        raise ValueError(f"example {example.id!r}: translation needs a target language")
    pnc = example.pnc if overrides.pnc is None else overrides.pnc
    return source, target, task, pnc


def pad_audio(waves: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D float32 waveforms -> zero-padded ``(B, T)`` tensor and ``(B,)`` lengths."""
    lens = np.fromiter((len(w) for w in waves), dtype=np.int64, count=len(waves))
    out = np.zeros((len(waves), int(lens.max(initial=1))), dtype=np.float32)
    for row, wave in enumerate(waves):
        out[row, : len(wave)] = wave
    return torch.from_numpy(out), torch.from_numpy(lens)


def longest_first_batches(
    examples: Sequence[Example], batch_size: int, groups: Sequence[int] | None = None
) -> Iterator[list[int]]:
    """Indices of ``examples`` sorted by duration (longest first, stable), in batches; with
    ``groups`` (one per example), group by group in ascending order, so no batch mixes two."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if groups is None:
        order = sorted(range(len(examples)), key=lambda i: -examples[i].duration)
    else:
        order = sorted(range(len(examples)), key=lambda i: (groups[i], -examples[i].duration))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def transcribe(
    model: AEDModel,
    tokenizer: CanaryTokenizer,
    examples: Sequence[Example],
    *,
    overrides: PromptOverrides = PromptOverrides(),
    options: DecodingOptions = DecodingOptions(),
    batch_size: int = 16,
    audio_loader: AudioLoader | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> list[Transcript]:
    """Decode every example (in input order). ``on_batch(n)`` reports progress per batch."""
    if audio_loader is None:
        audio_loader = load_audio
    device = next(model.parameters()).device
    prompts = [resolve_prompt(ex, overrides) for ex in examples]
    prompt_ids = [tokenizer.prompt_ids(*p) for p in prompts]  # validates languages and tasks
    # The language of each row's output when it is what is said (ASR), else None.
    transcripts = [target if task == "asr" else None for _, target, task, _ in prompts]
    spelling = groups = None
    if options.ctc_weight > 0:  # joint CTC decoding of the ASR rows, batched apart from AST
        spelling = CtcSpelling.from_tokenizer(tokenizer, model.config.loss.ctc_units)
        groups = [int(lang is None) for lang in transcripts]
    results: list[Transcript | None] = [None] * len(examples)
    for batch in longest_first_batches(examples, batch_size, groups):
        audio, lens = pad_audio([audio_loader(examples[i]) for i in batch])
        hyps = decode_batch(
            model,
            audio.to(device),
            lens.to(device),
            [prompt_ids[i] for i in batch],
            options,
            spelling=spelling,
            transcripts=[transcripts[i] for i in batch],
        )
        for i, hyp in zip(batch, hyps, strict=True):
            source, target, task, pnc = prompts[i]
            results[i] = Transcript(
                id=examples[i].id,
                text=tokenizer.decode(hyp.tokens),
                tokens=hyp.tokens,
                source_lang=source,
                target_lang=target,
                task=task,
                pnc=pnc,
                score=hyp.score,
            )
        if on_batch is not None:
            on_batch(len(batch))
    return [r for r in results if r is not None]


def transcribe_arrays(
    model: AEDModel,
    tokenizer: CanaryTokenizer,
    waves: Sequence[np.ndarray | torch.Tensor],
    *,
    source_lang: str,
    target_lang: str | None = None,
    task: Task = "asr",
    pnc: bool = True,
    sampling_rate: int = 16_000,
    options: DecodingOptions = DecodingOptions(),
    batch_size: int = 16,
) -> list[Transcript]:
    """Decode in-memory waveforms (mono, or (channels, samples); resampled if not 16 kHz)."""
    examples = []
    for i, wave in enumerate(waves):
        samples = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else wave
        samples = np.asarray(samples, dtype=np.float32)
        examples.append(
            Example(
                id=str(i),
                duration=samples.shape[-1] / sampling_rate,
                audio=ArrayAudio(samples, sampling_rate),
                sampling_rate=sampling_rate,
            )
        )
    overrides = PromptOverrides(source_lang, target_lang, task, pnc)
    return transcribe(
        model, tokenizer, examples, overrides=overrides, options=options, batch_size=batch_size
    )
