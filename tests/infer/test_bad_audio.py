"""Transcription refuses audio with NaN or infinite samples instead of printing a transcript."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from padless.cli import app
from padless.data.errors import AudioError
from padless.data.example import Example, FileAudio
from padless.data.tokenizer import CanaryTokenizer
from padless.infer.transcribe import transcribe
from padless.model import AEDModel, ModelConfig, save_checkpoint


def test_non_finite_audio_is_an_error_in_transcription(
    tokenizer: CanaryTokenizer, small_config: Callable[[int], ModelConfig], tmp_path: Path
) -> None:
    samples = (np.sin(np.linspace(0, 300, 8000)) * 0.3).astype(np.float32)
    samples[100:105] = np.nan
    wav = tmp_path / "nan.wav"
    sf.write(wav, samples, 16_000, subtype="FLOAT")
    model = AEDModel(small_config(tokenizer.vocab_size)).eval()
    example = Example("nan-utt", 0.5, FileAudio(str(wav)), None, "en", "en")
    with pytest.raises(AudioError, match=r"example 'nan-utt' .*5 non-finite samples of 8000"):
        transcribe(model, tokenizer, [example])

    ckpt = tmp_path / "m.pt"
    save_checkpoint(ckpt, model, tokenizer=tokenizer)
    result = CliRunner().invoke(app, ["transcribe", str(ckpt), str(wav), "--source-lang", "en"])
    assert result.exit_code == 2, result.output
    assert "5 non-finite samples of 8000 (5 NaN, 0 infinite)" in result.output
    assert '"text"' not in result.stdout
