"""The YAML config loader (on small dataclasses of its own) and the shipped training configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import pytest
from typer.testing import CliRunner

from padless.cli import app
from padless.sampling.config import RandomBatching
from padless.train.config import FixedBatches, TableBatches, TrainingConfig, load_training_config
from padless.train.metrics import truncate_after
from padless.train.yaml_config import ConfigError, dump_config, load_config, parse_override

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass(frozen=True)
class Walk:
    kind: ClassVar[str] = "walk"
    speed: float = 1.0


@dataclass(frozen=True)
class Ride:
    kind: ClassVar[str] = "ride"
    vehicle: Literal["bike", "bus"] = "bike"
    stops: tuple[int, ...] = ()


@dataclass(frozen=True)
class Leg:
    name: str
    way: Walk | Ride = field(default_factory=Walk)
    note: str | None = None


@dataclass(frozen=True)
class Trip:
    legs: list[Leg] = field(default_factory=list)
    start: Leg = field(default_factory=lambda: Leg("home"))
    budget: int | float = 10
    window: tuple[float, float] = (0.0, 1.0)
    flag: bool = False


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trip.yaml"
    path.write_text(text)
    return path


def test_nested_unions_lists_and_overrides(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "legs:\n"
        "  - {name: a, way: {kind: ride, vehicle: bus, stops: [1, 2]}}\n"
        "  - {name: b, note: slow}\n"
        "start: {name: s, way: {kind: walk, speed: 2}}\n",
    )
    trip = load_config(Trip, path, ["budget=2.5", "start.way.speed=3e-1", "window=[1, 2]"])
    assert trip.legs == [Leg("a", Ride("bus", (1, 2))), Leg("b", Walk(), "slow")]
    assert trip.start == Leg("s", Walk(0.3))  # YAML 1.1 reads 3e-1 as a string: still a float
    assert (trip.budget, trip.window) == (2.5, (1.0, 2.0))
    # Another kind starts that section afresh from the new class's defaults; the section's
    # other overrides apply to the new kind, in whatever order they come.
    assert load_config(Trip, path, ["start.way.kind=ride"]).start.way == Ride()
    ride = load_config(Trip, path, ["start.way.vehicle=bus", "start.way.kind=ride"])
    assert ride.start.way == Ride("bus")
    assert load_config(Trip, path, ["start.way=ride"]).start.way == Ride()  # just the kind
    short = write(tmp_path, "start: {name: s, way: ride}")
    assert load_config(Trip, short, ["start.way.stops=[3]"]).start.way == Ride(stops=(3,))
    # What dump_config writes loads back to the same tree.
    again = write(tmp_path, dump_config(trip))
    assert load_config(Trip, again) == trip


@pytest.mark.parametrize(
    ("text", "overrides", "message"),
    [
        ("start: {name: s, speed: 1}", [], r"trip.yaml: start.speed: unknown key"),
        ("legs: [{name: a, way: {kind: fly}}]", [], r"legs\[0\].way.kind: 'fly' is not one of"),
        ("legs: [{way: {kind: walk}}]", [], r"legs\[0\].name: required"),
        ("flag: 1", [], r"flag: expected bool, got 1"),
        ("budget: lots", [], r"budget: expected int or float"),
        ("window: [1]", [], r"window: expected 2 items"),
        ("start: {name: s, way: {kind: ride, vehicle: car}}", [], r"vehicle: 'car' is not one"),
        ("start: {name: s, way: {speed: 1}}", [], r"start.way: expected a mapping with kind"),
        ("", ["start.nme=x"], r"trip.yaml \(set on the command line\): start.nme: unknown key"),
        ("", ["legs"], r"override 'legs': expected dotted.key=value"),
    ],
)
def test_errors_name_the_key_and_the_file(
    tmp_path: Path, text: str, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(Trip, write(tmp_path, text), overrides)


def test_override_values_are_yaml() -> None:
    assert parse_override("a.b=null") == ("a.b", None)
    assert parse_override("a=[1, x]") == ("a", [1, "x"])
    assert parse_override("a={k: 2}") == ("a", {"k": 2})


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_every_shipped_config_loads_and_round_trips(name: str, tmp_path: Path) -> None:
    config = load_training_config(CONFIGS / name)
    assert isinstance(config, TrainingConfig)
    out = tmp_path / "config.yaml"
    out.write_text(dump_config(config))
    assert load_training_config(out) == config


def test_shipped_recipes() -> None:
    names = {p.name for p in CONFIGS.glob("*.yaml")}
    assert {"demo-tiny.yaml", "canary-1b.yaml", "canary-1b-flash.yaml", "fixed-batch.yaml"} <= names
    for name in ("canary-1b.yaml", "canary-1b-flash.yaml"):
        c = load_training_config(CONFIGS / name)
        assert isinstance(c.batch, TableBatches) and c.train.bf16
        assert (c.optim.lr, c.optim.betas, c.optim.weight_decay) == (3e-4, (0.9, 0.98), 1e-3)
        assert c.schedule.warmup_steps == 2500
    fixed = load_training_config(CONFIGS / "fixed-batch.yaml")
    assert isinstance(fixed.batch, FixedBatches)
    assert isinstance(fixed.sampler.batching, RandomBatching)
    assert fixed.data.estimate.num_buckets == 1
    # The baseline differs from the demo recipe in its batches only, not in its model.
    assert fixed.model == load_training_config(CONFIGS / "demo-tiny.yaml").model


def test_cli_reports_a_bad_key_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["train", str(CONFIGS / "demo-tiny.yaml"), "train.max_step=3", "--run-dir", str(tmp_path)],
    )
    assert result.exit_code == 2
    assert "error:" in result.output and "train.max_step: unknown key" in result.output


def test_truncating_the_log_reads_only_its_tail(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    rows = [f'{{"step":{s},"rank":{r}}}' for s in range(1, 50) for r in (0, 1)]
    for keep in (0, 1, 30, 49, 60):
        path.write_text("".join(row + "\n" for row in rows))
        truncate_after(path, keep, block=16)  # many blocks, lines cut across them
        assert path.read_text() == "".join(row + "\n" for row in rows[: 2 * min(keep, 49)])
