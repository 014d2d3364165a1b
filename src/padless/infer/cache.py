"""Decoder caches: where the decoder's attention keys and values come from at each step.

Both classes implement `padless.model.decoder.DecoderCache`; the decoder layer code is shared.

`KVCache` (fast): self-attention keys/values live in one preallocated buffer per cache,
``(layers, rows, heads, max_len, d_head)``, and each step writes its new position in place (no
``torch.cat``, no reallocation). Cross-attention keys/values are projected from the encoder
states once per utterance. A step costs O(layers x (d^2 + t d + T d)) per row.

`RecomputeCache` (reference): what NeMo's AED decoder does. It keeps only each layer's input
hidden states and, at every step, re-normalises and re-projects the whole history into
self-attention keys/values and re-projects every encoder frame into cross-attention keys/values:
O(layers x (t + T) d^2) per row and step. It exists so the paper's RTFx ratios can be reproduced
and as an independent check of `KVCache` (both must give the same tokens). Its hidden-state
buffer is preallocated too, so if anything it is a little faster than NeMo's concatenation.

Prompts of different lengths in one batch are left-padded: ``offsets[r]`` pad positions precede
row r's prompt, are masked out as attention keys, and positions are shifted so every row's first
prompt token is position 0. When all prompts have the same length (the Canary format always gives
5 tokens) ``offsets`` is None and no self-attention mask is built at all.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

from padless.model.decoder import DecoderLayer, MultiHeadAttention, TransformerDecoder
from padless.model.layers import lengths_to_mask


class _CacheBase:
    """Step counter, positions, self-attention masks for left-padded prompts, and the
    cross-attention mask over the encoder frames."""

    def __init__(
        self,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        max_len: int,
        offsets: torch.Tensor | None,
    ) -> None:
        device = memory.device
        self.length = 0  # positions written so far (host int: no device sync to read it)
        self.max_len = max_len
        self.device = device
        self.offsets = offsets  # (R,) left padding per row, or None
        self.key_valid = (
            None
            if offsets is None
            else torch.arange(max_len, device=device)[None, :] >= offsets[:, None]
        )  # (R, max_len)
        self.rows = memory.shape[0]
        self._cross_mask = _cross_mask(memory, memory_lens)  # (R, 1, 1, T) or None

    def positions(self, steps: int) -> torch.Tensor:
        # Called first in every decoder step, so an overflow is caught before any write.
        if self.length + steps > self.max_len:
            raise RuntimeError(
                f"decoder cache overflow: {self.length} + {steps} positions > {self.max_len}"
            )
        pos = torch.arange(self.length, self.length + steps, device=self.device)  # (S,)
        if self.offsets is None:
            return pos
        return (pos[None, :] - self.offsets[:, None]).clamp(min=0)  # (R, S)

    def self_attention_mask(self, steps: int) -> tuple[torch.Tensor | None, bool]:
        end = self.length + steps
        if self.key_valid is None:
            if steps == 1:
                return None, False  # one new query sees every cached key
            if self.length == 0:
                return None, True  # prefill: plain causal
            keys = torch.arange(end, device=self.device)
            queries = torch.arange(self.length, end, device=self.device)
            return keys[None, :] <= queries[:, None], False  # (S, end)
        keys = torch.arange(end, device=self.device)[None, None, :]  # (1, 1, end)
        queries = torch.arange(self.length, end, device=self.device)[None, :, None]  # (1, S, 1)
        allowed = self.key_valid[:, None, :end] & (keys <= queries)  # (R, S, end)
        allowed |= keys == queries  # a padding query sees itself: no all-masked (NaN) rows
        return allowed[:, None], False  # (R, 1, S, end)

    def advance(self, steps: int) -> None:
        self.length += steps

    def _select_layout(self, rows: torch.Tensor) -> None:
        self.rows = int(rows.numel())
        if self.offsets is not None and self.key_valid is not None:
            self.offsets = self.offsets[rows]
            self.key_valid = self.key_valid[rows]

    def _repeat_layout(self, group: int) -> None:
        self.rows *= group
        if self.offsets is not None and self.key_valid is not None:
            self.offsets = self.offsets.repeat_interleave(group, dim=0)
            self.key_valid = self.key_valid.repeat_interleave(group, dim=0)

    @property
    def cross_mask(self) -> torch.Tensor | None:
        return self._cross_mask


def _cross_mask(memory: torch.Tensor, memory_lens: torch.Tensor) -> torch.Tensor | None:
    """Additive ``(B, 1, 1, T)`` mask (0 or -inf) in the memory's dtype, or None if unpadded.

    Additive rather than boolean: attention would otherwise convert it at every step. One host
    sync per batch to skip it when nothing is padded.
    """
    frames = memory.shape[1]
    if bool((memory_lens == frames).all()):
        return None
    valid = lengths_to_mask(memory_lens, frames)[:, None, None, :]
    return torch.zeros(valid.shape, dtype=memory.dtype, device=memory.device).masked_fill(
        ~valid, float("-inf")
    )


def _layers(decoder: TransformerDecoder) -> list[DecoderLayer]:
    return [cast(DecoderLayer, layer) for layer in decoder.layers]


class KVCache(_CacheBase):
    """Preallocated self-attention K/V, written in place; cross-attention K/V computed once."""

    def __init__(
        self,
        decoder: TransformerDecoder,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        max_len: int,
        offsets: torch.Tensor | None = None,
    ) -> None:
        super().__init__(memory, memory_lens, max_len, offsets)
        layers = _layers(decoder)
        attn = layers[0].self_attn
        shape = (len(layers), self.rows, attn.n_heads, max_len, attn.d_head)
        self.keys = memory.new_empty(shape)  # (L, R, H, max_len, Dh)
        self.values = memory.new_empty(shape)
        # (B, H, T, Dh) per layer; B = utterances (beam rows share them, see `expand`). Stored
        # contiguous: the projection's head-split view strides 2D floats between frames, which
        # every step would read again (cache misses on a CPU).
        self.cross = [
            (k.contiguous(), v.contiguous())
            for k, v in (layer.cross_attn.project_kv(memory) for layer in layers)
        ]

    def self_kv(
        self,
        layer: int,
        attn: MultiHeadAttention,
        norm: nn.LayerNorm,
        x: torch.Tensor,
        h: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k, v = attn.project_kv(h)  # (R, H, S, Dh): the new positions only
        start, end = self.length, self.length + k.shape[2]
        self.keys[layer, :, :, start:end] = k
        self.values[layer, :, :, start:end] = v
        return self.keys[layer, :, :, :end], self.values[layer, :, :, :end]  # views

    def cross_kv(self, layer: int, attn: MultiHeadAttention) -> tuple[torch.Tensor, torch.Tensor]:
        return self.cross[layer]

    def expand(self, group: int) -> None:
        """Repeat every row ``group`` times (beam search after the prompt). Cross-attention
        K/V are not copied: `MultiHeadAttention.attend` folds the beams into the query axis."""
        t = self.length
        self.keys = _repeat_rows(self.keys, group, t, dim=1, time_dim=3)
        self.values = _repeat_rows(self.values, group, t, dim=1, time_dim=3)
        self._repeat_layout(group)

    def reorder(self, rows: torch.Tensor) -> None:
        """Row r takes the history of row ``rows[r]`` (beam search: surviving hypotheses)."""
        t = self.length
        self.keys[:, :, :, :t] = self.keys[:, rows, :, :t]
        self.values[:, :, :, :t] = self.values[:, rows, :, :t]

    def select(self, rows: torch.Tensor) -> None:
        """Keep only ``rows`` (greedy: drop finished utterances); copies live positions only."""
        if self.rows != self.cross[0][0].shape[0]:
            raise RuntimeError("select() drops utterances; it cannot follow expand() (beams)")
        t = self.length
        self.keys = _take_rows(self.keys, rows, t, time_dim=3)
        self.values = _take_rows(self.values, rows, t, time_dim=3)
        self.cross = [(k[rows], v[rows]) for k, v in self.cross]
        if self._cross_mask is not None:
            self._cross_mask = self._cross_mask[rows]
        self._select_layout(rows)


class RecomputeCache(_CacheBase):
    """NeMo-style reference: per-layer hidden states only; K/V re-projected at every step."""

    def __init__(
        self,
        decoder: TransformerDecoder,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        max_len: int,
        offsets: torch.Tensor | None = None,
    ) -> None:
        super().__init__(memory, memory_lens, max_len, offsets)
        n_layers = len(decoder.layers)
        # (L, R, S, D): each layer's input at every position so far
        self.hidden = memory.new_empty(n_layers, self.rows, max_len, memory.shape[2])
        self.memory = memory  # (R, T, D)

    def self_kv(
        self,
        layer: int,
        attn: MultiHeadAttention,
        norm: nn.LayerNorm,
        x: torch.Tensor,
        h: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.length, self.length + x.shape[1]
        self.hidden[layer, :, start:end] = x
        return attn.project_kv(norm(self.hidden[layer, :, :end]))  # whole history, every step

    def cross_kv(self, layer: int, attn: MultiHeadAttention) -> tuple[torch.Tensor, torch.Tensor]:
        return attn.project_kv(self.memory)  # every encoder frame, every step

    def expand(self, group: int) -> None:
        # NeMo's beam search tiles the encoder states per hypothesis; so does the reference.
        self.hidden = _repeat_rows(self.hidden, group, self.length, dim=1, time_dim=2)
        self.memory = self.memory.repeat_interleave(group, dim=0)
        if self._cross_mask is not None:
            self._cross_mask = self._cross_mask.repeat_interleave(group, dim=0)
        self._repeat_layout(group)

    def reorder(self, rows: torch.Tensor) -> None:
        t = self.length
        self.hidden[:, :, :t] = self.hidden[:, rows, :t]

    def select(self, rows: torch.Tensor) -> None:
        self.hidden = _take_rows(self.hidden, rows, self.length, time_dim=2)
        self.memory = self.memory[rows]
        if self._cross_mask is not None:
            self._cross_mask = self._cross_mask[rows]
        self._select_layout(rows)


DecodingCache = KVCache | RecomputeCache
CACHES: dict[str, type[KVCache] | type[RecomputeCache]] = {
    "kv": KVCache,
    "recompute": RecomputeCache,
}


def _take_rows(buf: torch.Tensor, rows: torch.Tensor, live: int, time_dim: int) -> torch.Tensor:
    """A new buffer shaped like ``buf`` with only ``rows`` (dim 1), copying positions < live."""
    shape = list(buf.shape)
    shape[1] = int(rows.numel())
    out = buf.new_empty(shape)
    out.narrow(time_dim, 0, live).copy_(buf.narrow(time_dim, 0, live).index_select(1, rows))
    return out


def _repeat_rows(buf: torch.Tensor, group: int, live: int, dim: int, time_dim: int) -> torch.Tensor:
    shape = list(buf.shape)
    shape[dim] *= group
    out = buf.new_empty(shape)
    out.narrow(time_dim, 0, live).copy_(
        buf.narrow(time_dim, 0, live).repeat_interleave(group, dim=dim)
    )
    return out
