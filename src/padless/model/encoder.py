"""FastConformer encoder: x8 depthwise-striding subsampling + macaron Conformer blocks.

Shapes: features ``(B, F, n_mels)`` at 10 ms -> encoder states ``(B, T, d_model)`` at 80 ms.

Padding masks are applied everywhere an utterance could see its batch neighbours' padding:
subsampling stages zero padded frames before the next convolution (otherwise ``relu(bias)`` in
padded frames leaks into the last valid frame), attention masks padded keys, the convolution
module zeroes padded frames before its depthwise convolution, and batch norm takes statistics
over valid frames only. In eval mode an utterance's encoder output therefore does not depend on
what it is batched with. Padded output frames hold unspecified values; use the returned lengths.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from padless.model.config import EncoderConfig
from padless.model.layers import FeedForward, lengths_to_mask, sinusoids


def _stride2_len(lens: torch.Tensor) -> torch.Tensor:
    # Output length of a kernel-3, stride-2, padding-1 convolution.
    return torch.div(lens - 1, 2, rounding_mode="floor") + 1


class DepthwiseStridingSubsampling(nn.Module):
    """NeMo's ``dw_striding``: Conv2d(1->C, 3, s2), then (depthwise 3x3 s2 + pointwise 1x1) x
    (log2(factor) - 1), ReLU after each stage, then Linear(C * n_mels / factor -> d_model)."""

    def __init__(self, n_mels: int, channels: int, factor: int, d_model: int) -> None:
        super().__init__()
        stages = int(math.log2(factor))
        self.first = nn.Conv2d(1, channels, kernel_size=3, stride=2, padding=1)
        self.depthwise = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1, groups=channels)
            for _ in range(stages - 1)
        )
        self.pointwise = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(stages - 1))
        self.out = nn.Linear(channels * (n_mels // factor), d_model)

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # The feature maps here are the largest tensors of the model (C channels at 20 ms), so
        # ReLU always runs in place (safe: convolution backward does not need its output) and
        # so does the padding mask when no gradient is recorded.
        x = x[:, None]  # (B, 1, F, M)
        x = F.relu(self.first(x), inplace=True)  # (B, C, F/2, M/2)
        lens = _stride2_len(lens)
        for depthwise, pointwise in zip(self.depthwise, self.pointwise, strict=True):
            keep = lengths_to_mask(lens, x.shape[2])[:, None, :, None].to(x.dtype)  # (B,1,F',1)
            x = x * keep if x.requires_grad else x.mul_(keep)
            x = F.relu(pointwise(depthwise(x)), inplace=True)
            lens = _stride2_len(lens)
        batch, channels, frames, mels = x.shape
        x = x.transpose(1, 2).reshape(batch, frames, channels * mels)  # (B, T, C * M/8)
        return self.out(x), lens


def rel_shift(scores: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, 2T-1)`` scores against positions T-1..-(T-1) -> ``(B, H, T, T)`` where
    ``out[..., i, j] = scores[..., i, T-1-i+j]`` (the score for relative position ``i - j``).

    The Transformer-XL pad-and-reshape trick: one copy, no index tensor.
    """
    batch, heads, q_len, pos_len = scores.shape
    padded = F.pad(scores, (1, 0))  # (B, H, T, 2T)
    shifted = padded.view(batch, heads, pos_len + 1, q_len)[:, :, 1:]
    return shifted.reshape(batch, heads, q_len, pos_len)[..., :q_len]


