"""Pre-LN Transformer decoder with sinusoidal positions and an output head tied to embeddings.

Two entry points:

- `TransformerDecoder.forward` runs a whole right-padded token sequence (training, scoring).
- `TransformerDecoder.step` runs only new positions against a `DecoderCache`, the interface that
  `padless.infer` implements twice: an explicit preallocated key/value cache, and a NeMo-like
  reference that caches only hidden states and re-projects keys/values every step. The layer
  code is the same for both; only where keys and values come from differs.
"""

from __future__ import annotations

import math
from typing import Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn

from padless.model.config import DecoderConfig
from padless.model.layers import FeedForward, sinusoids


class MultiHeadAttention(nn.Module):
    """Multi-head attention split into projection and attention, so caches can hold K/V.

    Keys and values come from one fused ``d -> 2d`` projection (one matmul instead of two per
    step; the parameter count is that of separate K and V projections).
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.q_proj = nn.Linear(d_model, d_model)
        self.kv_proj = nn.Linear(d_model, 2 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = dropout

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        # (B, S, D) -> (B, H, S, D/H)
        return x.unflatten(-1, (self.n_heads, self.d_head)).transpose(1, 2)

    def project_q(self, x: torch.Tensor) -> torch.Tensor:
        return self._heads(self.q_proj(x))

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = self.kv_proj(x).chunk(2, dim=-1)  # (B, S, D) each
        return self._heads(k), self._heads(v)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        """``q (B*G, H, S, Dh)`` against ``k, v (B, H, L, Dh)`` -> ``(B*G, S, D)``.

        When the queries hold G rows per key/value row (beam search: G beams share one
        utterance's cross-attention keys), the G rows are folded into the query length, so the
        shared keys are neither copied nor re-read G times.
        """
        rows, steps = q.shape[0], q.shape[2]
        group = rows // k.shape[0]
        if group > 1:
            assert not is_causal, "grouped queries are only used for cross-attention"
            q = q.unflatten(0, (k.shape[0], group)).transpose(1, 2).flatten(2, 3)
        if q.device.type == "cpu" and not (self.training or is_causal) and q.shape[2] <= 8:
            out = _few_query_attention(q, k, v, mask)
        else:
            out = F.scaled_dot_product_attention(
                q,
                k,
                v,
                attn_mask=mask,
                dropout_p=self.dropout if self.training else 0.0,
                is_causal=is_causal,
            )  # (B, H, G*S, Dh)
        if group > 1:
            out = out.unflatten(2, (group, steps)).transpose(1, 2).flatten(0, 1)
        return self._merge(out)

    def attend_with_weights(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`attend` (one query row per key row, boolean ``mask``) that also returns the attention
        probabilities ``(B, H, S, L)``, before dropout. Explicit matmuls instead of the fused
        kernel: ``B*H*S*L`` more floats held for the backward pass, which the training losses
        that read the weights pay only while they are on."""
        probs = _attention_probs(q, k, mask)
        dropped = F.dropout(probs, self.dropout, self.training)
        return self._merge(torch.matmul(dropped, v)), probs

    def _merge(self, out: torch.Tensor) -> torch.Tensor:
        # (B, H, S, Dh) -> (B, S, D) -> output projection
        rows, heads, steps, d_head = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(rows, steps, heads * d_head))


