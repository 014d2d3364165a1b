"""Every option of every `padless` command against the config it overrides: same default, and
the same choices where the config's field is a `Literal`. An option added without an entry
here, or a default changed on one side only, fails this test."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
import types
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

import pytest
import typer
from typer.testing import CliRunner

from padless.batchsize.config import OomptimizeConfig, SimulateConfig, StepConfig
from padless.batchsize.search import SearchConfig
from padless.cli import app
from padless.cli.options import default_of
from padless.data.corpus.config import CorpusConfig
from padless.data.shards import ShardWriterConfig
from padless.data.stream import StreamConfig
from padless.data.tokenizer import TokenizerTrainConfig
from padless.demo.config import DemoConfig
from padless.eval.config import EvalConfig
from padless.infer.options import DecodingOptions, RtfxConfig
from padless.infer.rtfx import build_timing_model
from padless.infer.transcribe import transcribe
from padless.peers.compare import run_samplers
from padless.sampling.config import (
    BATCHINGS,
    BatchingKind,
    BucketDrawKind,
    PlanConfig,
    SamplerConfig,
    SortedBatching,
)
from padless.sampling.estimate import plan_from_examples
from padless.sampling.filters import FilterConfig
from padless.sampling.policies import DurationBudget
from padless.sampling.sampler import DynamicBucketingSampler
from padless.sampling.sync import BUCKET_DRAWS


@dataclasses.dataclass(frozen=True)
class Field:
    """The option overrides ``config.<path>`` (the first name a field of the dataclass)."""

    config: type[Any]
    path: str

    def default(self) -> Any:
        first, *rest = self.path.split(".")
        value = default_of(self.config, first)
        for name in rest:
            value = getattr(value, name)
        return value

    def literal(self) -> Any:
        """The field's Literal type (None when the field is not a choice)."""
        if "." in self.path:
            return None
        return _choice(get_type_hints(self.config)[self.path])


@dataclasses.dataclass(frozen=True)
class Param:
    """The option is a parameter of a library function, with that function's default."""

    function: Callable[..., Any]
    name: str

    def default(self) -> Any:
        return inspect.signature(self.function).parameters[self.name].default

    def literal(self) -> Any:
        return None


@dataclasses.dataclass(frozen=True)
class Kind:
    """The option names a strategy by its kind; the default is the config's strategy's kind."""

    field: Field
    kinds: Any  # the Literal of the choices
    registry: dict[str, type[Any]]

    def default(self) -> Any:
        return self.field.default().kind

    def literal(self) -> Any:
        assert set(get_args(self.kinds)) == set(self.registry)
        return self.kinds


@dataclasses.dataclass(frozen=True)
class Own:
    """The command's own setting, not owned by a config (what it is, and its default)."""

    why: str
    value: Any

    def default(self) -> Any:
        return self.value

    def literal(self) -> Any:
        return None


REQUIRED = Own("required", None)
STREAM, SAMPLER = StreamConfig, SamplerConfig

