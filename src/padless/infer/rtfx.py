"""RTFx (inverse real-time factor) harness, Open ASR Leaderboard convention.

Utterances are sorted longest first and batched; the first batch runs once untimed (warm-up:
kernel selection, allocator growth); then one timed pass over all batches covers audio reading
and decoding, features, encoder and decoder. RTFx = total audio seconds / wall seconds. Several
presets and decoding modes run in one process, interleaved per repeat, so their ratios are
measured side by side under the same machine load.

``forced_length`` makes every utterance emit exactly as many tokens as its reference transcript
has (text tokens + EOS), so randomly initialised models are timed with realistic output lengths.
The count comes from the tokenizer when one is given (``CanaryTokenizer.num_tokens``, which
returns a manifest's ``num_tokens`` when present), else from the manifest's ``num_tokens``
field minus the 5-token Canary prompt.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from padless.data.audio import load_audio
from padless.data.example import Example
from padless.infer.decode import decode_batch
from padless.infer.options import CacheMode, DecodingOptions, RtfxConfig
from padless.infer.transcribe import longest_first_batches, pad_audio
from padless.model.aed import AEDModel, parameter_counts
from padless.model.checkpoint import get_config, load_checkpoint
from padless.model.config import PRESETS

if TYPE_CHECKING:
    from padless.data.tokenizer import CanaryTokenizer

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16}

#: Languages of the full-size default vocabulary, in the tokenizer's id order (sorted), used for
#: prompts when timing without a tokenizer: ``<|xx|>`` of the i-th language is id 8 + i.
DEFAULT_LANGUAGES = ("de", "en", "es", "fr")
CANARY_PROMPT_LEN = 5


@dataclass(frozen=True)
class RtfxResult:
    preset: str
    decoding: str
    rtfx: float  # median over repeats
    params: int
    audio_s: float
    wall_s: float  # median over repeats
    utterances: int
    output_tokens: int
    rtfx_runs: list[float]
    # Process CPU seconds of the same passes (median): on a shared machine, other processes
    # inflate wall time but not this, so rtfx_cpu is the steadier comparison (one thread).
    cpu_s: float
    rtfx_cpu: float


@dataclass(frozen=True)
class TimingInputs:
    """Per-utterance prompt ids and (with forced length) output lengths."""

    prompts: list[list[int]]
    forced_lengths: list[int] | None


def timing_inputs(
    examples: Sequence[Example], tokenizer: CanaryTokenizer | None, forced_length: bool
) -> TimingInputs:
    """Prompts and forced lengths for every example (see the module docstring)."""
    if tokenizer is not None:
        prompts = [tokenizer.prompt_ids_for(ex) for ex in examples]
    else:
        prompts = [_default_prompt(ex) for ex in examples]
    if not forced_length:
        return TimingInputs(prompts, None)
    lengths = []
    for ex, prompt in zip(examples, prompts, strict=True):
        if tokenizer is not None:
            total = tokenizer.num_tokens(ex)
        elif ex.num_tokens is not None:
            total = ex.num_tokens
        else:
            raise ValueError(
                f"example {ex.id!r}: --forced-length needs a tokenizer (--tokenizer) or a "
                "manifest with num_tokens"
            )
        lengths.append(max(1, total - len(prompt)))
    return TimingInputs(prompts, lengths)


def _default_prompt(example: Example) -> list[int]:
    def lang_id(lang: str | None) -> int:
        return 8 + (DEFAULT_LANGUAGES.index(lang) if lang in DEFAULT_LANGUAGES else 0)

    source = example.source_lang
    target = example.target_lang or source
    task_id = 3 if example.task == "asr" else 4
    return [2, lang_id(source), task_id, lang_id(target), 5 if example.pnc else 6]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_one_pass(
    model: AEDModel,
    examples: Sequence[Example],
    inputs: TimingInputs,
    batch_size: int,
    options: DecodingOptions,
    audio_loader: Callable[[Example], np.ndarray],
    warmup_batches: int = 1,
) -> tuple[float, float, int]:
    """(wall seconds, process CPU seconds, output tokens) of one timed pass, after
    ``warmup_batches`` untimed ones."""
    device = next(model.parameters()).device
    batches = list(longest_first_batches(examples, batch_size))

    def run(batch: list[int]) -> int:
        audio, lens = pad_audio([audio_loader(examples[i]) for i in batch])
        forced = inputs.forced_lengths
        hyps = decode_batch(
            model,
            audio.to(device, non_blocking=True),
            lens.to(device, non_blocking=True),
            [inputs.prompts[i] for i in batch],
            options,
            None if forced is None else [forced[i] for i in batch],
        )
        return sum(len(h.tokens) + h.ended_with_eos for h in hyps)

    for batch in batches[:warmup_batches]:
        run(batch)
    _synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    tokens = sum(run(batch) for batch in batches)
    _synchronize(device)
    return time.perf_counter() - start, time.process_time() - cpu_start, tokens


def run_rtfx(
    models: dict[str, AEDModel],
    examples: Sequence[Example],
    modes: Sequence[CacheMode],
    config: RtfxConfig,
    tokenizer: CanaryTokenizer | None = None,
    audio_loader: Callable[[Example], np.ndarray] | None = None,
    on_result: Callable[[str, str, int, float], None] | None = None,
) -> list[RtfxResult]:
    """Time every (model, mode) pair ``config.repeats`` times, interleaved, on ``examples``.

    Models must already be on ``config.device`` in eval mode with ``config.dtype``.
    ``on_result(name, mode, repeat, rtfx)`` reports each timed pass.
    """
    if audio_loader is None:
        audio_loader = load_audio
    if not examples:
        raise ValueError("no utterances to time")
    inputs = timing_inputs(examples, tokenizer, config.forced_length)
    audio_s = float(sum(ex.duration for ex in examples))
    walls: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    tokens: dict[tuple[str, str], int] = {}
    for repeat in range(config.repeats):
        for name, model in models.items():
            for mode in modes:
                options = replace(config.options, cache=mode)
                wall, cpu, n = time_one_pass(
                    model,
                    examples,
                    inputs,
                    config.batch_size,
                    options,
                    audio_loader,
                    config.warmup_batches,
                )
                walls.setdefault((name, mode), []).append(wall)
                cpus.setdefault((name, mode), []).append(cpu)
                tokens[(name, mode)] = n
                if on_result is not None:
                    on_result(name, mode, repeat, audio_s / wall)
    results = []
    for (name, mode_name), runs in walls.items():
        wall = statistics.median(runs)
        cpu = statistics.median(cpus[(name, mode_name)])
        results.append(
            RtfxResult(
                preset=name,
                decoding=mode_name,
                rtfx=audio_s / wall,
                params=parameter_counts(models[name])["total"],
                audio_s=audio_s,
                wall_s=wall,
                utterances=len(examples),
                output_tokens=tokens[(name, mode_name)],
                rtfx_runs=[audio_s / w for w in runs],
                cpu_s=cpu,
                rtfx_cpu=audio_s / cpu,
            )
        )
    return results


def build_timing_model(
    preset_or_checkpoint: str,
    config: RtfxConfig,
    vocab_size: int | None = None,
    seed: int = 0,
) -> AEDModel:
    """A preset with random weights (seeded) or a checkpoint, on the config's device/dtype."""
    if preset_or_checkpoint not in PRESETS and Path(preset_or_checkpoint).is_file():
        model = load_checkpoint(preset_or_checkpoint).model
    else:
        model_config = get_config(preset_or_checkpoint)
        if vocab_size is not None:
            model_config = model_config.with_vocab_size(vocab_size)
        torch.manual_seed(seed)
        with torch.device(config.device):
            model = AEDModel(model_config)
    return model.to(device=config.device, dtype=DTYPES[config.dtype]).eval()
