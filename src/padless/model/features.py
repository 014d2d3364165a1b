"""Log-mel features and SpecAugment, in PyTorch (no torchaudio, no librosa).

The front end follows NeMo's ``AudioToMelSpectrogramPreprocessor`` as configured for Canary:
dither -> pre-emphasis -> centred STFT (Hann window, constant padding) -> power -> Slaney mel
filterbank -> log -> per-utterance, per-mel-bin normalisation over valid frames.

Padding invariance: samples past each utterance's length are zeroed after pre-emphasis, the STFT
pads with zeros (not reflection), and statistics use valid frames only, so an utterance's
features do not change when it is batched with longer ones.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from padless.model.config import FeatureConfig, SpecAugmentConfig
from padless.model.layers import lengths_to_mask


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> torch.Tensor:
    """Slaney-scale, area-normalised triangular filters: ``(n_mels, n_fft // 2 + 1)`` float32.

    Matches ``librosa.filters.mel(sr, n_fft, n_mels)`` defaults (fmin 0, fmax sr/2).
    """

    # Slaney mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    f_sp, min_log_hz, min_log_mel = 200.0 / 3, 1000.0, 15.0
    logstep = math.log(6.4) / 27.0

    def hz_to_mel(hz: float) -> float:
        if hz < min_log_hz:
            return hz / f_sp
        return min_log_mel + math.log(hz / min_log_hz) / logstep

    def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
        return torch.where(
            mel >= min_log_mel,
            min_log_hz * torch.exp(logstep * (mel - min_log_mel)),
            mel * f_sp,
        )

    # Pure tensor ops from Python scalars: no `.item()`, so this also runs under fake tensors.
    f64 = torch.float64
    fft_freqs = torch.linspace(0, sample_rate / 2, n_fft // 2 + 1, dtype=f64)
    mel_edges = torch.linspace(0.0, hz_to_mel(sample_rate / 2), n_mels + 2, dtype=f64)
    hz_edges = mel_to_hz(mel_edges)  # (n_mels + 2,)
    widths = hz_edges[1:] - hz_edges[:-1]  # (n_mels + 1,)
    ramps = hz_edges[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_freq)
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)
    weights *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]  # Slaney area normalisation
    return weights.to(torch.float32)


class LogMelFeatures(nn.Module):
    """``audio (B, T) float, audio_lens (B,)`` -> ``features (B, F, n_mels) float32, lens (B,)``.

    Always computes in float32 (the STFT has no bfloat16 kernel and the log is sensitive);
    callers cast the result to the encoder's dtype.
    """

    window: torch.Tensor
    filterbank: torch.Tensor

    def __init__(self, config: FeatureConfig) -> None:
        super().__init__()
        self.config = config
        # Non-persistent: derived from the config, so checkpoints do not carry them and a model
        # built on the meta device recomputes them in `reset_buffers` after `to_empty`.
        self.register_buffer("window", torch.empty(config.win_length), persistent=False)
        self.register_buffer(
            "filterbank", torch.empty(config.n_mels, config.n_fft // 2 + 1), persistent=False
        )
        self.reset_buffers()

    def reset_buffers(self) -> None:
        if self.window.is_meta:
            return
        cfg = self.config
        with torch.no_grad():
            self.window.copy_(torch.hann_window(cfg.win_length, periodic=False))
            self.filterbank.copy_(mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels))

    def num_frames(self, audio_lens: torch.Tensor) -> torch.Tensor:
        """Valid frames of a centred STFT over ``audio_lens`` samples (see
        `FeatureConfig.count_last_frame`)."""
        frames = torch.div(audio_lens, self.config.hop_length, rounding_mode="floor")
        return frames + 1 if self.config.count_last_frame else frames

    def forward(
        self, audio: torch.Tensor, audio_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.config
        x = audio.to(torch.float32)  # (B, T)
        valid = lengths_to_mask(audio_lens, x.shape[1])  # (B, T)
        if self.training and cfg.dither > 0:
            x = x + cfg.dither * torch.randn_like(x)
        if cfg.preemphasis:
            x = torch.cat((x[:, :1], x[:, 1:] - cfg.preemphasis * x[:, :-1]), dim=1)
        x = x.masked_fill(~valid, 0.0)
        spec = torch.stft(
            x,
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=self.window.float(),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )  # (B, n_fft/2+1, F)
        # |X|^2 as re^2 + im^2 (a reduction over the trailing (re, im) axis is ~7x slower).
        power = torch.addcmul(spec.real.square(), spec.imag, spec.imag)  # (B, n_freq, F)
        mel = torch.matmul(self.filterbank.float(), power)  # (B, n_mels, F)
        logmel = torch.log(mel + cfg.log_zero_guard)

        frame_lens = self.num_frames(audio_lens)
        frame_valid = lengths_to_mask(frame_lens, logmel.shape[-1])[:, None, :]  # (B, 1, F)
        count = frame_lens.to(torch.float32)[:, None, None]  # (B, 1, 1)
        mean = logmel.masked_fill(~frame_valid, 0.0).sum(-1, keepdim=True) / count
        centred = (logmel - mean).masked_fill(~frame_valid, 0.0)
        var = centred.square().sum(-1, keepdim=True) / (count - 1).clamp(min=1.0)
        feats = centred / (var.sqrt() + 1e-5)  # padded frames stay exactly 0
        return feats.transpose(1, 2), frame_lens  # (B, F, n_mels)


def spec_augment(
    feats: torch.Tensor, lens: torch.Tensor, config: SpecAugmentConfig
) -> torch.Tensor:
    """Zero random frequency bands and time spans of ``feats (B, F, M)``, vectorised.

    Mask widths and starts are drawn on the features' device with no host sync; time-mask
    widths scale with each utterance's own length and stay inside its valid frames.
    """
    batch, frames, mels = feats.shape
    device = feats.device

    def uniform(count: int) -> torch.Tensor:
        # float32 whatever the default dtype: bfloat16 cannot count frames past 256 exactly.
        return torch.rand(batch, count, device=device, dtype=torch.float32)

    masked = torch.zeros(batch, frames, mels, dtype=torch.bool, device=device)
    if config.freq_masks > 0:
        width = (uniform(config.freq_masks) * (config.freq_width + 1)).floor()
        start = (uniform(config.freq_masks) * (mels - width + 1)).floor()
        bins = torch.arange(mels, device=device)  # (M,)
        band = (bins >= start[..., None]) & (bins < (start + width)[..., None])  # (B, n, M)
        masked |= band.any(1)[:, None, :]
    if config.time_masks > 0:
        lens_f = lens.to(torch.float32)[:, None]  # (B, 1)
        max_width = (lens_f * config.time_width).floor().clamp(min=1.0)
        width = (uniform(config.time_masks) * (max_width + 1)).floor()
        room = (lens_f - width + 1).clamp(min=1.0)
        start = (uniform(config.time_masks) * room).floor()
        steps = torch.arange(frames, device=device)  # (F,)
        span = (steps >= start[..., None]) & (steps < (start + width)[..., None])  # (B, n, F)
        masked |= span.any(1)[:, :, None]
    return feats.masked_fill(masked, 0.0)
