"""load_audio: formats, segments, down-mix, resampling, and errors naming example and file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from padless.data.audio import AudioConfig, load_audio, load_pcm
from padless.data.errors import AudioError
from padless.data.example import ArrayAudio, Example, FileAudio, ShardAudio


def _example(audio, example_id: str = "x", **extras) -> Example:
    return Example(example_id, 1.0, audio, "text", "en", "en", extras=extras or None)


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_lossless_formats_decode_exactly(tmp_path: Path, make_audio, suffix: str) -> None:
    pcm = make_audio(tmp_path / f"a.{suffix}", 1.25)
    samples = load_audio(_example(FileAudio(str(tmp_path / f"a.{suffix}"))))
    assert samples.dtype == np.float32 and samples.shape == (20_000,)
    np.testing.assert_array_equal(samples, pcm[:, 0] / 32768)
    np.testing.assert_array_equal(
        load_pcm(_example(FileAudio(str(tmp_path / f"a.{suffix}"))))[0], pcm
    )


def test_ogg_vorbis_decodes(tmp_path: Path, make_audio) -> None:
    pcm = make_audio(tmp_path / "a.ogg", 1.0, subtype="VORBIS")
    samples = load_audio(_example(FileAudio(str(tmp_path / "a.ogg"))))
    assert samples.shape == (16_000,)
    assert np.corrcoef(samples, pcm[:, 0])[0, 1] > 0.9  # lossy, but the same signal


def test_segment_by_offset_and_duration(tmp_path: Path, make_audio) -> None:
    pcm = make_audio(tmp_path / "long.flac", 3.0)
    samples = load_audio(_example(FileAudio(str(tmp_path / "long.flac"), 1.25, 0.5)))
    np.testing.assert_array_equal(samples, pcm[20_000:28_000, 0] / 32768)
    tail = load_audio(_example(FileAudio(str(tmp_path / "long.flac"), 2.5)))  # to the end
    np.testing.assert_array_equal(tail, pcm[40_000:, 0] / 32768)


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_resampled_to_16k_keeping_the_pitch(tmp_path: Path, rate: int) -> None:
    t = np.arange(rate) / rate
    sf.write(tmp_path / "tone.wav", 0.5 * np.sin(2 * np.pi * 440 * t), rate, subtype="PCM_16")
    samples = load_audio(_example(FileAudio(str(tmp_path / "tone.wav"))))
    assert samples.shape == (16_000,)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    assert abs(np.argmax(spectrum) * 16_000 / len(samples) - 440) <= 1.0
    assert 0.3 < np.sqrt(2 * np.mean(samples[1000:-1000] ** 2)) < 0.55  # amplitude kept


def test_stereo_is_averaged_unless_a_channel_is_named(tmp_path: Path, make_audio) -> None:
    pcm = make_audio(tmp_path / "st.wav", 0.5, channels=2).astype(np.float32) / 32768
    ref = FileAudio(str(tmp_path / "st.wav"))
    np.testing.assert_allclose(load_audio(_example(ref)), pcm.mean(axis=1), atol=1e-7)
    np.testing.assert_array_equal(load_audio(_example(ref, channel=1)), pcm[:, 1])
    with pytest.raises(AudioError, match="channel 2 requested, file has 2 channels"):
        load_audio(_example(ref, channel=2))


def test_array_audio_passthrough_downmix_and_resample() -> None:
    mono = np.linspace(-0.5, 0.5, 16_000, dtype=np.float32)
    np.testing.assert_array_equal(load_audio(_example(ArrayAudio(mono, 16_000))), mono)
    stereo = np.stack([mono, -mono])  # (channels, T)
    np.testing.assert_array_equal(
        load_audio(_example(ArrayAudio(stereo, 16_000))), np.zeros(16_000, np.float32)
    )
    assert load_audio(_example(ArrayAudio(mono, 8_000))).shape == (32_000,)


def test_tolerance_for_rounded_manifest_durations(tmp_path: Path, make_audio) -> None:
    make_audio(tmp_path / "a.wav", 1.0)
    path = str(tmp_path / "a.wav")
    # 50 ms past the end: within the default 0.1 s tolerance, the file's samples come back
    assert load_audio(_example(FileAudio(path, 0.5, 0.55))).shape == (8_000,)
    with pytest.raises(
        AudioError,
        match=r"file ends 0\.300 s before the segment \(offset 0\.500 s \+ duration 0\.800 s\)",
    ):
        load_audio(_example(FileAudio(path, 0.5, 0.8)))
    strict = AudioConfig(duration_tolerance=0.01)
    with pytest.raises(AudioError, match=r"file ends 0\.050 s before"):
        load_audio(_example(FileAudio(path, 0.5, 0.55)), strict)


def test_errors_name_the_example_and_the_file(tmp_path: Path, make_audio) -> None:
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(AudioError) as caught:
        load_audio(_example(FileAudio(missing), "utt-7"))
    assert str(caught.value).startswith(f"example 'utt-7' ({missing}): ")
    assert caught.value.example_id == "utt-7" and caught.value.source == missing

    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(range(256)) * 4)
    with pytest.raises(AudioError, match=rf"example 'c' \({corrupt}\): cannot decode audio"):
        load_audio(_example(FileAudio(str(corrupt)), "c"))

    make_audio(tmp_path / "short.wav", 1.0)
    with pytest.raises(
        AudioError, match=r"offset 2\.000 s is past the end of the file \(1\.000 s\)"
    ):
        load_audio(_example(FileAudio(str(tmp_path / "short.wav"), 2.0, 1.0)))

    tar = tmp_path / "s.tar"
    tar.write_bytes(b"\0" * 1000)
    with pytest.raises(
        AudioError,
        match=rf"example 's' \({tar} @ byte 900\): shard truncated: read 100 of 400 bytes",
    ):
        load_audio(_example(ShardAudio(str(tar), 900, 400), "s"))
    with pytest.raises(
        AudioError, match=r"example 'z' \(no audio\): example has no audio reference"
    ):
        load_audio(_example(None, "z"))


def test_missing_file_says_file_not_found(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.wav")
    with pytest.raises(AudioError, match=rf"file not found: {missing}$"):
        load_audio(_example(FileAudio(missing), "m"))


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_non_finite_samples_are_an_error_naming_the_example_and_count(
    tmp_path: Path, subtype: str
) -> None:
    samples = np.sin(np.linspace(0, 100, 16_000)).astype(np.float32) * 0.5
    samples[[10, 20, 30]] = [np.nan, np.inf, -np.inf]
    path = tmp_path / "bad.wav"
    sf.write(path, samples, 16_000, subtype=subtype)
    message = r"example 'nan-1' \(.*bad\.wav\): 3 non-finite samples of 16000 \(1 NaN, 2 infinite\)"
    with pytest.raises(AudioError, match=message):
        load_audio(_example(FileAudio(str(path)), "nan-1"))
    with pytest.raises(AudioError, match="3 non-finite samples"):
        load_pcm(_example(FileAudio(str(path)), "nan-1"), "int32")
    with pytest.raises(AudioError, match=r"example 'arr' \(in-memory array\): 3 non-finite"):
        load_audio(_example(ArrayAudio(samples, 16_000), "arr"))


def test_float_files_read_as_integers_are_scaled_not_truncated(tmp_path: Path) -> None:
    samples = (np.sin(np.linspace(0, 100, 8000)) * 0.5).astype(np.float32)
    path = tmp_path / "f.wav"
    sf.write(path, samples, 16_000, subtype="FLOAT")
    pcm16, _ = load_pcm(_example(FileAudio(str(path))), "int16")
    np.testing.assert_array_equal(pcm16[:, 0], np.round(samples.astype(np.float64) * 32768))
    loud = tmp_path / "loud.wav"
    sf.write(loud, samples * 3, 16_000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"float samples outside \[-1, 1\] \(peak 1\.500\)"):
        load_pcm(_example(FileAudio(str(loud))), "int32")
    assert np.max(np.abs(load_audio(_example(FileAudio(str(loud)))))) == pytest.approx(1.5)
