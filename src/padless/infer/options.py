"""Decoding options (one frozen dataclass, shared by every strategy and cache) and the settings
of an RTFx measurement. Free of torch, so the command line reads its defaults from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

Strategy = Literal["greedy", "beam"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
CacheMode = Literal["kv", "recompute"]
CACHE_MODES: tuple[CacheMode, ...] = get_args(CacheMode)
#: Weights and activations of a timed model (`padless.infer.rtfx.DTYPES`).
DType = Literal["fp32", "bf16"]


def cache_mode(name: str) -> CacheMode:
    """``name`` as a `CacheMode`; ValueError naming the choices otherwise."""
    for mode in CACHE_MODES:
        if name == mode:
            return mode
    raise ValueError(f"unknown decoding cache {name!r}; choose from {', '.join(CACHE_MODES)}")


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
    #: ``ceil(max_tokens_per_second * encoder_frames * frame_seconds)`` and never more than
    #: ``max_new_tokens``. Counted in seconds of audio, not frames, so the limit is the same at
    #: 4x and 8x subsampling. 25 is the TPS filter's usual ceiling: no training example says more
    #: per second, so a longer output is a decoder stuck in a loop, whose insertions it bounds.
    max_tokens_per_second: float = 25.0
    max_new_tokens: int = 512
    #: NeMo's limit instead of ``max_tokens_per_second`` when set: ``encoder frames +
    #: max_generation_delta - prompt length`` tokens (EOS included), and one more in beam search,
    #: as NeMo's beam search emits one token before its step loop; still capped by
    #: ``max_new_tokens``. NeMo counts the time axis of its encoder output, so the batch's
    #: longest utterance sets every row's limit; this counts each utterance's own, which is
    #: NeMo's limit at batch size 1 (see `padless.infer.decode.nemo_limit_frames`).
    max_generation_delta: int | None = None
    #: Greedy only: when at least this fraction of the rows still in the batch have finished,
    #: drop them from the batch (a copy of the caches' live rows), so finished utterances stop
    #: costing compute. None never compacts. See docs/model.md for measurements.
    compact_threshold: float | None = 0.5
    #: Joint CTC/attention decoding (`padless.infer.ctc`; beam search only): the weight ``w`` of
    #: the encoder's CTC prefix score against ``1 - w`` for the decoder's, on transcription (ASR)
    #: rows; translation rows and 0 use the decoder alone. Needs a model trained with a CTC head
    #: (``loss.ctc_weight > 0``).
    ctc_weight: float = 0.0
    #: Joint decoding: the tokens per hypothesis and step that CTC scores, the decoder's best
    #: (ESPnet's pre-beam); the others are excluded. Cost grows linearly with it.
    ctc_candidates: int = 8

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        cache_mode(self.cache)
        if self.beam_size < 1:
            raise ValueError(f"beam_size must be >= 1, got {self.beam_size}")
        if self.max_new_tokens < 1 or self.max_tokens_per_second <= 0:
            raise ValueError("max_new_tokens and max_tokens_per_second must be positive")
        if not 0 <= self.ctc_weight <= 1 or self.ctc_candidates < 1:
            raise ValueError(
                f"ctc_weight must be in [0, 1] and ctc_candidates >= 1, got {self.ctc_weight}, "
                f"{self.ctc_candidates}"
            )
        if self.ctc_weight > 0 and self.strategy != "beam":
            raise ValueError("joint CTC decoding (ctc_weight > 0) needs strategy 'beam'")
        if self.compact_threshold is not None and not 0 < self.compact_threshold <= 1:
            raise ValueError(f"compact_threshold must be in (0, 1], got {self.compact_threshold}")


@dataclass(frozen=True)
class RtfxConfig:
    """One RTFx setting (`padless.infer.rtfx`); each (preset, decoding mode) pair is measured
    under it."""

    batch_size: int = 32
    dtype: DType = "fp32"
    device: str = "cpu"
    #: Emit exactly each reference's token count (text + EOS) instead of stopping at EOS.
    forced_length: bool = False
    warmup_batches: int = 1
    repeats: int = 1  # timed passes per (preset, mode); the median is reported
    options: DecodingOptions = field(default_factory=DecodingOptions)
