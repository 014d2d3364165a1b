"""The training config: one frozen dataclass per section, composed into `TrainingConfig`.

A YAML file sets any part of it (`padless.train.yaml_config`); every default lives here, once.
The sampler section *is* `padless.sampling.config.SamplerConfig`, the plan estimate a
`PlanConfig` and the filters a `FilterConfig`: the training config adds only what is new
(batch policy choice, model source, optimiser, schedule, loop, checkpoints, logging,
validation, debugging). Keys that scripts rely on and that stay stable: ``data.train``,
``data.dev``, ``data.tokenizer``, ``train.max_steps``, ``train.seed``,
``checkpoint.every_steps``, ``debug.dump_batches``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from padless.eval.config import EvalConfig
from padless.sampling.config import PlanConfig, SamplerConfig
from padless.sampling.filters import FilterConfig

#: Paths or URLs of manifests / shard folders: one, or a list.
Sources = str | tuple[str, ...]


def as_list(sources: Sources | None) -> list[str]:
    if sources is None:
        return []
    return [sources] if isinstance(sources, str) else list(sources)


@dataclass(frozen=True)
class DataConfig:
    """What to train on and how its examples are bucketed."""

    #: Training manifests or shard folders (paths or URLs), one or a list. Required.
    train: Sources = ()
    #: Development set for validation (None: no validation).
    dev: Sources | None = None
    #: Tokenizer folder (``padless tokenizer train`` / ``padless demo`` write one). Required.
    tokenizer: str = ""
    #: A saved bucket plan (``padless plan``). None: estimate one from the training data with
    #: ``estimate`` and ``filters`` at start-up, on rank 0, saved as RUN/plan.json.
    plan: str | None = None
    #: How the plan is estimated when ``plan`` is None.
    estimate: PlanConfig = field(default_factory=PlanConfig)
    #: Filters applied when estimating the plan (TPS, duration, tokens); a saved plan carries
    #: its own. ``sampler.filters`` overrides either.
    filters: FilterConfig = field(default_factory=FilterConfig)
    #: Examples read to estimate the plan.
    estimate_sample_size: int = 100_000
    #: DataLoader worker processes reading audio (0: in the training process).
    num_workers: int = 2
    #: Batches each worker prepares ahead. The sampler remembers ``sampler.resume_lookback``
    #: batches; prefetched ones beyond what the loop consumed are rewound at a checkpoint.
    prefetch_factor: int = 2

    def __post_init__(self) -> None:
        if self.num_workers < 0 or self.prefetch_factor < 1:
            raise ValueError("num_workers must be >= 0 and prefetch_factor >= 1")


# ---------------------------------------------------------------------- batch policies


@dataclass(frozen=True)
class DurationBatches:
    """A budget of padded seconds per batch (`padless.sampling.policies.DurationBudget`)."""

    kind: ClassVar[str] = "duration"
    #: Padded seconds per batch.
    max_duration: float = 360.0
    #: Seconds at which an example's cost doubles (attention's quadratic memory); None: linear.
    quadratic_duration: float | None = None


@dataclass(frozen=True)
class FixedBatches:
    """The same number of examples in every batch (`FixedBatchSize`), the paper's baseline."""

    kind: ClassVar[str] = "fixed"
    batch_size: int = 32


@dataclass(frozen=True)
class TableBatches:
    """One batch size per bucket from a table (``padless oomptimize``; `BucketBatchSizes`),
    checked against the plan."""

    kind: ClassVar[str] = "table"
    #: The batch-size table (JSON). Required.
    path: str = ""


BatchConfig = DurationBatches | FixedBatches | TableBatches


# ---------------------------------------------------------------------- model and optimiser


@dataclass(frozen=True)
class ModelSection:
    """Which model is trained."""

    #: A preset name (``padless model info`` lists them; its vocabulary is resized to the
    #: tokenizer's) or a padless checkpoint to continue from (weights and architecture).
    init: str = "tiny-canary-1b-flash"
    #: Initialise the features, the encoder's subsampling and its first layers from this
    #: checkpoint's encoder; layers above the ones it has stay randomly initialised (the paper
    #: grows a 24-layer encoder to 32 this way). Widths must match.
    encoder_init: str | None = None
    #: SpecAugment during training (with the model config's mask settings).
    spec_augment: bool = True
    #: Changes to the preset's `ModelConfig`, nested like its ``to_dict()``:
    #: ``{encoder: {n_layers: 6}, loss: {ctc_weight: 0.3}}`` (on the command line
    #: ``model.overrides.loss.ctc_weight=0.3``). Presets only; a checkpoint keeps its own.
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimConfig:
    """AdamW (PyTorch's fused implementation)."""

    lr: float = 3e-4
    betas: tuple[float, float] = (0.9, 0.98)
    weight_decay: float = 1e-3
    eps: float = 1e-8


@dataclass(frozen=True)
class ScheduleConfig:
    """Inverse square-root schedule: linear warm-up to ``optim.lr`` over ``warmup_steps``,
    then ``lr * sqrt(warmup_steps / step)``."""

    warmup_steps: int = 2_500
    #: Floor of the learning rate.
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    def lr(self, peak: float, step: int) -> float:
        """The learning rate of optimizer step ``step`` (1-based)."""
        step = max(step, 1)
        w = self.warmup_steps
        factor = min(step / w, (w / step) ** 0.5) if w > 0 else 1.0
        return max(peak * factor, self.min_lr)


# ---------------------------------------------------------------------- the loop


