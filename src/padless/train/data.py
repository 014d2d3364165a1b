"""The training data path: plan and policy from the config, one sampler per rank, and the
DataLoader whose workers read audio.

The sampler runs in the training process (DataLoader ``sampler=``, ``batch_size=None``) and
yields ``(bucket, examples)``; a worker turns that into a `TrainBatch` with `SpeechDataset`.
Bad audio is handled in the worker: under ``on_bad_audio: skip`` the example is dropped from its
batch (never the whole batch, so every rank still takes the step) and reported in
``TrainBatch.skipped``; under ``error`` the `AudioError` reaches the loop, which stops every rank.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from padless.data.ctc import CtcUnits
from padless.data.dataset import SpeechBatch, SpeechDataset, SpeechDatasetConfig, collate
from padless.data.errors import AudioError
from padless.data.example import Example
from padless.data.tokenizer import CanaryTokenizer
from padless.sampling.estimate import plan_from_examples
from padless.sampling.lengths import ExampleLengths
from padless.sampling.plan import BucketPlan
from padless.sampling.policies import BatchPolicy, BucketBatchSizes, DurationBudget, FixedBatchSize
from padless.sampling.sampler import DynamicBucketingSampler
from padless.sampling.sources import manifest_sources
from padless.train.config import (
    BatchConfig,
    DurationBatches,
    FixedBatches,
    TableBatches,
    TrainingConfig,
    as_list,
)

log = logging.getLogger("padless.train")


@dataclass(frozen=True, eq=False)
class TrainBatch:
    """One micro-batch as the loop gets it: the tensors, its bucket, and what was skipped."""

    batch: SpeechBatch
    bucket: int
    #: Messages (example id and file) of examples dropped for unreadable audio.
    skipped: tuple[str, ...] = ()
    #: 0 for a stand-in batch (every example was unreadable): the rank still runs forward and
    #: backward, so the gradient all-reduce of DDP happens on every rank, but adds nothing.
    weight: float = 1.0

    def pin_memory(self) -> TrainBatch:  # DataLoader(pin_memory=True) calls this
        return replace(self, batch=self.batch.pin_memory())


class TrainDataset(torch.utils.data.Dataset[TrainBatch]):
    """``(bucket, examples)`` -> `TrainBatch`, in a DataLoader worker."""

    def __init__(self, dataset: SpeechDataset, skip_bad_audio: bool) -> None:
        self.dataset = dataset
        self.skip_bad_audio = skip_bad_audio

    def __getitem__(self, item: tuple[int, list[Example]]) -> TrainBatch:
        bucket, examples = item
        skipped: list[str] = []
        while True:
            try:
                return TrainBatch(self.dataset[examples], bucket, tuple(skipped))
            except AudioError as err:
                if not self.skip_bad_audio:
                    raise
                # Drop the bad example and build the batch again: re-reads the others, which
                # costs one batch of I/O per bad file and keeps the common path untouched.
                skipped.append(str(err))
                examples = [ex for ex in examples if ex.id != err.example_id]
                if not examples:
                    return TrainBatch(self._stand_in(), bucket, tuple(skipped), weight=0.0)

    def _stand_in(self) -> SpeechBatch:
        """0.1 s of silence with one target token: a finite loss to multiply by 0."""
        tok = self.dataset.tokenizer
        silence = np.zeros(1600, dtype=np.float32)
        return collate([silence], [[tok.eos_id, tok.eos_id]], [1], ["<none>"], tok.pad_id)


class TaggedSampler:
    """The sampler's batches with their bucket: ``(bucket, examples)`` (the DataLoader
    prefetches, so the bucket must travel with the batch rather than be read afterwards)."""

    def __init__(self, sampler: DynamicBucketingSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[tuple[int, list[Example]]]:
        for items in self.sampler:
            last = self.sampler.last_batch
            assert last is not None
            yield last.bucket, items


def build_policy(batch: BatchConfig, plan: BucketPlan) -> BatchPolicy:
    if isinstance(batch, DurationBatches):
        return DurationBudget(batch.max_duration, batch.quadratic_duration)
    if isinstance(batch, FixedBatches):
        return FixedBatchSize(batch.batch_size)
    assert isinstance(batch, TableBatches)
    return BucketBatchSizes.load(batch.path, plan)


def estimate_or_load_plan(
    config: TrainingConfig,
    run_dir: Path,
    lengths: ExampleLengths,
    is_main: bool,
    resume_from: Path | None = None,
) -> Callable[[], BucketPlan]:
    """Write RUN/plan.json on rank 0 if it is not there yet; returns a loader for every rank
    (call it after a barrier). A resumed run reads the plan it started with, also when it
    continues another run's checkpoint (RUN/checkpoints/step-N.pt: that run's plan.json)."""
    target = run_dir / "plan.json"
    if is_main and not target.exists():
        origin = resume_from.parent.parent / "plan.json" if resume_from is not None else None
        if origin is not None and origin.exists():
            BucketPlan.load(origin).save(target)
        elif config.data.plan is not None:
            BucketPlan.load(config.data.plan).save(target)
        else:
            from padless.data.stream import ExampleStream

            stream = ExampleStream(as_list(config.data.train), shuffle=False, require_text=False)
            plan, _, _ = plan_from_examples(
                stream,
                config.data.estimate,
                config.data.filters,
                lengths=lengths,
                sample_size=config.data.estimate_sample_size,
                seed=config.train.seed,
            )
            plan.save(target)
            log.info("estimated a plan of %d buckets -> %s", len(plan), target)
    return lambda: BucketPlan.load(target)


def build_sampler(
    config: TrainingConfig,
    plan: BucketPlan,
    lengths: ExampleLengths,
    *,
    rank: int,
    world_size: int,
) -> DynamicBucketingSampler:
    return DynamicBucketingSampler(
        manifest_sources(as_list(config.data.train), seed=config.train.seed),
        plan,
        build_policy(config.batch, plan),
        config.sampler,
        rank=rank,
        world_size=world_size,
        lengths=lengths,
    )


def build_loader(
    config: TrainingConfig,
    sampler: DynamicBucketingSampler,
    tokenizer: CanaryTokenizer,
    *,
    pin_memory: bool,
    ctc_units: CtcUnits | None = None,
) -> torch.utils.data.DataLoader[Any]:
    """``ctc_units``: batches carry CTC targets in these units too (the model has a CTC head)."""
    workers = config.data.num_workers
    speech_config = SpeechDatasetConfig(
        ctc_targets=ctc_units is not None, ctc_units=ctc_units or "tokens"
    )
    speech = SpeechDataset(tokenizer, speech_config)
    dataset = TrainDataset(speech, config.train.on_bad_audio == "skip")
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,  # the sampler yields whole batches
        sampler=TaggedSampler(sampler),  # yields (bucket, examples): one dataset index
        num_workers=workers,
        prefetch_factor=config.data.prefetch_factor if workers else None,
        persistent_workers=workers > 0,  # epochs of a finite sampler reuse the workers
        worker_init_fn=_ignore_stop_signals,
        pin_memory=pin_memory,
        # Its own generator: each new iterator draws a worker seed from it, which would
        # otherwise come from the global RNG and shift the dropout draws of a resumed run.
        generator=torch.Generator().manual_seed(config.train.seed),
    )


def _ignore_stop_signals(worker_id: int) -> None:
    """torchrun (like SLURM) sends SIGTERM to the whole process group. The training process
    answers it with a checkpoint and a clean stop, ending its workers itself; a worker killed
    first would make the DataLoader raise in the middle of that step instead."""
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)


def stop_workers(loader: torch.utils.data.DataLoader[Any]) -> None:
    """End the loader's worker processes now, through PyTorch's own shutdown (a sentinel on
    each worker's queue, then a join). They ignore SIGTERM (above), so the interpreter's exit
    handler, which terminates daemonic children and then joins them, would otherwise wait for
    persistent workers forever. Uses the loader's private iterator: the public API has no way
    to stop persistent workers before the loader is garbage-collected."""
    iterator = loader._iterator
    if iterator is not None:
        iterator._shutdown_workers()  # type: ignore[attr-defined]
        loader._iterator = None


def dev_examples(config: TrainingConfig, lengths: ExampleLengths) -> list[Example]:
    """The development examples (all ranks read the same list; each validates its share)."""
    if config.data.dev is None:
        return []
    from padless.data.stream import ExampleStream

    examples = list(ExampleStream(as_list(config.data.dev), shuffle=False).open(0))
    limit = config.validation.max_examples
    return examples[:limit] if limit is not None else examples