class RelPositionMultiHeadAttention(nn.Module):
    """Self-attention with Transformer-XL relative positions and untied biases u, v.

    ``score(i, j) = (q_i + u) k_j + (q_i + v) W_pos p_{i-j}``. The content term goes through
    ``scaled_dot_product_attention`` with ``q + u``; the position term is computed as a matrix
    and passed in as the additive mask, together with the key padding mask.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.linear_q = nn.Linear(d_model, d_model)
        self.linear_k = nn.Linear(d_model, d_model)
        self.linear_v = nn.Linear(d_model, d_model)
        self.linear_out = nn.Linear(d_model, d_model)
        self.linear_pos = nn.Linear(d_model, d_model, bias=False)
        self.pos_bias_u = nn.Parameter(torch.empty(n_heads, self.d_head))
        self.pos_bias_v = nn.Parameter(torch.empty(n_heads, self.d_head))
        self.dropout = dropout

    def reset_parameters(self) -> None:
        nn.init.zeros_(self.pos_bias_u)
        nn.init.zeros_(self.pos_bias_v)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, T, D) -> (B, H, T, D/H)
        return x.unflatten(-1, (self.n_heads, self.d_head)).transpose(-3, -2)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
        # x: (B, T, D); pos: (2T-1, D) encodings of positions T-1..-(T-1); key_valid: (B, T)
        q = self._heads(self.linear_q(x))  # (B, H, T, Dh)
        k = self._heads(self.linear_k(x))
        v = self._heads(self.linear_v(x))
        p = self._heads(self.linear_pos(pos))  # (H, 2T-1, Dh)
        scale = 1.0 / math.sqrt(self.d_head)
        # Scale the (B, H, T, Dh) query rather than the (B, H, T, T) scores; rel_shift returns
        # a fresh tensor, so the key mask is written into it in place.
        q_v = (q + self.pos_bias_v[:, None]) * scale
        bias = rel_shift(torch.matmul(q_v, p.transpose(-1, -2)))  # (B, H, T, T)
        bias.masked_fill_(~key_valid[:, None, None, :], float("-inf"))
        out = F.scaled_dot_product_attention(
            q + self.pos_bias_u[:, None],
            k,
            v,
            attn_mask=bias,  # (B, H, T, T)
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, H, T, Dh)
        return self.linear_out(out.transpose(1, 2).flatten(-2))


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """Batch norm over ``(B, C, T)`` whose training statistics use valid frames only.

    Plain batch norm would average padding into the statistics (so batch composition would
    change the normalisation). Costs a few extra elementwise passes in training; eval mode is
    the usual fused kernel with running statistics.
    """

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training or valid is None:
            return super().forward(x)
        weight = valid[:, None, :].to(x.dtype)  # (B, 1, T)
        count = weight.sum().clamp(min=2.0)
        mean = (x * weight).sum((0, 2)) / count  # (C,)
        centred = (x - mean[None, :, None]) * weight
        var = centred.square().sum((0, 2)) / count  # biased, used to normalise
        if self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                momentum = self.momentum if self.momentum is not None else 0.1
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                unbiased = var.detach() * count / (count - 1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight
        out = (x - mean[None, :, None]) * scale[None, :, None]
        if self.bias is not None:
            out = out + self.bias[None, :, None]
        return out


class ConvolutionModule(nn.Module):
    """Pointwise (D -> 2D) + GLU -> depthwise conv (kernel k) -> batch norm -> SiLU -> pointwise."""

    def __init__(self, d_model: int, kernel: int) -> None:
        super().__init__()
        self.pointwise_in = nn.Linear(d_model, 2 * d_model)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, padding=kernel // 2, groups=d_model)
        self.norm = MaskedBatchNorm1d(d_model)
        self.pointwise_out = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = F.glu(self.pointwise_in(x), dim=-1)  # (B, T, D)
        x = x.masked_fill(~valid[..., None], 0.0)  # padding must not reach valid frames
        x = self.depthwise(x.transpose(1, 2))  # (B, D, T)
        x = F.silu(self.norm(x, valid))
        return self.pointwise_out(x.transpose(1, 2))


class ConformerLayer(nn.Module):
    """Macaron block: x + FFN/2, + MHSA, + Conv, + FFN/2, then LayerNorm (all pre-norm)."""

    def __init__(self, cfg: EncoderConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_ff1 = nn.LayerNorm(d)
        self.ff1 = FeedForward(d, cfg.ff_dim, nn.SiLU(), cfg.dropout)
        self.norm_attn = nn.LayerNorm(d)
        self.attn = RelPositionMultiHeadAttention(d, cfg.n_heads, cfg.attn_dropout)
        self.norm_conv = nn.LayerNorm(d)
        self.conv = ConvolutionModule(d, cfg.conv_kernel)
        self.norm_ff2 = nn.LayerNorm(d)
        self.ff2 = FeedForward(d, cfg.ff_dim, nn.SiLU(), cfg.dropout)
        self.norm_out = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = x + 0.5 * self.dropout(self.ff1(self.norm_ff1(x)))
        x = x + self.dropout(self.attn(self.norm_attn(x), pos, valid))
        x = x + self.dropout(self.conv(self.norm_conv(x), valid))
        x = x + 0.5 * self.dropout(self.ff2(self.norm_ff2(x)))
        return self.norm_out(x)


class FastConformerEncoder(nn.Module):
    """``features (B, F, n_mels), lens (B,)`` -> ``states (B, T, d_model), lens (B,)``."""

    def __init__(self, cfg: EncoderConfig, n_mels: int) -> None:
        super().__init__()
        self.config = cfg
        self.subsampling = DepthwiseStridingSubsampling(
            n_mels, cfg.subsampling_channels, cfg.subsampling_factor, cfg.d_model
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(ConformerLayer(cfg) for _ in range(cfg.n_layers))

    def output_lengths(self, feature_lens: torch.Tensor) -> torch.Tensor:
        """Encoder frames of ``feature_lens`` feature frames (the subsampling's arithmetic)."""
        lens = feature_lens
        for _ in range(int(math.log2(self.config.subsampling_factor))):
            lens = _stride2_len(lens)
        return lens

    def forward(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lens = self.subsampling(feats, lens)  # (B, T, D)
        if self.config.xscaling:
            x = x * math.sqrt(self.config.d_model)
        frames = x.shape[1]
        # Relative positions T-1 .. -(T-1): (2T-1, D), shared by all layers.
        positions = torch.arange(frames - 1, -frames, -1, device=x.device)
        pos = sinusoids(positions, self.config.d_model, x.dtype)
        x = self.dropout(x)
        valid = lengths_to_mask(lens, frames)  # (B, T)
        for layer in self.layers:
            x = layer(x, pos, valid)
        return x, lens
