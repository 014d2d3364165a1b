"""Lhotse cut manifests written by the real lhotse package, read by padless without lhotse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lhotse import CutSet, MonoCut, Recording, SupervisionSegment

from padless.data.audio import load_audio
from padless.data.example import FileAudio
from padless.data.stream import read_manifest


@pytest.mark.parametrize("name", ["cuts.jsonl.gz", "cuts.jsonl"])
def test_lhotse_cuts_equal_nemo_examples(corpus: dict, to_lhotse, name: str) -> None:
    cutset = to_lhotse(corpus["rows"], corpus["root"])
    path = corpus["root"] / name
    cutset.to_file(path)
    from_lhotse = list(read_manifest(str(path)))
    from_nemo = list(read_manifest(str(corpus["manifest"])))
    assert from_lhotse == from_nemo
    assert from_lhotse[-1].audio == FileAudio(str(corpus["root"] / "audio/utt5.wav"), 0.5, 1.0)
    # Same samples as lhotse's own loader, segments included.
    for example, cut in zip(from_lhotse, cutset, strict=True):
        ours = load_audio(example)
        theirs = cut.load_audio()[0]
        assert ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_channel_of_a_multichannel_file(tmp_path: Path, make_audio) -> None:
    stereo = make_audio(tmp_path / "stereo.wav", 1.0, channels=2, seed=4)
    rec = Recording.from_file(str(tmp_path / "stereo.wav"))
    sup = SupervisionSegment("s", rec.id, 0.0, 0.5, channel=1, text="right", language="en")
    cut = MonoCut("right", 0.25, 0.5, channel=1, recording=rec, supervisions=[sup])
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")
    (example,) = read_manifest(str(tmp_path / "cuts.jsonl.gz"))
    assert example.extras == {"channel": 1}
    samples = load_audio(example)
    np.testing.assert_array_equal(samples, stereo[4000:12000, 1] / 32768)
    np.testing.assert_allclose(samples, cut.load_audio()[0], atol=1e-6)


def test_cut_custom_fields_and_translation_target(tmp_path: Path, make_audio) -> None:
    make_audio(tmp_path / "a.flac", 1.0)
    rec = Recording.from_file(str(tmp_path / "a.flac"))
    sups = [
        SupervisionSegment("s2", rec.id, 0.5, 0.5, text="welt", language="de", gender="f"),
        SupervisionSegment("s1", rec.id, 0.0, 0.5, text="hallo", language="de"),
    ]
    custom = {"target_lang": "en", "answer": "hello world", "num_tokens": 9, "domain": "demo"}
    cut = MonoCut("c", 0.0, 1.0, 0, recording=rec, supervisions=sups, custom=custom)
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")
    (example,) = read_manifest(str(tmp_path / "cuts.jsonl.gz"))
    assert (example.text, example.source_lang, example.target_lang) == ("hello world", "de", "en")
    assert (example.task, example.num_tokens) == ("ast", 9)
    # supervisions joined in time order; unmapped custom fields and the speaker info kept
    assert example.extras == {"gender": "f", "domain": "demo", "text": "hallo welt"}


def test_reader_does_not_import_lhotse(corpus: dict, to_lhotse) -> None:
    to_lhotse(corpus["rows"], corpus["root"]).to_file(corpus["root"] / "cuts.jsonl.gz")
    code = (
        "import sys; from padless.data.stream import read_manifest; "
        f"n = len(list(read_manifest({str(corpus['root'] / 'cuts.jsonl.gz')!r}))); "
        "assert 'lhotse' not in sys.modules; print(n)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(len(corpus["rows"]))


def test_resampled_recording_keeps_the_stored_rate(tmp_path: Path, make_audio) -> None:
    make_audio(tmp_path / "a.wav", 1.0, rate=16_000)
    cut = Recording.from_file(str(tmp_path / "a.wav")).resample(8_000).to_cut()
    cut.supervisions = [
        SupervisionSegment("s", cut.recording_id, 0.0, 1.0, text="x", language="en")
    ]
    CutSet.from_cuts([cut]).to_file(tmp_path / "cuts.jsonl.gz")
    (example,) = read_manifest(str(tmp_path / "cuts.jsonl.gz"))
    assert example.sampling_rate == 16_000  # what the file holds; load_audio gives 16 kHz
    assert load_audio(example).shape == (16_000,)