def _few_query_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh) + mask) v as two batched matmuls, for a few queries per row.

    A decoding step has one query per row (a beam group: a few). There the CPU flash-attention
    kernel of `F.scaled_dot_product_attention` tiles for long query blocks it does not get and
    is ~20-30% slower than plain matmuls (measured on the tiny presets' shapes, 20-240 keys).
    """
    return torch.matmul(_attention_probs(q, k, mask), v)


def _attention_probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """softmax(q k^T / sqrt(Dh) + mask): ``(B, H, S, L)``. ``mask``: boolean (True = attend) or
    additive, broadcastable to ``(B, H, S, L)``."""
    scores = torch.matmul(q * q.shape[-1] ** -0.5, k.transpose(-1, -2))  # (B, H, S, L)
    if mask is not None:
        if mask.dtype == torch.bool:
            scores.masked_fill_(~mask, float("-inf"))
        else:
            scores += mask
    return scores.softmax(-1)


class DecoderCache(Protocol):
    """What `TransformerDecoder.step` needs from a decoding cache (see `padless.infer.cache`).

    ``length`` is the number of positions already decoded (a host int: no device sync).
    """

    length: int

    def positions(self, steps: int) -> torch.Tensor:
        """Position ids of the next ``steps`` tokens: ``(B, S)`` or ``(S,)``."""
        ...

    def self_attention_mask(self, steps: int) -> tuple[torch.Tensor | None, bool]:
        """(boolean mask ``(B, 1, S, length + S)`` or None, is_causal) for the new positions."""
        ...

    def self_kv(
        self,
        layer: int,
        attn: MultiHeadAttention,
        norm: nn.LayerNorm,
        x: torch.Tensor,
        h: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys/values ``(B, H, length + S, Dh)`` of all positions so far, including the new ones
        (``x``: the layer's input at the new positions, ``h = norm(x)``)."""
        ...

    def cross_kv(self, layer: int, attn: MultiHeadAttention) -> tuple[torch.Tensor, torch.Tensor]:
        """Cross-attention keys/values ``(B', H, T, Dh)`` over the encoder states."""
        ...

    @property
    def cross_mask(self) -> torch.Tensor | None:
        """``(B', 1, 1, T)`` attention mask over encoder frames (boolean, True = attend, or
        additive), or None when no frame is padding."""
        ...

    def advance(self, steps: int) -> None: ...


class DecoderLayer(nn.Module):
    """x + SelfAttn(LN(x)); x + CrossAttn(LN(x), memory); x + FFN(LN(x))."""

    def __init__(self, cfg: DecoderConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.norm_self = nn.LayerNorm(d)
        self.self_attn = MultiHeadAttention(d, cfg.n_heads, cfg.attn_dropout)
        self.norm_cross = nn.LayerNorm(d)
        self.cross_attn = MultiHeadAttention(d, cfg.n_heads, cfg.attn_dropout)
        self.norm_ff = nn.LayerNorm(d)
        self.ff = FeedForward(d, cfg.ff_dim, nn.ReLU(), cfg.dropout)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: torch.Tensor,
        need_weights: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """-> (output, cross-attention probabilities ``(B, H, U, T)`` if ``need_weights``).

        ``x (B, U, D)``, ``memory (B, T, D)``, ``memory_mask (B, 1, 1, T)`` bool."""
        h = self.norm_self(x)
        q = self.self_attn.project_q(h)
        k, v = self.self_attn.project_kv(h)
        x = x + self.dropout(self.self_attn.attend(q, k, v, is_causal=True))
        h = self.norm_cross(x)
        q = self.cross_attn.project_q(h)
        k, v = self.cross_attn.project_kv(memory)
        weights = None
        if need_weights:
            attended, weights = self.cross_attn.attend_with_weights(q, k, v, memory_mask)
        else:
            attended = self.cross_attn.attend(q, k, v, memory_mask)
        x = x + self.dropout(attended)
        return x + self.dropout(self.ff(self.norm_ff(x))), weights

    def step(
        self,
        x: torch.Tensor,
        cache: DecoderCache,
        index: int,
        self_mask: torch.Tensor | None,
        is_causal: bool,
    ) -> torch.Tensor:
        # x: (B, S, D) new positions only
        h = self.norm_self(x)
        q = self.self_attn.project_q(h)
        k, v = cache.self_kv(index, self.self_attn, self.norm_self, x, h)
        x = x + self.self_attn.attend(q, k, v, self_mask, is_causal)
        q = self.cross_attn.project_q(self.norm_cross(x))
        k, v = cache.cross_kv(index, self.cross_attn)
        x = x + self.cross_attn.attend(q, k, v, cache.cross_mask)
        return x + self.ff(self.norm_ff(x))


class TransformerDecoder(nn.Module):
    """Token embedding (x sqrt(d); see `DecoderConfig.embedding_scale`) + sinusoids -> LayerNorm
    -> N pre-LN layers -> LayerNorm -> logits through the transposed embedding matrix plus a
    bias."""

    def __init__(self, cfg: DecoderConfig, vocab_size: int) -> None:
        super().__init__()
        self.config = cfg
        self.embedding = nn.Embedding(vocab_size, cfg.d_model)
        self.embedding_norm = nn.LayerNorm(cfg.d_model)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model)
        self.output_bias = nn.Parameter(torch.empty(vocab_size))

    def reset_parameters(self) -> None:
        # std d^-1/2: embeddings enter at unit scale (x sqrt(d)) and the tied head starts with
        # unit-variance logits.
        nn.init.normal_(self.embedding.weight, std=self.config.d_model**-0.5)
        nn.init.zeros_(self.output_bias)

    def embed(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        d = self.config.d_model
        if self.config.embedding_scale == "tokens":
            x = self.embedding(tokens) * math.sqrt(d)  # (B, S, D)
            x = x + sinusoids(positions, d, x.dtype)
        else:  # NeMo's order: unscaled tokens, sinusoids divided by sqrt(d)
            x = self.embedding(tokens)
            x = x + sinusoids(positions, d, torch.float32).div(math.sqrt(d)).to(x.dtype)
        return self.dropout(self.embedding_norm(x))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.final_norm(x), self.embedding.weight, self.output_bias)

    def forward(
        self, tokens: torch.Tensor, memory: torch.Tensor, memory_valid: torch.Tensor
    ) -> torch.Tensor:
        """``tokens (B, U)``, ``memory (B, T, D)``, ``memory_valid (B, T)`` -> ``(B, U, V)``."""
        return self.forward_with_attention(tokens, memory, memory_valid, weights_of=0)[0]

    def forward_with_attention(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        memory_valid: torch.Tensor,
        weights_of: int,
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """`forward`, plus the cross-attention probabilities ``(B, H, U, T)`` of the first
        ``weights_of`` layers (what the guided-attention loss reads)."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embed(tokens, positions)
        mask = memory_valid[:, None, None, :]
        weights: list[torch.Tensor] = []
        for index, layer in enumerate(self.layers):
            x, probs = layer(x, memory, mask, need_weights=index < weights_of)
            if probs is not None:
                weights.append(probs)
        return self.logits(x), weights

    def step(self, tokens: torch.Tensor, cache: DecoderCache) -> torch.Tensor:
        """Run the next ``tokens (B, S)`` through the decoder -> logits ``(B, S, V)``."""
        steps = tokens.shape[1]
        x = self.embed(tokens, cache.positions(steps))
        self_mask, is_causal = cache.self_attention_mask(steps)
        for index, layer in enumerate(self.layers):
            x = cast(DecoderLayer, layer).step(x, cache, index, self_mask, is_causal)
        cache.advance(steps)
        return self.logits(x)
