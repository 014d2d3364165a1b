"""A padless sampler setup (plan, batch-size policy, sampler config) as lhotse peer settings:
the same bins, batch size, filters, buffer, seed and bucket synchronisation (what cannot be the
same is listed in `padless.peers.lhotse_config`)."""

from __future__ import annotations

from typing import Any

from padless.peers.lhotse_config import LhotsePeerConfig, bins_from_plan
from padless.sampling.config import SamplerConfig
from padless.sampling.engine import buffer_size
from padless.sampling.plan import BucketPlan
from padless.sampling.policies import BatchPolicy, BucketBatchSizes, DurationBudget, FixedBatchSize


def lhotse_settings(
    plan: BucketPlan, policy: BatchPolicy, config: SamplerConfig
) -> LhotsePeerConfig:
    """The lhotse peer's settings equivalent to running padless with these. The buffer is the
    size padless's sampler uses with them (`padless.sampling.engine.buffer_size`)."""
    f = plan.filters
    budget: dict[str, Any]
    if isinstance(policy, DurationBudget):
        budget = {
            "max_duration": policy.max_duration,
            "quadratic_duration": policy.quadratic_duration,
        }
    elif isinstance(policy, FixedBatchSize):
        budget = {"batch_size": policy.batch_size}
    elif isinstance(policy, BucketBatchSizes):
        budget = {"bucket_batch_sizes": policy.batch_sizes}
    else:
        raise ValueError(f"the lhotse peer has no equivalent of {policy.describe()}")
    return LhotsePeerConfig(
        bins=bins_from_plan(plan),
        strict=config.assignment == "strict",
        min_example_duration=f.min_duration,
        max_example_duration=f.max_duration,
        max_tokens=f.max_tokens,
        tps_max=f.tps_max,
        buffer_size=buffer_size(plan, policy, config),
        seed=config.seed,
        sync_buckets=config.sync,
        concurrent=config.concurrent,
        **budget,
    )
