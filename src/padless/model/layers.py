"""Small building blocks shared by the encoder and the decoder."""

from __future__ import annotations

import math

import torch
from torch import nn


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True on valid positions."""
    positions = torch.arange(max_len, device=lengths.device)
    return positions[None, :] < lengths[:, None]


def sinusoids(positions: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal encodings of (possibly negative) positions: ``(...,)`` -> ``(..., dim)``.

    Computed on the fly rather than read from a fixed table: a few elementwise ops, no maximum
    length, and nothing data-dependent to initialise (the model builds on the meta device).
    Channels 0::2 hold sines and 1::2 cosines of ``pos / 10000 ** (2i / dim)``.
    """
    inv_freq = torch.exp(
        torch.arange(0, dim, 2, device=positions.device, dtype=torch.float32)
        * (-math.log(10_000.0) / dim)
    )  # (dim/2,)
    angles = positions.to(torch.float32)[..., None] * inv_freq  # (..., dim/2)
    return torch.stack((angles.sin(), angles.cos()), dim=-1).flatten(-2).to(dtype)


class FeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> activation -> dropout -> Linear."""

    def __init__(self, d_model: int, ff_dim: int, activation: nn.Module, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_model, ff_dim)
        self.activation = activation
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ff_dim, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))
