"""Batch formation and bucket draws as small classes: kinds, settings, the config round trip."""

from __future__ import annotations

from typing import get_args

import pytest

from padless.sampling.config import (
    BATCHINGS,
    BatchingKind,
    BucketDrawKind,
    RandomBatching,
    SamplerConfig,
    SortedBatching,
    strategy_from_json,
)
from padless.sampling.filters import FilterConfig
from padless.sampling.sync import BUCKET_DRAWS, InflowDraw, UniformDraw


def test_kinds_are_the_choices_the_command_line_offers() -> None:
    assert set(get_args(BatchingKind)) == set(BATCHINGS) == {"sorted", "random"}
    assert set(get_args(BucketDrawKind)) == set(BUCKET_DRAWS) == {"inflow", "uniform"}
    for kind, cls in (*BATCHINGS.items(), *BUCKET_DRAWS.items()):
        assert cls.kind == kind


def test_defaults_and_the_papers_sampler() -> None:
    default = SamplerConfig()
    assert default.batching == SortedBatching(lanes=32, spread=1.0)
    assert default.bucket_draw == InflowDraw() and default.assignment == "flexible"
    paper = SamplerConfig.paper(seed=5)
    assert paper.batching == RandomBatching() and paper.bucket_draw == UniformDraw()
    assert paper.assignment == "strict" and paper.seed == 5


def test_each_strategy_checks_only_its_own_settings() -> None:
    with pytest.raises(ValueError, match="lanes"):
        SortedBatching(lanes=0)
    with pytest.raises(ValueError, match="spread"):
        SortedBatching(spread=0.9)
    with pytest.raises(TypeError):
        RandomBatching(lanes=4)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="batching must be one of"):
        SamplerConfig(batching="sorted")  # type: ignore[arg-type]


def test_json_round_trip_and_config_file_spelling() -> None:
    config = SamplerConfig(
        batching=SortedBatching(lanes=8, spread=1.1),
        bucket_draw=UniformDraw(),
        seed=3,
        filters=FilterConfig(max_duration=30.0),
    )
    data = config.to_json()
    assert data["batching"] == {"kind": "sorted", "lanes": 8, "spread": 1.1}
    assert data["bucket_draw"] == {"kind": "uniform"}
    assert SamplerConfig.from_json(data) == config
    # A config file may name a strategy by its kind alone, or with some of its settings.
    short = SamplerConfig.from_json({"batching": "random", "bucket_draw": {"kind": "inflow"}})
    assert short == SamplerConfig(batching=RandomBatching())
    assert SamplerConfig.from_json({"batching": {"kind": "sorted", "lanes": 4}}).batching == (
        SortedBatching(lanes=4)
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "sorted", "width": 3}, "has no setting"),
        ({"kind": "bucketed"}, "unknown batching kind"),
        ({"lanes": 3}, "unknown batching kind"),
    ],
)
def test_bad_strategies_are_named(data, message) -> None:
    with pytest.raises(ValueError, match=message):
        strategy_from_json(BATCHINGS, data, "batching")


def test_unknown_sampler_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sampler settings"):
        SamplerConfig.from_json({"lane": 3})
