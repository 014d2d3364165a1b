"""End to end: a small model overfits a handful of embedded-corpus utterances (ASR and AST, four
languages) and then transcribes them exactly, through the library, in-memory arrays, a saved
checkpoint and the `padless transcribe` command."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import soundfile as sf
import soxr
import torch
from typer.testing import CliRunner

from padless.cli import app
from padless.data.dataset import SpeechBatch
from padless.data.tokenizer import CanaryTokenizer
from padless.infer import DecodingOptions
from padless.infer.transcribe import PromptOverrides, transcribe, transcribe_arrays
from padless.model import PRESETS, AEDModel, ModelConfig, save_checkpoint


def expected_texts(utterances: Any, tokenizer: CanaryTokenizer) -> list[str]:
    # The tokenizer normalises text (NFKC); an exact transcript is the normalised reference.
    return [
        tokenizer.decode(tokenizer.encode(ex.text, ex.target_lang)) for ex in utterances.examples
    ]


def overfit(
    model: AEDModel,
    utterances: Any,
    tokenizer: CanaryTokenizer,
    batch: SpeechBatch,
    train: Callable[..., list[float]],
    max_steps: int,
    lr: float = 3e-3,
) -> int:
    """Train in chunks of 25 steps until greedy decoding is exact; returns the steps taken."""
    want = expected_texts(utterances, tokenizer)
    for steps in range(25, max_steps + 1, 25):
        train(model, batch, steps=25, lr=lr)
        model.eval()
        got = [t.text for t in transcribe(model, tokenizer, utterances.examples)]
        if got == want:
            return steps
    raise AssertionError(f"not exact after {max_steps} steps: {got} != {want}")


@pytest.fixture(scope="module")
def overfitted(
    utterances: Any,
    tokenizer: CanaryTokenizer,
    training_batch: SpeechBatch,
    small_config: Callable[[int], ModelConfig],
    train: Callable[..., list[float]],
) -> AEDModel:
    torch.manual_seed(0)
    model = AEDModel(small_config(tokenizer.vocab_size))
    overfit(model, utterances, tokenizer, training_batch, train, max_steps=300)
    return model.eval()


def test_overfitted_model_transcribes_exactly_with_every_decoder(
    overfitted: AEDModel, utterances: Any, tokenizer: CanaryTokenizer
) -> None:
    want = expected_texts(utterances, tokenizer)
    for options in (
        DecodingOptions(cache="recompute"),
        DecodingOptions(strategy="beam", beam_size=4, length_penalty=1.0),
        DecodingOptions(strategy="beam", beam_size=3, cache="recompute"),
    ):
        got = transcribe(overfitted, tokenizer, utterances.examples, options=options, batch_size=3)
        assert [t.text for t in got] == want, options
        assert [t.id for t in got] == [ex.id for ex in utterances.examples]  # input order


def test_in_memory_arrays_any_rate_and_type(
    overfitted: AEDModel, utterances: Any, tokenizer: CanaryTokenizer
) -> None:
    want = expected_texts(utterances, tokenizer)
    for i, ex in enumerate(utterances.examples):
        wave = utterances.waves[i]
        inputs: list[Any] = [
            torch.from_numpy(wave),  # a tensor
            soxr.resample(wave, 16_000, 48_000).astype(np.float32),  # resampled back on load
        ]
        out = transcribe_arrays(
            overfitted,
            tokenizer,
            inputs[:1],
            source_lang=ex.source_lang,
            target_lang=ex.target_lang,
            task=ex.task,
            pnc=ex.pnc,
        )
        assert out[0].text == want[i]
        out = transcribe_arrays(
            overfitted,
            tokenizer,
            inputs[1:],
            source_lang=ex.source_lang,
            target_lang=ex.target_lang,
            task=ex.task,
            pnc=ex.pnc,
            sampling_rate=48_000,
        )
        assert out[0].text == want[i]


def test_prompt_overrides_change_the_task(
    overfitted: AEDModel, utterances: Any, tokenizer: CanaryTokenizer
) -> None:
    ast = [i for i, ex in enumerate(utterances.examples) if ex.task == "ast"]
    example = utterances.examples[ast[0]]
    as_asr = transcribe(overfitted, tokenizer, [example], overrides=PromptOverrides(task="asr"))[0]
    assert (as_asr.task, as_asr.target_lang) == ("asr", example.source_lang)
    with pytest.raises(ValueError, match="no source language"):
        transcribe(overfitted, tokenizer, [dataclasses.replace(example, source_lang=None)])


def test_transcribe_command_from_a_checkpoint(
    overfitted: AEDModel, utterances: Any, tokenizer: CanaryTokenizer, tmp_path: Path
) -> None:
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, overfitted, tokenizer=tokenizer)
    want = expected_texts(utterances, tokenizer)
    rows = []
    for i, ex in enumerate(utterances.examples):
        path = tmp_path / f"{ex.id}.wav"
        sf.write(path, utterances.waves[i], 16_000, subtype="FLOAT")
        rows.append(
            {
                "audio_filepath": str(path),
                "duration": ex.duration,
                "text": ex.text,
                "source_lang": ex.source_lang,
                "target_lang": ex.target_lang,
                "taskname": ex.task,
                "pnc": "yes" if ex.pnc else "no",
            }
        )
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    out = tmp_path / "out.jsonl"
    runner = CliRunner()
    result = runner.invoke(
        app, ["transcribe", str(ckpt), str(manifest), "--batch-size", "3", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["text"] for r in lines] == want
    assert [r["reference"] for r in lines] == [ex.text for ex in utterances.examples]
    # A bare audio file needs the language on the command line; output goes to stdout.
    asr = next(i for i, ex in enumerate(utterances.examples) if ex.task == "asr")
    ex = utterances.examples[asr]
    flags = ["--source-lang", ex.source_lang, "--strategy", "beam", "--beam-size", "2"]
    flags += ["--pnc"] if ex.pnc else ["--no-pnc"]
    result = runner.invoke(app, ["transcribe", str(ckpt), rows[asr]["audio_filepath"], *flags])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout.splitlines()[-1])["text"] == want[asr]
    missing = runner.invoke(app, ["transcribe", str(ckpt), rows[asr]["audio_filepath"]])
    assert missing.exit_code != 0 and "no source language" in missing.output


@pytest.mark.slow
def test_tiny_flash_preset_overfits(
    utterances: Any,
    tokenizer: CanaryTokenizer,
    training_batch: SpeechBatch,
    train: Callable[..., list[float]],
) -> None:
    # The real tiny preset (dropout and SpecAugment off, as for any overfitting check).
    preset = PRESETS["tiny-canary-1b-flash"].with_vocab_size(tokenizer.vocab_size)
    no_dropout = dataclasses.replace(preset.encoder, dropout=0.0, attn_dropout=0.0)
    cfg = dataclasses.replace(
        preset,
        encoder=no_dropout,
        decoder=dataclasses.replace(preset.decoder, dropout=0.0, attn_dropout=0.0),
        spec_augment=dataclasses.replace(preset.spec_augment, freq_masks=0, time_masks=0),
    )
    torch.manual_seed(0)
    model = AEDModel(cfg)
    overfit(model, utterances, tokenizer, training_batch, train, max_steps=600, lr=1e-3)