OPTIONS: dict[str, dict[str, Field | Param | Kind | Own]] = {
    "version": {},
    "convert from-nemo": {
        "out": REQUIRED,
        "tokenizer_dir": Own("None: the tokenizer is only inside the checkpoint", None),
    },
    "convert to-nemo": {"out": REQUIRED},
    "shard": {
        "out": REQUIRED,
        "shard_size": Field(ShardWriterConfig, "shard_size"),
        "jobs": Field(ShardWriterConfig, "jobs"),
        "on_error": Field(ShardWriterConfig, "on_error"),
        "require_text": Field(STREAM, "require_text"),
        "overwrite": Field(ShardWriterConfig, "overwrite"),
    },
    "tokenizer train": {
        "out": REQUIRED,
        "vocab_per_lang": Field(TokenizerTrainConfig, "vocab_per_lang"),
        "languages": Field(TokenizerTrainConfig, "languages"),
        "max_sentences_per_lang": Field(TokenizerTrainConfig, "max_sentences_per_lang"),
        "seed": Field(TokenizerTrainConfig, "seed"),
        "character_coverage": Field(TokenizerTrainConfig, "character_coverage"),
        "byte_fallback": Field(TokenizerTrainConfig, "byte_fallback"),
        "on_error": Field(TokenizerTrainConfig, "on_error"),
        "num_threads": Field(TokenizerTrainConfig, "num_threads"),
    },
    "tokenizer info": {},
    "corpus synth": {
        "out": REQUIRED,
        "hours": Field(CorpusConfig, "hours"),
        "seed": Field(CorpusConfig, "seed"),
        "workers": Own("synthesis processes; None: every usable CPU", None),
        "shard_size": Field(CorpusConfig, "shard_size"),
        "progress": Own("progress bar", True),
    },
    "manifest stats": {
        "tokenizer": Own("tokenizer folder", None),
        "plot": Own("output PNG", None),
        "as_json": Own("output format", False),
        "on_error": Field(STREAM, "on_error"),
    },
    "demo": {
        "out": Field(DemoConfig, "out"),
        "quick": Own("the full demo unless asked", False),
        "config": Field(DemoConfig, "training_config"),
        "hours": Own("None: DemoConfig.hours, or QuickSettings.hours with --quick", None),
        "seed": Field(DemoConfig, "seed"),
        "workers": Field(DemoConfig, "workers"),
        "vocab_per_lang": Field(DemoConfig, "vocab_per_lang"),
    },
    "plan": {
        "out": REQUIRED,
        "num_buckets": Field(PlanConfig, "num_buckets"),
        "num_subbuckets": Field(PlanConfig, "num_subbuckets"),
        "bins": Field(PlanConfig, "bins"),
        "min_share": Field(PlanConfig, "min_share"),
        "tokenizer": Own("tokenizer folder", None),
        "tps_max": Field(FilterConfig, "tps_max"),
        "min_duration": Field(FilterConfig, "min_duration"),
        "max_duration": Field(FilterConfig, "max_duration"),
        "max_tokens": Field(FilterConfig, "max_tokens"),
        "sample_size": Param(plan_from_examples, "sample_size"),
        "seed": Param(plan_from_examples, "seed"),
        "on_error": Field(STREAM, "on_error"),
        "plot": Own("output PNG", None),
    },
    "bench-sampler": {
        "plan_path": REQUIRED,
        "batch_duration": Own("one of the three policies", None),
        "batch_size": Own("one of the three policies", None),
        "batch_sizes": Own("one of the three policies", None),
        "quadratic_duration": Field(DurationBudget, "quadratic_duration"),
        "assignment": Field(SAMPLER, "assignment"),
        "world_size": Param(DynamicBucketingSampler, "world_size"),
        "sync": Field(SAMPLER, "sync"),
        "concurrent": Field(SAMPLER, "concurrent"),
        "buffer_size": Field(SAMPLER, "buffer_size"),
        "seed": Field(SAMPLER, "seed"),
        "data_seed": Own("None: --seed", None),
        "epochs": Param(run_samplers, "epochs"),
        "batching": Kind(Field(SAMPLER, "batching"), BatchingKind, BATCHINGS),
        "bucket_draw": Kind(Field(SAMPLER, "bucket_draw"), BucketDrawKind, BUCKET_DRAWS),
        "paper": Own("the paper's sampler instead of padless's", False),
        "lanes": Field(SortedBatching, "lanes"),
        "spread": Field(SortedBatching, "spread"),
        "tokenizer": Own("tokenizer folder", None),
        "preload": Own("read before timing", False),
        "dump_batches": Own("output file", None),
        "resume_from_step": Own("resume check", None),
        "compare": Own("peer to run", None),
        "lhotse_rss": Own("peer memory measurement", True),
        "as_json": Own("output format", False),
    },
    "model info": {"as_json": Own("output format", False)},
    "train": {
        "run_dir": REQUIRED,
        "resume": Own("None: the config's resume setting", None),
    },
    "evaluate": {
        "beam": Field(EvalConfig, "beam_size"),
        "batch_size": Field(EvalConfig, "batch_size"),
        "length_penalty": Field(EvalConfig, "length_penalty"),
        "ctc_weight": Field(EvalConfig, "ctc_weight"),
        "compare": Own("second checkpoint", None),
        "device": Own("where the checkpoint is loaded", "cpu"),
        "out": Own("None: print only", None),
        "as_json": Own("output format", False),
    },
    "plot-run": {
        "out": Own("None: RUN/plots", None),
        "as_json": Own("output format", False),
    },
    "transcribe": {
        "source_lang": Own("None: each example's own", None),
        "target_lang": Own("None: each example's own", None),
        "task": Own("None: each example's own", None),
        "pnc": Own("None: each example's own", None),
        "batch_size": Param(transcribe, "batch_size"),
        "strategy": Field(DecodingOptions, "strategy"),
        "beam_size": Field(DecodingOptions, "beam_size"),
        "length_penalty": Field(DecodingOptions, "length_penalty"),
        "decoding": Field(DecodingOptions, "cache"),
        "max_generation_delta": Field(DecodingOptions, "max_generation_delta"),
        "ctc_weight": Field(DecodingOptions, "ctc_weight"),
        "device": Own("where the checkpoint is loaded", "cpu"),
        "out": Own("None: stdout", None),
    },
    "bench-rtfx": {
        "presets": REQUIRED,
        "manifest": REQUIRED,
        "batch_size": Field(RtfxConfig, "batch_size"),
        "decoding": Field(RtfxConfig, "options.cache"),
        "dtype": Field(RtfxConfig, "dtype"),
        "device": Field(RtfxConfig, "device"),
        "threads": Own("None: torch's default", None),
        "forced_length": Field(RtfxConfig, "forced_length"),
        "tokenizer": Own("tokenizer folder", None),
        "repeats": Field(RtfxConfig, "repeats"),
        "seed": Param(build_timing_model, "seed"),
        "keep_freed_memory": Own("glibc malloc tuning", True),
        "as_json": Own("output format", False),
    },
    "oomptimize": {
        "model": REQUIRED,
        "plan": REQUIRED,
        "out": REQUIRED,
        "probe": Field(OomptimizeConfig, "probe"),
        "memory_budget": Own("None: the cuda probe's --memory-fraction", None),
        "memory_fraction": Field(OomptimizeConfig, "memory_fraction"),
        "dtype": Field(StepConfig, "precision"),
        "tolerance": Field(SearchConfig, "tolerance"),
        "margin": Field(SearchConfig, "margin"),
        "target": Field(SimulateConfig, "target"),
        "allocator": Field(SimulateConfig, "allocator"),
        "workers": Field(SimulateConfig, "workers"),
        "tokens_per_second": Field(OomptimizeConfig, "tokens_per_second"),
        "max_batch_size": Field(SearchConfig, "max_batch_size"),
        "plot": Own("output PNG", None),
    },
}


