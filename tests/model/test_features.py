"""Log-mel front end and SpecAugment on generated audio."""

from __future__ import annotations

import math

import pytest
import torch

from padless.model import FeatureConfig, SpecAugmentConfig
from padless.model.features import LogMelFeatures, mel_filterbank, spec_augment

SR = 16_000


def tone(freq: float, seconds: float, amp: float = 0.3) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return amp * torch.sin(2 * math.pi * freq * t)


def mel_centre_hz(n_mels: int) -> torch.Tensor:
    fb = mel_filterbank(SR, 512, n_mels)
    freqs = torch.linspace(0, SR / 2, fb.shape[1])
    return freqs[fb.argmax(dim=1)]


def test_filterbank_shape_and_ordering() -> None:
    fb = mel_filterbank(SR, 512, 80)
    assert fb.shape == (80, 257)
    assert (fb >= 0).all()
    assert (fb.sum(1) > 0).all(), "every filter covers at least one FFT bin"
    centres = mel_centre_hz(80)
    assert (centres[1:] >= centres[:-1]).all()
    assert centres[0] < 100 and centres[-1] > 7000


@pytest.mark.parametrize("freq", [300.0, 1000.0, 3000.0, 6000.0])
def test_a_tone_lights_up_the_mel_bin_at_its_frequency(freq: float) -> None:
    fb = mel_filterbank(SR, 512, 80)
    spec = (
        torch.stft(
            tone(freq, 0.5), 512, 160, 400, torch.hann_window(400), return_complex=True
        ).abs()
        ** 2
    )  # (257, F)
    loudest = (fb @ spec).mean(1).argmax()
    centres = mel_centre_hz(80)
    assert loudest == (centres - freq).abs().argmin()


def test_frames_normalisation_and_padding() -> None:
    feats = LogMelFeatures(FeatureConfig(n_mels=80)).eval()
    audio = torch.zeros(2, 24_000)
    audio[0] = torch.randn(24_000) * 0.1
    audio[1, :9_999] = tone(440, 9_999 / SR) + 0.01 * torch.randn(9_999)
    lens = torch.tensor([24_000, 9_999])
    out, frames = feats(audio, lens)
    assert frames.tolist() == [24_000 // 160 + 1, 9_999 // 160 + 1]
    assert out.shape == (2, frames[0], 80)
    valid = out[1, : frames[1]]
    torch.testing.assert_close(valid.mean(0), torch.zeros(80), atol=1e-4, rtol=0)
    torch.testing.assert_close(valid.std(0), torch.ones(80), atol=1e-3, rtol=0)
    assert (out[1, frames[1] :] == 0).all(), "padded frames are exactly zero"


@pytest.mark.parametrize("length", [1, 159, 160, 4_001, 7_999])
def test_features_do_not_depend_on_batch_padding(length: int) -> None:
    feats = LogMelFeatures(FeatureConfig()).eval()
    short = torch.randn(length) * 0.1
    solo, solo_frames = feats(short[None], torch.tensor([length]))
    batch = torch.randn(2, 12_000) * 0.1  # noise in the padding region must not matter
    batch[0, :length] = short
    both, frames = feats(batch, torch.tensor([length, 12_000]))
    assert frames[0] == solo_frames[0]
    torch.testing.assert_close(both[0, : frames[0]], solo[0], atol=1e-5, rtol=1e-4)


def test_dither_only_in_training() -> None:
    feats = LogMelFeatures(FeatureConfig(dither=1e-2))
    audio, lens = torch.randn(1, 8_000) * 0.1, torch.tensor([8_000])
    feats.eval()
    torch.testing.assert_close(feats(audio, lens)[0], feats(audio, lens)[0], rtol=0, atol=0)
    feats.train()
    assert not torch.equal(feats(audio, lens)[0], feats(audio, lens)[0])


def test_spec_augment_masks_stay_in_bounds() -> None:
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=10, time_masks=5, time_width=0.05)
    feats = torch.ones(4, 300, 80)
    lens = torch.tensor([300, 200, 100, 20])
    out = spec_augment(feats, lens, cfg)
    zero = out == 0
    # Frequency masks: whole columns, at most 2 * 10 bins per utterance.
    band = zero.all(dim=1)  # (B, M)
    assert (band.sum(1) <= 20).all()
    # Time masks: whole rows, inside the valid frames, at most 5 * max(1, 5% of length).
    span = zero.all(dim=2)  # (B, F)
    for b, n in enumerate(lens.tolist()):
        assert not span[b, n:].any()
        assert span[b].sum() <= 5 * max(1, int(0.05 * n))
    # Everything else is untouched.
    assert ((out == 1) | zero).all()
    assert torch.equal(spec_augment(feats, lens, SpecAugmentConfig(0, 0, 0, 0.0)), feats)


def test_nemo_frame_count_leaves_the_last_centred_frame_out() -> None:
    """``count_last_frame=False`` (NeMo's count): ``L // hop`` valid frames, normalised over
    those only, and the frame past them is padding (zero)."""
    audio = torch.randn(1, 16_000 + 100)
    ours = LogMelFeatures(FeatureConfig(n_mels=32))
    nemo = LogMelFeatures(FeatureConfig(n_mels=32, count_last_frame=False))
    lens = torch.tensor([audio.shape[1]])
    mine, mine_lens = ours(audio, lens)
    theirs, their_lens = nemo(audio, lens)
    assert int(mine_lens) == 101 and int(their_lens) == 100
    assert torch.all(theirs[0, 100] == 0) and not torch.all(mine[0, 100] == 0)
    # Statistics over 100 frames instead of 101: every valid frame changes a little.
    assert not torch.allclose(mine[0, :100], theirs[0, :100])
    valid = theirs[0, :100]
    torch.testing.assert_close(valid.mean(0), torch.zeros(32), atol=1e-5, rtol=0)
