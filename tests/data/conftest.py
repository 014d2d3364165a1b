"""Fixtures for the data-layer tests: small generated audio files and manifests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import soundfile as sf
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment


def pcm16(seconds: float, rate: int = 16_000, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Deterministic 16-bit speech-like test signal: tones plus noise, (frames, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * rate)) / rate
    signal = np.stack(
        [
            0.3 * np.sin(2 * np.pi * (220 + 110 * c + 40 * seed) * t)
            + 0.05 * rng.standard_normal(len(t))
            for c in range(channels)
        ],
        axis=1,
    )
    return np.round(np.clip(signal, -1, 1) * 32767).astype(np.int16)


def write_audio(
    path: Path,
    seconds: float,
    rate: int = 16_000,
    channels: int = 1,
    seed: int = 0,
    subtype: str = "PCM_16",
) -> np.ndarray:
    """Write a test signal to ``path`` (format from the suffix); returns the int16 samples."""
    samples = pcm16(seconds, rate, channels, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, subtype=subtype)
    return samples


def write_jsonl(path: Path, rows: Sequence[dict[str, Any] | str | bytes]) -> Path:
    """One row per line; str/bytes rows are written verbatim (for malformed lines)."""
    with open(path, "wb") as f:
        for row in rows:
            if isinstance(row, str):
                row = row.encode()
            f.write(row if isinstance(row, bytes) else orjson.dumps(row))
            f.write(b"\n")
    return path


# lhotse recipes often store full language names; padless maps the obvious ones to codes.
LANGUAGE_NAMES = {"en": "English", "de": "German", "fr": "fr", "es": "es"}


def build_lhotse_cuts(rows: list[dict[str, Any]], root: Path) -> CutSet:
    """The corpus manifest rows as lhotse MonoCuts (custom fields in NeMo vocabulary)."""
    recordings: dict[str, Recording] = {}
    cuts = []
    for row in rows:
        path = str(root / row["audio_filepath"])
        rec = recordings.setdefault(path, Recording.from_file(path, recording_id=Path(path).stem))
        start = row.get("offset", 0.0)
        sup = SupervisionSegment(
            id=row["id"],
            recording_id=rec.id,
            start=0.0,
            duration=row["duration"],
            text=row["text"],
            language=LANGUAGE_NAMES[row["source_lang"]],
            speaker=row["speaker"],
        )
        custom = {"target_lang": row["target_lang"], "taskname": row["taskname"], "pnc": row["pnc"]}
        cuts.append(
            MonoCut(
                id=row["id"],
                start=start,
                duration=row["duration"],
                channel=0,
                recording=rec,
                supervisions=[sup],
                custom=custom,
            )
        )
    return CutSet.from_cuts(cuts)


@pytest.fixture
def to_lhotse() -> Callable[[list[dict[str, Any]], Path], CutSet]:
    """``to_lhotse(rows, root)``: NeMo rows of the ``corpus`` fixture as a lhotse CutSet."""
    return build_lhotse_cuts


@pytest.fixture
def make_audio() -> Callable[..., np.ndarray]:
    """``make_audio(path, seconds, rate=16000, channels=1, seed=0, subtype="PCM_16")`` writes a
    test signal and returns its int16 samples (frames, channels)."""
    return write_audio


@pytest.fixture
def jsonl(tmp_path: Path) -> Callable[..., Path]:
    """``jsonl(rows, name="m.jsonl")`` writes a manifest into tmp_path."""

    def make(rows: Sequence[dict[str, Any] | str | bytes], name: str = "m.jsonl") -> Path:
        return write_jsonl(tmp_path / name, rows)

    return make


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, Any]:
    """Six 16-bit FLAC/WAV files of 0.6-2.1 s and a Canary-style NeMo manifest over them
    (ASR and AST, pnc on/off, an extra field, one segment with an offset)."""
    root = tmp_path / "corpus"
    rows: list[dict[str, Any]] = []
    langs = [("en", "en"), ("de", "de"), ("en", "de"), ("fr", "en"), ("es", "es"), ("en", "en")]
    for i, (src, tgt) in enumerate(langs):
        name = f"audio/utt{i}.{'wav' if i % 2 else 'flac'}"
        seconds = 0.6 + 0.3 * i
        write_audio(root / name, seconds, seed=i)
        row: dict[str, Any] = {
            "audio_filepath": name,
            "duration": seconds,
            "text": f"Utterance number {i}.",
            "source_lang": src,
            "target_lang": tgt,
            "taskname": "asr" if src == tgt else "ast",
            "pnc": "yes" if i % 3 else "no",
            "id": f"utt{i}",
            "speaker": f"spk{i % 2}",
        }
        rows.append(row)
    # A segment of the longest file.
    rows.append({**rows[-1], "id": "utt5-seg", "offset": 0.5, "duration": 1.0})
    manifest = write_jsonl(root / "train.jsonl", rows)
    return {"root": root, "manifest": manifest, "rows": rows}
