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

from padless.data.ctc import BYTE_BLANK_ID, BYTE_VOCAB_SIZE, min_frames
from padless.model.config import ModelConfig
from padless.model.decoder import TransformerDecoder
from padless.model.encoder import FastConformerEncoder
from padless.model.features import LogMelFeatures, spec_augment
from padless.model.guided import guided_attention_loss
from padless.model.layers import lengths_to_mask, sinusoids

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
    @property
    def ctc_tokens(self) -> torch.Tensor | None: ...  # (B, S) what is said, or None
    @property
    def ctc_lens(self) -> torch.Tensor | None: ...  # (B,) or None


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
        # Built only with a CTC weight, so models without one have exactly the parameters (and
        # checkpoints) they always had. Over the encoder's own width, before the projection.
        ctc_classes = BYTE_VOCAB_SIZE if config.loss.ctc_units == "bytes" else config.vocab_size
        self.ctc_head: nn.Linear | None = (
            nn.Linear(enc.d_model, ctc_classes) if config.loss.ctc_weight > 0 else None
        )
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
        states, lens = self._encoder_states(audio, audio_lens)
        return self._memory(states), lens

    def encode_with_ctc(
        self, audio: torch.Tensor, audio_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`encode` plus the CTC head's log-probabilities over the same frames (``(B, T', C)``,
        see `ctc_log_probs`), for joint CTC/attention decoding."""
        states, lens = self._encoder_states(audio, audio_lens)
        return self._memory(states), lens, self.ctc_log_probs(states)

    def _memory(self, states: torch.Tensor) -> torch.Tensor:
        """Encoder states ``(B, T', D_enc)`` -> the decoder's memory ``(B, T', D_dec)``."""
        memory = self.projection(states)
        if self.config.decoder.memory_positions:
            frames = torch.arange(memory.shape[1], device=memory.device)
            memory = memory + sinusoids(frames, memory.shape[2], memory.dtype)
        return memory

    def forward(
        self, audio: torch.Tensor, audio_lens: torch.Tensor, tokens: torch.Tensor
    ) -> torch.Tensor:
        """Teacher-forced logits ``(B, U, V)`` for decoder inputs ``tokens (B, U)``."""
        memory, lens = self.encode(audio, audio_lens)
        return self.decoder(tokens, memory, lengths_to_mask(lens, memory.shape[1]))

    @property
    def ctc_blank_id(self) -> int:
        """The CTC blank: ``pad_id`` (never a target token), or 0 for byte units."""
        return BYTE_BLANK_ID if self.config.loss.ctc_units == "bytes" else self.config.pad_id

    def loss(self, batch: TrainingBatch) -> torch.Tensor:
        """The training loss of a `SpeechBatch` (scalar): mean cross-entropy per target token,
        or with a CTC head and the batch's CTC targets ``(1 - w) * CE + w * CTC`` (``w`` =
        ``loss.ctc_weight``, CTC summed over the batch and divided by its target tokens), plus
        ``loss.guided_attention_weight`` times the guided-attention loss in training mode.

        A batch without CTC targets (``ctc_tokens`` None, e.g. the dev loss) in eval mode gets
        the cross-entropy alone, so dev losses compare across recipes."""
        tokens = batch.tokens  # (B, U)
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        index = torch.arange(targets.shape[1], device=tokens.device)[None, :]
        keep = index < (batch.token_lens - 1)[:, None]  # drop right padding
        if self.config.loss.mask_prompt:
            keep &= index >= (batch.prompt_lens - 1)[:, None]
        targets = targets.masked_fill(~keep, IGNORE_INDEX)
        states, lens = self._encoder_states(batch.audio, batch.audio_lens)
        memory = self._memory(states)
        cfg = self.config.loss
        guided = cfg.guided_attention_weight > 0 and self.training
        logits, weights = self.decoder.forward_with_attention(
            inputs,
            memory,
            lengths_to_mask(lens, memory.shape[1]),
            weights_of=cfg.guided_attention_layers if guided else 0,
        )
        loss = F.cross_entropy(
            logits.flatten(0, 1),
            targets.flatten(),
            ignore_index=IGNORE_INDEX,
            label_smoothing=cfg.label_smoothing,
        )
        if (ctc_targets := self._ctc_targets(batch)) is not None:
            ctc = self.ctc_loss(states, lens, *ctc_targets)
            loss = (1.0 - cfg.ctc_weight) * loss + cfg.ctc_weight * ctc
        if weights:
            loss = loss + cfg.guided_attention_weight * guided_attention_loss(
                weights, lens, batch.prompt_lens, batch.token_lens, cfg.guided_attention_sigma
            )
        return loss

    def ctc_loss(
        self,
        states: torch.Tensor,
        lens: torch.Tensor,
        ctc_tokens: torch.Tensor,
        ctc_lens: torch.Tensor,
    ) -> torch.Tensor:
        """CTC per target token of encoder ``states (B, T', D_enc)`` against ``ctc_tokens (B, S)``.

        ``zero_infinity``: an utterance with more targets (plus repeats) than encoder frames
        (impossible alignment) adds 0 rather than inf, and no gradient. At 80 ms frames that is
        more than 12.5 units per second: 2% of the demo corpus's training utterances with 128
        pieces per language, half of them with 64, and 85% with byte units (1.5% at 4x
        subsampling, which bytes therefore go with; bench/results/2026-12-06-demo-recipe.md).
        `ctc_infeasible` counts them; the training loop logs it per step (``ctc_dropped``)."""
        log_probs = self.ctc_log_probs(states).transpose(0, 1)  # (T', B, V)
        total = F.ctc_loss(
            log_probs,
            ctc_tokens,
            lens,
            ctc_lens,
            blank=self.ctc_blank_id,
            reduction="sum",
            zero_infinity=True,
        )
        return total / ctc_lens.sum().clamp(min=1)

    def ctc_log_probs(self, states: torch.Tensor) -> torch.Tensor:
        """The CTC head's log-probabilities ``(B, T', C)`` of encoder ``states (B, T', D_enc)``,
        float32 (CTC's forward-backward sums many small terms)."""
        if self.ctc_head is None:
            raise RuntimeError("this model has no CTC head (it was built with loss.ctc_weight 0)")
        return self.ctc_head(states).float().log_softmax(-1)

    def ctc_infeasible(self, batch: TrainingBatch) -> torch.Tensor:
        """How many of ``batch``'s utterances have fewer encoder frames than their CTC targets
        need: `ctc_loss` drops them (0, a device tensor; 0 without CTC targets). Computed from
        the lengths alone, without running the model."""
        if (ctc_targets := self._ctc_targets(batch)) is None:
            return torch.zeros((), dtype=torch.int64, device=batch.audio_lens.device)
        frames = self.encoder.output_lengths(self.features.num_frames(batch.audio_lens))
        return (frames < min_frames(*ctc_targets)).sum()

    def _ctc_targets(self, batch: TrainingBatch) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``batch``'s CTC targets and their lengths, when it has them and this model has a CTC
        head to score them; else None."""
        if self.ctc_head is None or batch.ctc_tokens is None or batch.ctc_lens is None:
            return None
        return batch.ctc_tokens, batch.ctc_lens

    def _encoder_states(
        self, audio: torch.Tensor, audio_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output before the projection ``(B, T', D_enc)`` and its lengths."""
        feats, feat_lens = self.features(audio, audio_lens)  # (B, F, M) float32
        if self.training and self.config.spec_augment.enabled:
            feats = spec_augment(feats, feat_lens, self.config.spec_augment)
        states, lens = self.encoder(feats.to(self.dtype), feat_lens)
        return states, lens


def parameter_counts(model: AEDModel) -> dict[str, int]:
    """Parameters by part; tied weights (embedding = output head) are counted once."""

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    encoder = count(model.features) + count(model.encoder)
    projection = count(model.projection)
    decoder = count(model.decoder)
    counts = {
        "total": count(model),
        "encoder": encoder,
        "projection": projection,
        "decoder": decoder,
    }
    if model.ctc_head is not None:
        counts["ctc_head"] = count(model.ctc_head)
    return counts


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