@dataclass(frozen=True)
class LoopConfig:
    """The training loop (section ``train``)."""

    #: Optimizer steps to run (the step counter counts optimizer steps, not micro-batches).
    max_steps: int = 1000
    #: Seed of the model initialisation, dropout, SpecAugment and the data order (unless
    #: ``sampler.seed`` / the stream seed are set apart).
    seed: int = 0
    #: Clip the global gradient norm to this (None: no clipping).
    grad_clip: float | None = 1.0
    #: Micro-batches per optimizer step.
    accumulate: int = 1
    #: bf16 autocast on CUDA (ignored on CPU, which trains in float32).
    bf16: bool = True
    #: Stop with a checkpoint after this many wall-clock seconds (None: no limit).
    max_time: float | None = None
    #: Stop after this many consecutive steps with a non-finite loss or gradient (each one is
    #: skipped: no parameter update, counted in the metrics).
    max_bad_steps: int = 5
    #: Audio that cannot be read: "error" stops every rank with a message naming the example
    #: and file; "skip" drops the example from its batch, counts it and goes on.
    on_bad_audio: Literal["error", "skip"] = "error"
    #: "auto": CUDA when available, else CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    #: Deterministic algorithms (bitwise-repeatable runs on CPU; slower on GPU).
    deterministic: bool = False
    #: Intra-op threads per process on CPU (None: PyTorch's default).
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.max_steps < 0 or self.accumulate < 1 or self.max_bad_steps < 1:
            raise ValueError("max_steps must be >= 0, accumulate and max_bad_steps >= 1")


@dataclass(frozen=True)
class CheckpointConfig:
    """When checkpoints are written and which are kept (RUN/checkpoints/)."""

    #: Save every this many optimizer steps (0: only at the end, on a signal or at max_time).
    every_steps: int = 1000
    #: Keep the newest this many step checkpoints (older ones are deleted).
    keep_last: int = 3
    #: Also keep best.pt, the checkpoint with the best validation metric.
    keep_best: bool = True
    #: The validation metric that decides "best" (a key of RUN/validation.jsonl): dev_loss
    #: and wer_avg are lower-better, bleu_avg higher-better. The averages are over languages
    #: (directions) and need ``validation.decode``.
    best_metric: Literal["dev_loss", "wer_avg", "bleu_avg"] = "dev_loss"


@dataclass(frozen=True)
class LoggingConfig:
    """Metrics (RUN/metrics.jsonl, always), console progress and TensorBoard."""

    #: Steps between writes of metrics.jsonl and console updates. On GPU the per-step values
    #: stay on the device in between; the write is the only host sync of the loop.
    interval: int = 10
    #: TensorBoard event files in RUN/tensorboard when the package is installed.
    tensorboard: bool = True
    #: A progress bar on rank 0's console.
    progress: bool = True

    def __post_init__(self) -> None:
        if self.interval < 1:
            raise ValueError(f"interval must be >= 1, got {self.interval}")


@dataclass(frozen=True)
class ValidationConfig:
    """Validation on ``data.dev`` during training."""

    #: Validate every this many optimizer steps (0: never; also skipped without data.dev).
    every_steps: int = 0
    #: Dev examples per batch of the dev loss.
    batch_size: int = 16
    #: Use only the first this many dev examples (None: all).
    max_examples: int | None = None
    #: Also decode the dev set for WER (per ASR language) and BLEU (per AST direction), each
    #: rank its share, scored on rank 0 (`padless.eval`); null: dev loss only.
    decode: EvalConfig | None = field(default_factory=EvalConfig)


@dataclass(frozen=True)
class DebugConfig:
    """Debugging aids."""

    #: Every rank appends one JSON line per step here: ``{"step", "rank", "bucket", "ids"}``.
    dump_batches: str | None = None


@dataclass(frozen=True)
class TrainingConfig:
    """Everything one training run needs; RUN/config.yaml holds the resolved copy."""

    data: DataConfig = field(default_factory=DataConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    batch: BatchConfig = field(default_factory=DurationBatches)
    model: ModelSection = field(default_factory=ModelSection)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    #: "auto": continue from the run folder's newest checkpoint if it has one; a path: continue
    #: from that run folder or checkpoint file; None: start afresh (the run folder must not
    #: hold checkpoints yet).
    resume: str | None = "auto"

    def check(self) -> None:
        """Checks across sections (each section checks itself when built)."""
        if not as_list(self.data.train):
            raise ValueError("data.train: required (a manifest, shard folder or list of them)")
        if not self.data.tokenizer:
            raise ValueError("data.tokenizer: required (a tokenizer folder)")
        if isinstance(self.batch, TableBatches) and not self.batch.path:
            raise ValueError("batch.path: required with batch.kind: table")
        # Batches the sampler may have yielded beyond those consumed at a checkpoint: the
        # DataLoader's outstanding ones plus a step's micro-batches fetched before a stop.
        lookback = self.sampler.resume_lookback
        workers = self.data.num_workers
        ahead = (workers * self.data.prefetch_factor if workers else 0) + self.train.accumulate
        if lookback < ahead:
            raise ValueError(
                f"sampler.resume_lookback={lookback} is below the {ahead} batches the loop may "
                "have fetched ahead: checkpoints could not rewind to the consumed batch"
            )


#: Names the config modules import only for type checking, for the YAML loader.
NAMESPACE: dict[str, Any] = {"FilterConfig": FilterConfig, "PlanConfig": PlanConfig}


def load_training_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> TrainingConfig:
    """`TrainingConfig` from a YAML file plus ``key=value`` overrides (see `yaml_config`)."""
    from padless.train.yaml_config import ConfigError, load_config

    config = load_config(TrainingConfig, path, overrides, namespace=NAMESPACE)
    try:
        config.check()
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err
    return config
