"""FastConformer encoder: relative positions, masked batch norm, padding invariance."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from padless.model import PRESETS, AEDModel
from padless.model.encoder import MaskedBatchNorm1d, rel_shift


def test_rel_shift_selects_relative_position_i_minus_j() -> None:
    frames = 7
    scores = torch.randn(2, 3, frames, 2 * frames - 1)
    out = rel_shift(scores)
    for i in range(frames):
        for j in range(frames):
            # index m holds relative position T-1-m; we want i - j.
            torch.testing.assert_close(out[..., i, j], scores[..., i, frames - 1 - i + j])


def test_masked_batch_norm_uses_valid_frames_only() -> None:
    norm = MaskedBatchNorm1d(4, momentum=1.0)  # momentum 1: running stats = this batch's
    x = torch.randn(3, 4, 10)
    lens = torch.tensor([10, 6, 2])
    valid = torch.arange(10)[None] < lens[:, None]
    x_garbage = x.masked_fill(~valid[:, None], 1e3)
    out = norm(x_garbage, valid)
    reference = torch.nn.BatchNorm1d(4, momentum=1.0)
    flat = torch.cat([x[b, :, :n] for b, n in enumerate(lens.tolist())], dim=1)  # (C, N)
    expected = reference(flat[None])[0]
    got = torch.cat([out[b, :, :n] for b, n in enumerate(lens.tolist())], dim=1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(norm.running_mean, reference.running_mean)
    torch.testing.assert_close(norm.running_var, reference.running_var)


def _eval_model_with_nontrivial_batch_norm() -> AEDModel:
    cfg = dataclasses.replace(PRESETS["tiny-canary-1b"], vocab_size=64)
    model = AEDModel(cfg).eval()
    for module in model.modules():
        if isinstance(module, MaskedBatchNorm1d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("length", [1_000, 16_000 + 37, 16_000 * 2 + 1_279])
def test_encoder_output_does_not_depend_on_batch_padding(length: int) -> None:
    model = _eval_model_with_nontrivial_batch_norm()
    short = torch.randn(length) * 0.1
    longer = 16_000 * 4
    with torch.no_grad():
        solo, solo_lens = model.encode(short[None], torch.tensor([length]))
        batch = torch.randn(3, longer) * 0.1
        batch[1, :length] = short
        states, lens = model.encode(batch, torch.tensor([longer, length, longer - 5]))
    assert lens[1] == solo_lens[0] == solo.shape[1]
    assert states.shape[1] > solo.shape[1]
    torch.testing.assert_close(states[1, : lens[1]], solo[0], atol=1e-4, rtol=1e-4)


def test_encoder_lengths_follow_the_x8_subsampling() -> None:
    model = _eval_model_with_nontrivial_batch_norm()
    samples = torch.tensor([16_000, 8_000, 1_600])
    with torch.no_grad():
        states, lens = model.encode(torch.randn(3, 16_000), samples)
    frames = samples // 160 + 1
    expected = frames
    for _ in range(3):
        expected = (expected - 1) // 2 + 1
    assert lens.tolist() == expected.tolist()
    assert states.shape == (3, int(expected.max()), 176)
