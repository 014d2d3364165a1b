"""A small real `AEDModel` config and the batch-size search workload built from it.

Narrow and shallow so that a simulated trial step takes about a second and a real one a few;
shared by the batch-size search tests (simulate, cpu, cuda probes and the CLI).
"""

from __future__ import annotations

from padless.batchsize.search import BucketShape
from padless.batchsize.workload import AEDWorkload
from padless.model import DecoderConfig, EncoderConfig, FeatureConfig, ModelConfig


def small_config() -> ModelConfig:
    return ModelConfig(
        name="test-small",
        vocab_size=256,
        features=FeatureConfig(n_mels=32),
        encoder=EncoderConfig(d_model=64, n_layers=2, n_heads=4, subsampling_channels=32),
        decoder=DecoderConfig(d_model=64, n_layers=2, n_heads=4),
    )


WORKLOAD = AEDWorkload.from_config(small_config())
#: A short and a long bucket shape (duration s, tokens).
SHORT, LONG = BucketShape(3.0, 30, index=0), BucketShape(8.0, 70, index=1)
