"""`AEDModel`: log-mel features -> FastConformer encoder -> (projection) -> Transformer decoder.

The model builds anywhere, including under ``torch.device("meta")`` and PyTorch's
``FakeTensorMode`` (the batch-size search runs whole training steps that way): construction does
no data-dependent work, and the training forward/backward never syncs with the host.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from padless.model.config import ModelConfig
from padless.model.decoder import TransformerDecoder
from padless.model.encoder import FastConformerEncoder
from padless.model.features import LogMelFeatures, spec_augment
from padless.model.layers import lengths_to_mask

IGNORE_INDEX = -100


class TrainingBatch(Protocol):
    """The fields of `padless.data.dataset.SpeechBatch` that the loss reads."""

    @property
    def audio(self) -> torch.Tensor: ...  # (B, T) float32, 16 kHz, zero-padded
    @property
    def audio_lens(self) -> torch.Tensor: ...  # (B,) int64 samples
    @property
    def tokens(self) -> torch.Tensor: ...  # (B, U) prompt + text + EOS, right-padded
    @property
    def token_lens(self) -> torch.Tensor: ...  # (B,)
    @property
    def prompt_lens(self) -> torch.Tensor: ...  # (B,)


class AEDModel(nn.Module):
    """Attention encoder-decoder speech model (Canary architecture)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        enc, dec = config.encoder, config.decoder
        self.features = LogMelFeatures(config.features)
        self.encoder = FastConformerEncoder(enc, config.features.n_mels)
        # canary-180m-flash: a 512-wide encoder feeds a 1024-wide decoder.
        self.projection: nn.Module = (
            nn.Linear(enc.d_model, dec.d_model) if enc.d_model != dec.d_model else nn.Identity()
        )
        self.decoder = TransformerDecoder(dec, config.vocab_size)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """(Re)initialise every parameter and derived buffer; no-op values on the meta device."""
        # Children before parents, so a parent's custom init (e.g. the decoder's embedding scale)
        # overrides its children's PyTorch defaults.
        for module in reversed(list(self.modules())):
            if module is self:
                continue
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        self.features.reset_buffers()

    def materialize(self, device: torch.device | str) -> AEDModel:
        """Allocate a model built on the meta device on ``device`` and initialise it."""
        self.to_empty(device=device)
        with torch.no_grad():
            self.reset_parameters()
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.decoder.embedding.weight.dtype

    def encode(
        self, audio: torch.Tensor, audio_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio (B, T), audio_lens (B,)`` -> decoder memory ``(B, T', D_dec)``, lens ``(B,)``."""
        feats, feat_lens = self.features(audio, audio_lens)  # (B, F, M) float32
        if self.training and self.config.spec_augment.enabled:
            feats = spec_augment(feats, feat_lens, self.config.spec_augment)
        states, lens = self.encoder(feats.to(self.dtype), feat_lens)
        return self.projection(states), lens

    def forward(
        self, audio: torch.Tensor, audio_lens: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits ``(B, U, V)`` for decoder inputs ``tokens (B, U)``."""
        memory, lens = self.encode(audio, audio_lens)
        return self.decoder(tokens, memory, lengths_to_mask(lens, memory.shape[1]))

    def loss(self, batch: TrainingBatch) -> torch.Tensor:
        """Mean cross-entropy per target token of a `SpeechBatch` (scalar)."""
        tokens = batch.tokens  # (B, U)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        index = torch.arange(targets.shape[1], device=tokens.device)[None, :]
        keep = index < (batch.token_lens - 1)[:, None]  # drop right padding
        if self.config.loss.mask_prompt:
            keep &= index >= (batch.prompt_lens - 1)[:, None]
        targets = targets.masked_fill(~keep, IGNORE_INDEX)
        logits = self(batch.audio, batch.audio_lens, inputs)  # (B, U-1, V)
        return F.cross_entropy(
            logits.flatten(0, 1),
            targets.flatten(),
            ignore_index=IGNORE_INDEX,
            label_smoothing=self.config.loss.label_smoothing,
        )


def parameter_counts(model: AEDModel) -> dict[str, int]:
    """Parameters by part; tied weights (embedding = output head) are counted once."""

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    encoder = count(model.features) + count(model.encoder)
    projection = count(model.projection)
    decoder = count(model.decoder)
    return {
        "total": count(model),
        "encoder": encoder,
        "projection": projection,
        "decoder": decoder,
    }


def build_on_meta(config: ModelConfig) -> AEDModel:
    """An `AEDModel` whose tensors have shapes but no storage (for counting and planning)."""
    with torch.device("meta"):
        return AEDModel(config)


__all__ = [
    "AEDModel",
    "TrainingBatch",
    "build_on_meta",
    "parameter_counts",
]
