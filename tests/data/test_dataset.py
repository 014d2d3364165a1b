"""SpeechDataset and SpeechBatch on real audio files: padding and length invariants, prompts,
DataLoader with ``batch_size=None`` and worker processes, and errors naming the example."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import orjson
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from padless.data.audio import load_audio
from padless.data.dataset import SpeechBatch, SpeechDataset, SpeechDatasetConfig, collate
from padless.data.errors import AudioError
from padless.data.example import ArrayAudio, Example, FileAudio
from padless.data.prompt import PromptError
from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer

TEXTS = {
    "de": ["Über 30 Äpfel für München!", "Die Straße ist schön, ja?", "Größe: 12,5 Meter."],
    "en": ["It's 12:30 on Monday.", "The café paid 1998 dollars!", "Yes, really? Well: no."],
    "es": ["¿Dónde está el niño?", "¡Qué mañana, señor!", "Pagamos 15 canciones."],
    "fr": ["Où est l'hôtel?", "Déjà 47 garçons à Noël!", "Ça va très bien, oui."],
}


@pytest.fixture(scope="module")
def tok(tmp_path_factory: pytest.TempPathFactory) -> CanaryTokenizer:
    root = tmp_path_factory.mktemp("tok")
    rows = [
        {"id": f"{lang}{i}", "duration": 1.0, "text": f"{text} {i}", "lang": lang}
        for lang, texts in TEXTS.items()
        for text in texts
        for i in range(20)
    ]
    manifest = root / "m.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    config = TokenizerTrainConfig(vocab_per_lang=60)
    return train_tokenizer([str(manifest)], root / "tok", config).tokenizer


def tone(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(frames, channels) float signal in [-0.5, 0.5]: a tone plus noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t) + 0.05 * rng.standard_normal(len(t))
    return np.repeat(wave[:, None], channels, axis=1)


@pytest.fixture
def examples(tmp_path: Path) -> list[Example]:
    """Five examples over WAV/FLAC files at 16, 8 and 44.1 kHz, mono and stereo, one segment of
    a longer file, one in-memory array; ASR in four languages and AST both ways."""
    files = [
        ("a.wav", 1.3, 16_000, 1, "PCM_16"),
        ("b.flac", 0.7, 16_000, 1, "PCM_16"),
        ("c.wav", 2.1, 44_100, 2, "PCM_16"),
        ("d.flac", 0.4, 8_000, 1, "PCM_24"),
        ("long.flac", 5.0, 16_000, 1, "PCM_16"),
    ]
    for seed, (name, seconds, rate, channels, subtype) in enumerate(files):
        sf.write(tmp_path / name, tone(seconds, rate, channels, seed), rate, subtype=subtype)

    def ex(i: str, audio: object, dur: float, text: str | None, src: str, tgt: str) -> Example:
        task = "asr" if src == tgt else "ast"
        return Example(i, dur, audio, text, src, tgt, task, pnc=i != "b")  # type: ignore[arg-type]

    array = ArrayAudio(tone(0.9, 16_000, 1, 9)[:, 0].astype(np.float32), 16_000)
    return [
        ex("a", FileAudio(str(tmp_path / "a.wav")), 1.3, TEXTS["en"][0], "en", "en"),
        ex("b", FileAudio(str(tmp_path / "b.flac")), 0.7, TEXTS["de"][1], "de", "de"),
        ex("c", FileAudio(str(tmp_path / "c.wav")), 2.1, TEXTS["fr"][2], "en", "fr"),
        ex("d", FileAudio(str(tmp_path / "d.flac")), 0.4, TEXTS["en"][1], "es", "en"),
        ex("e", FileAudio(str(tmp_path / "long.flac"), 1.25, 1.5), 1.5, TEXTS["es"][0], "es", "es"),
        ex("f", array, 0.9, "", "fr", "fr"),
    ]


def test_batch_padding_and_lengths(tok: CanaryTokenizer, examples: list[Example]) -> None:
    batch = SpeechDataset(tok)[examples]
    b = len(examples)
    wavs = [load_audio(ex) for ex in examples]
    sequences = tok.encode_examples(examples)

    assert isinstance(batch, SpeechBatch)
    assert len(batch) == b
    assert batch.ids == ("a", "b", "c", "d", "e", "f")
    assert batch.audio.dtype == torch.float32
    assert batch.audio_lens.dtype == batch.tokens.dtype == torch.int64
    assert batch.token_lens.dtype == batch.prompt_lens.dtype == torch.int64
    assert batch.audio.shape == (b, int(batch.audio_lens.max()))
    assert batch.tokens.shape == (b, int(batch.token_lens.max()))
    # Lengths at 16 kHz, resampled where needed (c: 44.1 kHz stereo, d: 8 kHz, e: a segment).
    assert batch.audio_lens.tolist() == [len(w) for w in wavs]
    assert batch.audio_lens.tolist() == [round(ex.duration * 16_000) for ex in examples]
    for i in range(b):
        n, u = int(batch.audio_lens[i]), int(batch.token_lens[i])
        assert torch.equal(batch.audio[i, :n], torch.from_numpy(wavs[i]))
        assert not batch.audio[i, n:].any()
        assert batch.tokens[i, :u].tolist() == sequences[i][0]
        assert (batch.tokens[i, u:] == tok.pad_id).all()
        assert u == tok.num_tokens(examples[i])
        assert batch.tokens[i, 0] == tok.bos_id
        assert batch.tokens[i, u - 1] == tok.eos_id
    assert batch.prompt_lens.tolist() == [5] * b
    # Prompts: a is en ASR with pnc; b has pnc off; c translates en -> fr.
    assert batch.tokens[0, :5].tolist() == [2, 9, 3, 9, 5]
    assert batch.tokens[1, :5].tolist() == [2, 8, 3, 8, 6]
    assert batch.tokens[2, :5].tolist() == [2, 9, 4, 11, 5]
    # Targets decode back to the text; the empty text of f is <|nospeech|> EOS.
    assert [tok.decode(batch.tokens[i].tolist()) for i in range(b)] == [ex.text for ex in examples]
    assert batch.tokens[5, 5:7].tolist() == [tok.nospeech_id, tok.eos_id]


def test_inference_batches_hold_the_prompt_only(
    tok: CanaryTokenizer, examples: list[Example]
) -> None:
    batch = SpeechDataset(tok, SpeechDatasetConfig(include_targets=False))[examples]
    assert batch.tokens.shape == (len(examples), 5)
    assert batch.token_lens.tolist() == batch.prompt_lens.tolist() == [5] * len(examples)
    # Without text an example is prompt-only even when targets are on.
    no_text = [
        Example(e.id, e.duration, e.audio, None, e.source_lang, e.target_lang, e.task)
        for e in examples[:2]
    ]
    mixed = SpeechDataset(tok)[[*no_text, examples[2]]]
    assert mixed.token_lens.tolist() == [5, 5, tok.num_tokens(examples[2])]


def test_dataloader_with_workers_yields_the_same_batches(
    tok: CanaryTokenizer, examples: list[Example]
) -> None:
    dataset = SpeechDataset(tok)
    batches = [examples[:2], examples[2:5], examples[5:], examples[::2]]
    pickle.loads(pickle.dumps(dataset))  # what spawn/forkserver workers receive
    loader = DataLoader(dataset, batch_size=None, sampler=batches, num_workers=2)
    got = list(loader)
    assert [b.ids for b in got] == [tuple(e.id for e in batch) for batch in batches]
    for batch, examples_in in zip(got, batches, strict=True):
        want = dataset[examples_in]
        for name in ("audio", "audio_lens", "tokens", "token_lens", "prompt_lens"):
            assert torch.equal(getattr(batch, name), getattr(want, name)), name


def test_to_moves_every_tensor(tok: CanaryTokenizer, examples: list[Example]) -> None:
    batch = SpeechDataset(tok)[examples[:3]]
    moved = batch.to(torch.device("meta"))
    assert {
        t.device.type
        for t in (moved.audio, moved.audio_lens, moved.tokens, moved.token_lens, moved.prompt_lens)
    } == {"meta"}
    assert moved.ids == batch.ids
    assert moved.tokens.shape == batch.tokens.shape


@pytest.mark.gpu
def test_pin_memory_and_cuda_transfer(tok: CanaryTokenizer, examples: list[Example]) -> None:
    loader = DataLoader(SpeechDataset(tok), batch_size=None, sampler=[examples], pin_memory=True)
    batch = next(iter(loader))
    assert batch.audio.is_pinned() and batch.tokens.is_pinned()
    on_gpu = batch.to("cuda", non_blocking=True)
    assert on_gpu.tokens.is_cuda
    assert torch.equal(on_gpu.tokens.cpu(), batch.tokens)


def test_collate_builds_synthetic_batches() -> None:
    batch = collate(
        [np.ones(3, np.float32), np.full(5, 0.5, np.float32)],
        [[2, 9, 3, 9, 5, 40, 1], [2, 9, 3, 9, 5]],
        [5, 5],
        ["x", "y"],
        pad_id=0,
    )
    assert batch.audio.tolist() == [[1, 1, 1, 0, 0], [0.5] * 5]
    assert batch.tokens.tolist() == [[2, 9, 3, 9, 5, 40, 1], [2, 9, 3, 9, 5, 0, 0]]
    assert batch.audio_lens.tolist() == [3, 5]
    assert batch.token_lens.tolist() == [7, 5]
    with pytest.raises(ValueError, match="one waveform, sequence and prompt length per id"):
        collate([np.ones(3, np.float32)], [[1], [1]], [1, 1], ["x", "y"], pad_id=0)


# ---------------------------------------------------------------------------------- bad input


def test_unreadable_audio_names_example_and_file(
    tok: CanaryTokenizer, examples: list[Example], tmp_path: Path
) -> None:
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC not really")
    bad = Example("bad-1", 1.0, FileAudio(str(corrupt)), "Hello.", "en", "en")
    dataset = SpeechDataset(tok)
    with pytest.raises(AudioError) as err:
        dataset[[examples[0], bad]]
    assert (err.value.example_id, err.value.source) == ("bad-1", str(corrupt))
    # Through a worker process the error still is an AudioError naming the example and file.
    loader = DataLoader(dataset, batch_size=None, sampler=[[examples[0], bad]], num_workers=1)
    with pytest.raises(AudioError) as err:
        next(iter(loader))
    assert (err.value.example_id, err.value.source) == ("bad-1", str(corrupt))
    assert "example 'bad-1'" in str(err.value)


def test_bad_prompts_fail_before_audio_is_read(tok: CanaryTokenizer, tmp_path: Path) -> None:
    missing = FileAudio(str(tmp_path / "missing.wav"))
    dataset = SpeechDataset(tok)
    asr = Example("x-1", 1.0, missing, "Hallo.", "en", "de", "asr")
    with pytest.raises(PromptError, match=r"example 'x-1': asr needs source_lang == target_lang"):
        dataset[[asr]]
    unknown = Example("x-2", 1.0, missing, "Ciao.", "it", "it", "asr")
    with pytest.raises(PromptError, match=r"example 'x-2': unknown language 'it'"):
        dataset[[unknown]]
    # The type survives a worker process too.
    loader = DataLoader(dataset, batch_size=None, sampler=[[asr]], num_workers=1)
    with pytest.raises(PromptError, match="example 'x-1'"):
        next(iter(loader))
    with pytest.raises(ValueError, match="empty list of examples"):
        dataset[[]]


def test_non_finite_audio_is_an_error_in_training_batches(
    tok: CanaryTokenizer, examples: list[Example], tmp_path: Path
) -> None:
    samples = tone(1.0, 16_000)[:, 0].astype(np.float32)
    samples[7] = np.inf
    path = tmp_path / "inf.wav"
    sf.write(path, samples, 16_000, subtype="FLOAT")
    bad = Example("inf-1", 1.0, FileAudio(str(path)), "Hello.", "en", "en")
    with pytest.raises(AudioError, match=r"example 'inf-1' .*1 non-finite samples of 16000"):
        SpeechDataset(tok)[[examples[0], bad]]
