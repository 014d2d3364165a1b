"""Decoding options: one frozen dataclass, shared by every strategy and cache."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Strategy = Literal["greedy", "beam"]
CacheMode = Literal["kv", "recompute"]


@dataclass(frozen=True)
class DecodingOptions:
    """How `padless.infer.decode_batch` turns encoder states into tokens."""

    #: ``greedy`` (argmax per step) or ``beam`` (``beam_size`` hypotheses per utterance).
    strategy: Strategy = "greedy"
    beam_size: int = 4
    #: GNMT length penalty exponent: beam scores are ``logp / ((5 + len) / 6) ** alpha``.
    #: 0 ranks by total log-probability (favours short outputs); ~1 by per-token average.
    length_penalty: float = 0.0
    #: ``kv``: preallocated self-attention K/V written in place, cross-attention K/V computed once
    #: per utterance. ``recompute``: NeMo's scheme (cache per-layer hidden states, re-project
    #: self-attention K/V over the whole history and cross-attention K/V over every encoder frame
    #: at every step); same tokens, kept as the reference the paper's RTFx was measured with.
    cache: CacheMode = "kv"
    #: Per-utterance output limit (tokens after the prompt, EOS included): at most
    #: ``ceil(max_tokens_per_frame * encoder_frames)`` and never more than ``max_new_tokens``.
    #: Encoder frames are 80 ms, so 2.0 allows 25 tokens/s.
    max_tokens_per_frame: float = 2.0
    max_new_tokens: int = 512
    #: Greedy only: when at least this fraction of the rows still in the batch have finished,
    #: drop them from the batch (a copy of the caches' live rows), so finished utterances stop
    #: costing compute. None never compacts. See docs/model.md for measurements.
    compact_threshold: float | None = 0.5

    def __post_init__(self) -> None:
        if self.strategy not in ("greedy", "beam"):
            raise ValueError(f"strategy must be 'greedy' or 'beam', got {self.strategy!r}")
        if self.cache not in ("kv", "recompute"):
            raise ValueError(f"cache must be 'kv' or 'recompute', got {self.cache!r}")
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.max_new_tokens < 1 or self.max_tokens_per_frame <= 0:
            raise ValueError("max_new_tokens and max_tokens_per_frame must be positive")
        if self.compact_threshold is not None and not 0 < self.compact_threshold <= 1:
            raise ValueError(f"compact_threshold must be in (0, 1], got {self.compact_threshold}")
