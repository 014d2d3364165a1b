"""Padding of the optimized batching against the paper's baseline, measured on the same training
metadata: each scheme's sampler is run over one epoch of the training manifest (metadata only,
no audio read, no model), and padding and batch size are computed from the batches it yields
(`padless.peers.compare.run_samplers`).

The optimized scheme is the training recipe's own (its plan, filters, sampler and batch policy);
the baseline is ``configs/fixed-batch.yaml``: one bucket, random batch formation, a fixed number
of examples per batch, no TPS filter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from padless.data.stream import ExampleStream
from padless.peers.compare import run_samplers
from padless.sampling.estimate import plan_from_examples
from padless.sampling.lengths import ExampleLengths
from padless.sampling.plan import BucketPlan
from padless.train.config import TrainingConfig, as_list
from padless.train.data import build_policy, build_sampler


@dataclass(frozen=True)
class SchemePadding:
    """What one batching scheme yields over one epoch of the training metadata."""

    name: str
    policy: dict[str, Any]  # the batch policy (`BatchPolicy.describe`)
    buckets: int
    batches: int
    examples: int
    audio_padding: float  # fraction of padded audio positions
    token_padding: float  # fraction of padded output-token positions
    mean_batch_size: float  # examples per batch
    mean_batch_seconds: float  # audio seconds per batch (padding excluded)
    filtered: dict[str, int]  # examples the scheme's filters dropped, by reason

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def one_epoch(config: TrainingConfig) -> TrainingConfig:
    """The config with a finite sampler (one pass over the data), for measuring."""
    return dataclasses.replace(config, sampler=dataclasses.replace(config.sampler, infinite=False))


def baseline_plan(config: TrainingConfig, lengths: ExampleLengths) -> BucketPlan:
    """The baseline's plan, estimated as training would (its ``data.estimate`` and filters)."""
    stream = ExampleStream(as_list(config.data.train), shuffle=False, require_text=False)
    plan, _, _ = plan_from_examples(
        stream.open(0),
        config.data.estimate,
        config.data.filters,
        lengths=lengths,
        seed=config.train.seed,
    )
    return plan


def measure(
    name: str,
    config: TrainingConfig,
    plan: BucketPlan,
    lengths: ExampleLengths,
    on_batch: Callable[[int], None] | None = None,
) -> SchemePadding:
    """Run ``config``'s sampler (rank 0 of 1, one epoch) over its training data with ``plan``."""
    config = one_epoch(config)
    report = run_samplers(
        lambda rank: build_sampler(config, plan, lengths, rank=rank, world_size=1),
        1,
        on_batch=on_batch,
    )
    totals = report.totals
    return SchemePadding(
        name=name,
        policy=build_policy(config.batch, plan).describe(),
        buckets=len(plan),
        batches=totals.batches,
        examples=totals.examples,
        audio_padding=totals.audio_padding,
        token_padding=totals.token_padding,
        mean_batch_size=totals.mean_batch_size,
        mean_batch_seconds=totals.mean_batch_seconds,
        filtered=dict(report.filtered),
    )
