"""The RTFx harness: what it times, what it reports, and the `padless bench-rtfx` command."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from padless.cli import app
from padless.data.tokenizer import CanaryTokenizer
from padless.infer import rtfx
from padless.infer.rtfx import RtfxConfig, run_rtfx, timing_inputs
from padless.model import AEDModel, parameter_counts


def test_every_model_and_mode_is_timed_on_the_same_utterances(
    partly_trained: AEDModel, utterances: Any, tokenizer: CanaryTokenizer
) -> None:
    torch.manual_seed(1)
    other = AEDModel(partly_trained.config).eval()
    models = {"trained": partly_trained, "random": other}
    config = RtfxConfig(batch_size=3, forced_length=True, repeats=2)
    results = run_rtfx(models, utterances.examples, ["kv", "recompute"], config, tokenizer)
    assert {(r.preset, r.decoding) for r in results} == {
        (name, mode) for name in models for mode in ("kv", "recompute")
    }
    forced = [tokenizer.num_tokens(ex) - 5 for ex in utterances.examples]
    audio_s = sum(ex.duration for ex in utterances.examples)
    for r in results:
        assert r.output_tokens == sum(forced), "forced length: text tokens + EOS each"
        assert r.audio_s == pytest.approx(audio_s)
        assert len(r.rtfx_runs) == 2 and min(r.rtfx_runs) <= r.rtfx <= max(r.rtfx_runs)
        assert r.params == parameter_counts(models[r.preset])["total"]
        assert r.utterances == len(utterances.examples)


class StubClock:
    """A stand-in for the `time` module: the clock advances only while a timed pass loads
    audio, by ``rates[pass]`` seconds per second of audio (warm-up loads come before the pass's
    first reading and cost nothing). Process time runs at half the wall clock."""

    def __init__(self, rates: list[float]) -> None:
        self.rates = rates
        self.now = 0.0
        self.readings = 0  # perf_counter calls: odd while a pass is being timed

    def perf_counter(self) -> float:
        self.readings += 1
        return self.now

    def process_time(self) -> float:
        return self.now / 2

    def load(self, wave: np.ndarray, duration: float) -> np.ndarray:
        if self.readings % 2 == 1:
            self.now += self.rates[self.readings // 2] * duration
        return wave


def test_rtfx_against_a_stub_clock(
    partly_trained: AEDModel, utterances: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three passes that take 0.1, 0.4 and 0.05 s per audio second: RTFx 10, 2.5 and 20 per
    pass, the median pass (10) reported, CPU RTFx twice that; warm-up batches not timed."""
    clock = StubClock([0.1, 0.4, 0.05])
    monkeypatch.setattr(rtfx, "time", clock)
    waves = {ex.id: w for ex, w in zip(utterances.examples, utterances.waves, strict=True)}
    config = RtfxConfig(batch_size=2, forced_length=False, repeats=3, warmup_batches=2)
    (result,) = run_rtfx(
        {"m": partly_trained},
        utterances.examples,
        ["kv"],
        config,
        audio_loader=lambda ex: clock.load(waves[ex.id], ex.duration),
    )
    audio_s = sum(ex.duration for ex in utterances.examples)
    assert result.rtfx_runs == pytest.approx([10.0, 2.5, 20.0])
    assert result.rtfx == pytest.approx(10.0) and result.rtfx_cpu == pytest.approx(20.0)
    assert result.wall_s == pytest.approx(0.1 * audio_s)
    assert result.cpu_s == pytest.approx(0.05 * audio_s)
    assert clock.readings == 6  # one start and one end reading per pass


def test_forced_lengths_without_a_tokenizer_come_from_num_tokens(utterances: Any) -> None:
    plain = [dataclasses.replace(ex, num_tokens=None) for ex in utterances.examples]
    examples = [dataclasses.replace(ex, num_tokens=9 + i) for i, ex in enumerate(plain)]
    inputs = timing_inputs(examples, None, forced_length=True)
    assert inputs.forced_lengths == [4 + i for i in range(len(examples))]
    # Prompts follow the fixed id layout of the default 4-language tokenizer (de, en, es, fr).
    first = examples[0]
    lang = 8 + ("de", "en", "es", "fr").index(first.source_lang)
    assert inputs.prompts[0][:2] == [2, lang]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        timing_inputs(plain, None, forced_length=True)


def test_bench_rtfx_command_reports_json(
    utterances: Any, tokenizer: CanaryTokenizer, tmp_path: Path
) -> None:
    rows = []
    for ex, wave in zip(utterances.examples[:4], utterances.waves, strict=False):
        path = tmp_path / f"{ex.id}.flac"
        sf.write(path, wave, 16_000)
        rows.append(
            {
                "audio_filepath": str(path),
                "duration": ex.duration,
                "text": ex.text,
                "source_lang": ex.source_lang,
                "target_lang": ex.target_lang,
                "taskname": ex.task,
            }
        )
    manifest = tmp_path / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    tokenizer.save(tmp_path / "tok")
    args = ["bench-rtfx", "--presets", "tiny-canary-1b-small-decoder", "--manifest", str(manifest)]
    args += ["--decoding", "kv,recompute", "--forced-length", "--tokenizer", str(tmp_path / "tok")]
    args += ["--batch-size", "2", "--threads", "1", "--no-keep-freed-memory", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert [(r["preset"], r["decoding"]) for r in report["results"]] == [
        ("tiny-canary-1b-small-decoder", "kv"),
        ("tiny-canary-1b-small-decoder", "recompute"),
    ]
    for r in report["results"]:
        assert {"preset", "decoding", "rtfx", "params", "audio_s", "wall_s"} <= set(r)
        assert r["rtfx"] > 0
    assert report["config"]["forced_length"] is True
    assert {"uname", "cpu", "cores", "torch"} <= set(report["machine"])
    bad = CliRunner().invoke(app, [*args[:5], "--decoding", "fast"])
    assert bad.exit_code != 0 and "unknown decoding cache" in bad.output
