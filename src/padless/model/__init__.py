"""The AED speech model: config presets, log-mel features, FastConformer encoder, Transformer
decoder, training loss and checkpoints.

Typical use::

    from padless.model import AEDModel, get_config, load_checkpoint, save_checkpoint

    config = get_config("tiny-canary-1b").with_vocab_size(tokenizer.vocab_size)
    model = AEDModel(config)
    loss = model.loss(batch)  # batch: padless.data.dataset.SpeechBatch
    save_checkpoint("model.pt", model, tokenizer="tok/")  # a tokenizer or its folder
    model = load_checkpoint("model.pt").model
"""

from padless.model.aed import AEDModel, build_on_meta, parameter_counts
from padless.model.checkpoint import Checkpoint, get_config, load_checkpoint, save_checkpoint
from padless.model.config import (
    DEFAULT_VOCAB_SIZE,
    PRESETS,
    DecoderConfig,
    EncoderConfig,
    FeatureConfig,
    LossConfig,
    ModelConfig,
    SpecAugmentConfig,
)

__all__ = [
    "DEFAULT_VOCAB_SIZE",
    "PRESETS",
    "AEDModel",
    "Checkpoint",
    "DecoderConfig",
    "EncoderConfig",
    "FeatureConfig",
    "LossConfig",
    "ModelConfig",
    "SpecAugmentConfig",
    "build_on_meta",
    "get_config",
    "load_checkpoint",
    "parameter_counts",
    "save_checkpoint",
]