def _choice(annotation: Any) -> Any:
    """The Literal inside ``annotation`` (through Annotated and ``| None``), else None."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        annotation = inner[0] if len(inner) == 1 else annotation
    return annotation if get_origin(annotation) is Literal else None


def _commands() -> Iterator[tuple[str, Any]]:
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))
        else:
            yield " ".join(path), command

    yield from walk(typer.main.get_command(app), ())


COMMANDS = dict(_commands())


def test_every_command_and_option_is_listed() -> None:
    assert set(COMMANDS) == set(OPTIONS)
    for name, command in COMMANDS.items():
        options = {p.name for p in command.params if p.param_type_name == "option"}
        assert options == set(OPTIONS[name]), name


@pytest.mark.parametrize(
    ("command", "option"), [(c, o) for c, opts in OPTIONS.items() for o in opts]
)
def test_option_default_and_choices_come_from_the_config(command: str, option: str) -> None:
    source = OPTIONS[command][option]
    click_command = COMMANDS[command]
    (param,) = (p for p in click_command.params if p.name == option)
    default = param.default
    if source is not REQUIRED:
        expected = source.default()
        assert default == expected, f"{command} --{option}: {default!r} != {expected!r}"
    hints = get_type_hints(inspect.unwrap(click_command.callback), include_extras=True)
    offered = _choice(hints[option])
    owned = source.literal()
    if owned is not None:
        assert offered == owned, f"{command} --{option} offers {offered}, the config {owned}"


def test_beam_settings_need_the_beam_strategy(tmp_path) -> None:
    """Refused before the checkpoint is read: only options the user gave are checked."""
    result = CliRunner().invoke(
        app, ["transcribe", str(tmp_path / "none.pt"), "x.wav", "--beam-size", "2"]
    )
    assert result.exit_code == 2 and "--beam-size apply to --strategy beam" in result.output


def test_help_does_not_import_torch() -> None:
    """The command line reads its defaults from configs that stay free of torch."""
    code = "import sys, padless.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
