"""Model configuration: one frozen dataclass per component, composed into `ModelConfig`.

`ModelConfig` is saved inside every checkpoint (as a plain dict), so loading a checkpoint needs
nothing else. Named presets reproduce the paper's architectures (Canary-1B and its variants)
plus tiny versions of the same shapes that train on a laptop CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from padless.data.ctc import CTC_UNITS, CtcUnits

#: Vocabulary of the full-size default tokenizer: 8 specials + 4 language tokens + 4 x 1024 BPE
#: pieces (en, de, es, fr), the fixed id layout of `padless.data.tokenizer.CanaryTokenizer`.
DEFAULT_VOCAB_SIZE = 8 + 4 + 4 * 1024


@dataclass(frozen=True)
class FeatureConfig:
    """Log-mel filterbank front end (computed in PyTorch, NeMo-compatible defaults)."""

    sample_rate: int = 16_000
    n_mels: int = 128  # 128 for Canary-1B; 80 is the classic choice for smaller models
    n_fft: int = 512
    win_length: int = 400  # 25 ms at 16 kHz
    hop_length: int = 160  # 10 ms at 16 kHz
    preemphasis: float = 0.97  # y[n] = x[n] - a * x[n-1]; 0 disables
    dither: float = 1e-5  # std of Gaussian noise added to the waveform, training only
    log_zero_guard: float = 2.0**-24  # added to the mel power before the log
    #: Valid frames of ``L`` samples: ``L // hop + 1``, every centred STFT frame (True), or
    #: ``L // hop`` (False), NeMo's count, which leaves the last centred frame out of the
    #: normalisation statistics and the encoder input. Converted NeMo models use False.
    count_last_frame: bool = True


@dataclass(frozen=True)
class SpecAugmentConfig:
    """SpecAugment on log-mel features, applied in training only (Canary-1B's settings)."""

    freq_masks: int = 2
    freq_width: int = 27  # maximum mel bins per frequency mask
    time_masks: int = 10
    time_width: float = 0.05  # maximum time-mask width as a fraction of the utterance's frames

    @property
    def enabled(self) -> bool:
        return self.freq_masks > 0 or self.time_masks > 0


@dataclass(frozen=True)
class EncoderConfig:
    """FastConformer encoder: x8 depthwise-striding subsampling + macaron Conformer blocks."""

    d_model: int = 1024
    n_layers: int = 24
    n_heads: int = 8
    ff_mult: int = 4  # feed-forward width = ff_mult * d_model
    conv_kernel: int = 9  # depthwise convolution kernel in the convolution module
    subsampling_factor: int = 8  # 2 ** (number of stride-2 convolutions)
    subsampling_channels: int = 256
    xscaling: bool = True  # multiply the subsampled features by sqrt(d_model)
    dropout: float = 0.1  # residual / feed-forward dropout
    attn_dropout: float = 0.1  # dropout on attention probabilities

    @property
    def ff_dim(self) -> int:
        return self.ff_mult * self.d_model


@dataclass(frozen=True)
class DecoderConfig:
    """Pre-LN Transformer decoder with sinusoidal positions and a tied output head."""

    d_model: int = 1024
    n_layers: int = 24
    n_heads: int = 8
    ff_mult: int = 4
    dropout: float = 0.1
    attn_dropout: float = 0.1
    #: Add sinusoidal positions of the encoder frames to the memory the decoder cross-attends
    #: to. Off in every Canary preset (their Conformer encoder has relative positions only, so
    #: the decoder must find where it is in the audio from content). A tiny model trained from
    #: scratch otherwise leaves its cross-attention uniform for thousands of steps and learns
    #: the text's language model alone (measured in ``bench/results/2026-12-06-demo-recipe.md``).
    memory_positions: bool = False
    #: Where the input embedding's sqrt(d_model) goes: ``tokens`` multiplies the token
    #: embeddings by it (padless), ``positions`` divides the sinusoids by it instead (NeMo's
    #: Transformer). The embedding layer norm makes the two equal up to its epsilon, which
    #: weighs as much as the embeddings are small (variance ~1/d at initialisation: a relative
    #: difference of order 1e-5 * d); converted NeMo models use ``positions``.
    embedding_scale: Literal["tokens", "positions"] = "tokens"

    @property
    def ff_dim(self) -> int:
        return self.ff_mult * self.d_model


@dataclass(frozen=True)
class LossConfig:
    """Cross-entropy training loss over the decoder's next-token predictions, optionally mixed
    with an auxiliary CTC loss on the encoder (the ESPnet hybrid)."""

    label_smoothing: float = 0.0
    # Ignore the predictions of prompt tokens 2..P (they are given, not learned); the first text
    # token, predicted from the last prompt token, always counts.
    mask_prompt: bool = True
    #: Weight w of the auxiliary CTC loss: loss = (1 - w) * CE + w * CTC, both per target token.
    #: 0 (every Canary preset): no CTC head is built and the loss is the plain cross-entropy.
    #: > 0 adds a linear CTC head over the encoder output whose blank is ``pad_id`` (never a
    #: target, so no extra vocabulary entry). The CTC target is what is *said*: the transcript
    #: for ASR, the source transcript for AST. It teaches the encoder an alignment a tiny model
    #: trained from scratch otherwise finds slowly; inference does not use it.
    ctc_weight: float = 0.0
    #: What the CTC head predicts: the tokenizer's pieces (``tokens``, blank ``pad_id``) or the
    #: UTF-8 bytes of the spoken text (``bytes``: 257 classes, blank 0; an easier start for a
    #: small encoder, with 4x subsampling for enough frames; see `padless.data.ctc`).
    ctc_units: CtcUnits = "tokens"
    #: Weight of the guided-attention loss (`padless.model.guided`), added to the above: it
    #: charges the decoder's cross-attention for mass far from the diagonal (token k of n near
    #: frame T k / n), so a decoder trained from scratch reads the audio from its first steps
    #: instead of learning the text's language model alone. 0 (every Canary preset): off, and
    #: attention runs in the fused kernel. A training loss only: no parameters, no effect on
    #: decoding.
    guided_attention_weight: float = 0.0
    #: Width of the diagonal band, as a fraction of the utterance's frames and tokens.
    guided_attention_sigma: float = 0.2
    #: How many decoder layers, from the first, the guided-attention loss reads.
    guided_attention_layers: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.ctc_weight < 1.0:
            raise ValueError(f"loss.ctc_weight must be in [0, 1), got {self.ctc_weight}")
        if self.guided_attention_weight < 0 or self.guided_attention_sigma <= 0:
            raise ValueError(
                "loss.guided_attention_weight must be >= 0 and loss.guided_attention_sigma > 0, "
                f"got {self.guided_attention_weight} and {self.guided_attention_sigma}"
            )
        if self.guided_attention_layers < 1:
            raise ValueError(
                f"loss.guided_attention_layers must be >= 1, got {self.guided_attention_layers}"
            )
        if self.ctc_units not in CTC_UNITS:
            raise ValueError(f"loss.ctc_units must be one of {CTC_UNITS}, got {self.ctc_units!r}")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build an `AEDModel`; stored inside every checkpoint."""

    name: str = "custom"
    vocab_size: int = DEFAULT_VOCAB_SIZE
    pad_id: int = 0  # fixed id layout of CanaryTokenizer
    eos_id: int = 1  # <|endoftext|>
    features: FeatureConfig = field(default_factory=FeatureConfig)
    spec_augment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        enc, dec = self.encoder, self.decoder
        for part, cfg in (("encoder", enc), ("decoder", dec)):
            if cfg.d_model % cfg.n_heads:
                raise ValueError(
                    f"{self.name}: {part}.d_model={cfg.d_model} is not divisible by "
                    f"n_heads={cfg.n_heads}"
                )
        factor = enc.subsampling_factor
        if factor < 2 or factor & (factor - 1):
            raise ValueError(f"{self.name}: subsampling_factor must be a power of 2 >= 2")
        if self.features.n_mels % factor:
            raise ValueError(
                f"{self.name}: n_mels={self.features.n_mels} must be divisible by "
                f"subsampling_factor={factor} (the frequency axis is subsampled too)"
            )
        if dec.embedding_scale not in ("tokens", "positions"):
            raise ValueError(
                f"{self.name}: decoder.embedding_scale must be 'tokens' or 'positions', "
                f"got {dec.embedding_scale!r}"
            )
        if enc.conv_kernel % 2 == 0:
            raise ValueError(f"{self.name}: conv_kernel must be odd, got {enc.conv_kernel}")
        if not 0 <= self.pad_id < self.vocab_size or not 0 <= self.eos_id < self.vocab_size:
            raise ValueError(f"{self.name}: pad_id/eos_id outside the vocabulary")

    @property
    def frame_seconds(self) -> float:
        """Seconds of audio per encoder output frame: hop x subsampling (80 ms at 10 ms, 8x)."""
        return (
            self.features.hop_length / self.features.sample_rate * self.encoder.subsampling_factor
        )

    def with_vocab_size(self, vocab_size: int) -> ModelConfig:
        """The same architecture for another tokenizer (e.g. ``tokenizer.vocab_size``)."""
        return dataclasses.replace(self, vocab_size=vocab_size)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of `to_dict`; unknown keys are an error naming them."""
        parts = {
            "features": FeatureConfig,
            "spec_augment": SpecAugmentConfig,
            "encoder": EncoderConfig,
            "decoder": DecoderConfig,
            "loss": LossConfig,
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            sub = parts.get(key)
            if sub is not None:
                kwargs[key] = _build(sub, value, key)
            else:
                kwargs[key] = value
        return _build(cls, kwargs, "model config")


def _build(cls: Any, values: dict[str, Any], where: str) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    return cls(**values)


def _canary(
    name: str,
    enc_layers: int,
    dec_layers: int,
    enc_width: int = 1024,
) -> ModelConfig:
    return ModelConfig(
        name=name,
        encoder=EncoderConfig(d_model=enc_width, n_layers=enc_layers, n_heads=8),
        decoder=DecoderConfig(d_model=1024, n_layers=dec_layers, n_heads=8),
    )


def _tiny(name: str, enc_layers: int, dec_layers: int) -> ModelConfig:
    # The Canary family scaled to a 2-core CPU: width 176, 4 heads, 80 mels. Subsampling
    # channels scale with the width as in Canary-1B (256 for d=1024, i.e. d/4 = 44 here),
    # rounded up to 64: at d/1 (176) the 20 ms feature maps alone cost more than the six
    # Conformer layers on a CPU. The vocabulary stays the full-size default so the output head
    # costs what it would with the real tokenizer (override it per tokenizer).
    width = 176
    return ModelConfig(
        name=name,
        features=FeatureConfig(n_mels=80),
        spec_augment=SpecAugmentConfig(freq_width=15),
        encoder=EncoderConfig(
            d_model=width, n_layers=enc_layers, n_heads=4, subsampling_channels=64
        ),
        decoder=DecoderConfig(d_model=width, n_layers=dec_layers, n_heads=4),
    )


PRESETS: dict[str, ModelConfig] = {
    cfg.name: cfg
    for cfg in (
        _canary("canary-1b", 24, 24),
        _canary("canary-1b-small-decoder", 24, 4),
        _canary("canary-1b-flash", 32, 4),
        _canary("canary-180m-flash", 17, 4, enc_width=512),
        _tiny("tiny-canary-1b", 6, 6),
        _tiny("tiny-canary-1b-small-decoder", 6, 1),
        _tiny("tiny-canary-1b-flash", 8, 1),
    )
}
