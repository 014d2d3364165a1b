"""espeak-ng synthesis, utterance plans and rendering to FLAC + manifest records."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import soundfile as sf

from padless.data.corpus.config import CorpusConfig
from padless.data.corpus.espeak import Espeak, EspeakError
from padless.data.corpus.phrases import LANGUAGES, without_pnc
from padless.data.corpus.plan import BASE_VOICES, plan_utterance
from padless.data.corpus.synth import render, render_batch, resample


@pytest.fixture(scope="module")
def engine() -> Espeak:
    return Espeak.instance()


@pytest.mark.parametrize("lang", LANGUAGES)
def test_espeak_speaks_every_language(engine: Espeak, lang: str):
    samples = engine.synthesize("one two three four", BASE_VOICES[lang][0] + "+f2")
    assert engine.sampling_rate == 22050
    assert samples.dtype == np.int16
    assert 0.5 < len(samples) / engine.sampling_rate < 4.0
    assert np.abs(samples.astype(np.float32)).max() > 1000  # speech, not silence


def test_espeak_rate_changes_duration_and_unknown_voice_is_an_error(engine: Espeak):
    text = "The meeting is on March third at three thirty."
    slow = engine.synthesize(text, "en-us", rate=120)
    fast = engine.synthesize(text, "en-us", rate=240)
    assert len(fast) < 0.7 * len(slow)
    with pytest.raises(EspeakError, match="no voice 'xx-nope'"):
        engine.synthesize(text, "xx-nope")


def test_plans_depend_only_on_seed_and_index():
    config = CorpusConfig(hours=1.0, seed=5)
    plans = [plan_utterance(config, i) for i in range(200)]
    assert plans == [plan_utterance(dataclasses.replace(config, hours=7.0), i) for i in range(200)]
    other = [plan_utterance(dataclasses.replace(config, seed=6), i) for i in range(200)]
    assert sum(a.sentences == b.sentences for a, b in zip(plans, other, strict=True)) < 20
    assert {p.split for p in plans} == {"train", "dev", "test"}
    directions = {(p.task, p.source_lang, p.target_lang) for p in plans}
    asr = {("asr", lang, lang) for lang in LANGUAGES}
    ast = {("ast", x, "en") for x in ("de", "es", "fr")} | {
        ("ast", "en", x) for x in ("de", "es", "fr")
    }
    assert directions == asr | ast
    for p in plans:
        assert p.voice.split("+")[0] in BASE_VOICES[p.source_lang]
        assert (p.task == "asr") == (p.source_lang == p.target_lang)


def test_render_writes_matching_flac_and_record(engine: Espeak):
    config = CorpusConfig(seed=1)
    plans = [plan_utterance(config, i) for i in range(40)]
    plan = next(p for p in plans if p.task == "ast" and not p.pnc)
    out = render(plan, config, engine)
    audio, rate = sf.read(io.BytesIO(out.flac), dtype="int16")
    assert rate == 16000 and audio.shape == (out.num_samples,)
    assert out.record["duration"] == out.num_samples / 16000 == out.duration
    texts = plan.texts()
    assert out.record["text"] == without_pnc(texts[plan.target_lang])
    assert out.record["source_text"] == without_pnc(texts[plan.source_lang])
    assert (out.record["source_lang"], out.record["target_lang"]) == (
        plan.source_lang,
        plan.target_lang,
    )
    assert out.record["taskname"] == "ast" and out.record["pnc"] == "no"
    # The added silence is at both ends; speech is in between.
    before = round(plan.silence[0] * 16000)
    assert not audio[:before].any() and audio[before:].any()


def test_render_drops_sentences_to_fit_max_duration(engine: Espeak):
    config = CorpusConfig(seed=2, max_duration=4.0)
    plans = [plan_utterance(config, i) for i in range(60)]
    long_plans = [p for p in plans if len(p.sentences) >= 4][:3]
    assert long_plans
    for plan in long_plans:
        out = render(plan, config, engine)
        assert out.duration <= 4.0 or out.record["text"] == plan.texts(1)[plan.target_lang]
        kept = plan.texts(len(plan.sentences) - 1)[plan.target_lang]
        assert len(out.record["text"]) <= len(kept)


def test_render_batch_is_deterministic():
    config = CorpusConfig(seed=3)
    first = render_batch(config, range(10, 16))
    second = render_batch(config, range(13, 16))
    assert [r.flac for r in first[3:]] == [r.flac for r in second]
    assert [r.record for r in first[3:]] == [r.record for r in second]


def test_resampling_does_not_depend_on_where_the_samples_sit_in_memory(engine: Espeak):
    # Utterance 382 of the 4-hour demo corpus: soxr's int16 path gave two different results
    # over these 16 buffer offsets, and two runs of `make demo` two different corpora.
    plan = plan_utterance(CorpusConfig(hours=4.0), 382)
    pcm = engine.synthesize(plan.texts()[plan.source_lang], plan.voice, plan.rate, plan.pitch)
    results = set()
    for offset in range(0, 32, 2):
        buffer = np.zeros(pcm.nbytes + 32, dtype=np.uint8)
        shifted = buffer[offset : offset + pcm.nbytes].view(np.int16)
        shifted[:] = pcm
        results.add(resample(shifted, engine.sampling_rate).tobytes())
    assert len(results) == 1
