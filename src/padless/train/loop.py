"""The training loop: one process, or one per GPU/CPU rank under torchrun (DDP).

One process (CPU, or one GPU)::

    padless train configs/demo-tiny.yaml train.max_steps=200 --run-dir runs/demo

Data-parallel on one machine (gloo on CPU, NCCL on GPU), same arguments::

    torchrun --nproc-per-node 2 -m padless.train configs/demo-tiny.yaml --run-dir runs/demo

Several machines (run on each node; torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*)::

    torchrun --nnodes 4 --nproc-per-node 8 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:29500 --rdzv-id RUN_ID \\
        -m padless.train configs/canary-1b-flash.yaml --run-dir /shared/runs/flash

Continue a stopped run exactly (same batches, same losses): ``--resume RUN`` or the default
``resume: auto`` with the same ``--run-dir``. Any ``dotted.key=value`` after the config file
overrides it (see `padless.train.config`).

What a step does, in order:

1. fetch ``train.accumulate`` micro-batches from the DataLoader (its workers read the audio of
   what the rank's `DynamicBucketingSampler` chose);
2. agree with the other ranks over a host-side (gloo) all-reduce of two flags, "my data is
   bad" and "stop" (SIGTERM/SIGUSR1 or ``max_time``): bad data stops every rank with the
   example named, a stop saves a checkpoint first. No rank waits forever for another;
3. forward/backward (bf16 autocast on CUDA), gradients all-reduced by DDP on the last
   micro-batch;
4. a non-finite loss on any rank (all-reduced on the device) or a non-finite gradient norm
   skips the update on the device: fused AdamW's ``found_inf``, as `torch.amp.GradScaler` uses;
5. clip, update, set the learning rate of the inverse square-root schedule;
6. record the metrics; every ``logging.interval`` steps write them (the only host sync on
   GPU: `padless.train.metrics`), checkpoint and validate on their own intervals.

Host syncs on GPU: the metrics flush, a checkpoint and a validation; nothing else per step
(batch statistics come from host-side lengths; the skip decision stays on the device).

Exact resume rests on the sampler's own state taken at the consumed step count (the batches
the DataLoader prefetched are rewound), not on torchdata's ``StatefulDataLoader``: the dataset
is stateless, so the sampler state is all there is to restore (docs/training.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from padless.data.dataset import SpeechBatch, SpeechDataset, SpeechDatasetConfig
from padless.data.errors import AudioError, PadlessInputError
from padless.data.example import Example
from padless.data.tokenizer import CanaryTokenizer
from padless.model import AEDModel, ModelConfig, load_checkpoint, save_checkpoint
from padless.model.checkpoint import get_config
from padless.sampling.lengths import ExampleLengths
from padless.train import data as train_data
from padless.train import state as ckpt
from padless.train.config import ModelSection, TrainingConfig
from padless.train.metrics import (
    MetricsLog,
    append_lines,
    batch_shape_stats,
    peak_memory_mb,
    truncate_after,
)
from padless.train.yaml_config import write_config

log = logging.getLogger("padless.train")


class BadDataError(PadlessInputError):
    """Unreadable training audio under ``on_bad_audio: error`` (raised on every rank)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, "audio")


class TrainingError(RuntimeError):
    """The run cannot go on (e.g. too many non-finite steps in a row)."""


class SkippableAdamW(torch.optim.AdamW):
    """Fused AdamW that skips its update, on the device, while ``found_inf`` is 1.

    PyTorch's fused optimizers read ``found_inf`` (and ``grad_scale``) from the optimizer
    when stepping; `torch.amp.GradScaler` sets them the same way. Skipping also keeps the
    optimizer's step count."""

    found_inf: torch.Tensor | None = None


class _LossModule(nn.Module):
    """The model's loss as a module forward, so DDP sees the forward it must hook."""

    def __init__(self, model: AEDModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: SpeechBatch) -> torch.Tensor:
        return self.model.loss(batch)


# ---------------------------------------------------------------------- processes


@dataclass
class Ranks:
    """This process's place in the job, and the groups it talks over."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    #: Host-side group (gloo) for flags and Python objects; the default group on CPU.
    control: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def agree(self, *flags: bool) -> list[bool]:
        """Each flag OR-ed over the ranks (a CPU all-reduce: no device sync)."""
        if not self.distributed:
            return list(flags)
        t = torch.tensor([int(f) for f in flags], dtype=torch.int32)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self.control)
        return [bool(v) for v in t.tolist()]

    def all_gather(self, obj: Any) -> list[Any]:
        if not self.distributed:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.control)
        return out

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.control)


def setup_ranks(device_choice: str) -> Ranks:
    """Join the torchrun job if there is one (its env:// variables), else a single process."""
    want_cuda = device_choice == "cuda" or (device_choice == "auto" and torch.cuda.is_available())
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local) if want_cuda else torch.device("cpu")
    if want_cuda:
        torch.cuda.set_device(device)
    if world == 1:
        return Ranks(device=device)
    backend = "nccl" if want_cuda else "gloo"
    dist.init_process_group(backend, timeout=timedelta(minutes=30))
    # Flags and Python objects travel on a gloo group so that agreeing never waits for the GPU.
    control = dist.new_group(backend="gloo") if backend == "nccl" else None
    return Ranks(rank, world, local, device, control)


class StopSignal:
    """SIGTERM / SIGUSR1 ask for a checkpoint and a clean stop at the next step."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous = {
            s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGUSR1)
        }

    def _handle(self, signum: int, frame: Any) -> None:
        self.received = signum

    def restore(self) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)


# ---------------------------------------------------------------------- model


def build_model(config: TrainingConfig, tokenizer: CanaryTokenizer) -> AEDModel:
    """The preset (vocabulary resized to the tokenizer) or checkpoint of ``model.init``, with
    SpecAugment as configured and the encoder optionally initialised from another model."""
    source = config.model.init
    if Path(source).is_file():
        model_config(config.model)  # refuses overrides of a checkpoint
        model = load_checkpoint(source).model
    else:
        model = AEDModel(model_config(config.model).with_vocab_size(tokenizer.vocab_size))
    if model.config.vocab_size != tokenizer.vocab_size:
        raise PadlessInputError(
            f"model.init {source}: vocab_size {model.config.vocab_size} != the tokenizer's "
            f"{tokenizer.vocab_size}",
            "config",
        )
    if not config.model.spec_augment:
        from dataclasses import replace

        from padless.model.config import SpecAugmentConfig

        off = SpecAugmentConfig(freq_masks=0, time_masks=0)
        model.config = replace(model.config, spec_augment=off)
    if config.model.encoder_init is not None:
        grow_encoder(model, config.model.encoder_init)
    return model


def model_config(section: ModelSection) -> ModelConfig:
    """The architecture ``model.init`` names: a checkpoint's own config, or a preset with
    ``model.overrides`` merged in (the vocabulary is the preset's until resized to a
    tokenizer). What the batch-size search must plan for is what this returns."""
    base = get_config(section.init)
    if Path(section.init).is_file():
        if section.overrides:
            raise PadlessInputError(
                f"model.overrides apply to a preset, not to the checkpoint {section.init}",
                "config",
            )
        return base
    return _with_overrides(base, section.overrides)


def _with_overrides(base: ModelConfig, overrides: dict[str, Any]) -> ModelConfig:
    """``base`` with the nested ``model.overrides`` merged into its fields; an unknown field or
    an invalid combination is a config error naming it."""

    def merge(into: dict[str, Any], changes: dict[str, Any], where: str) -> dict[str, Any]:
        out = dict(into)
        for key, value in changes.items():
            if isinstance(value, dict):
                if not isinstance(out.get(key), dict):
                    raise PadlessInputError(
                        f"model.overrides.{where}{key}: not a section of the model config",
                        "config",
                    )
                out[key] = merge(out[key], value, f"{where}{key}.")
            else:
                out[key] = value
        return out

    if not overrides:
        return base
    try:
        return ModelConfig.from_dict(merge(base.to_dict(), overrides, ""))
    except (TypeError, ValueError) as err:
        raise PadlessInputError(f"model.overrides: {err}", "config") from err


def grow_encoder(model: AEDModel, checkpoint: str) -> int:
    """Copy the features, subsampling and the first encoder layers from ``checkpoint``; layers
    the source lacks keep their random initialisation. Returns the layers copied."""
    source = load_checkpoint(checkpoint).model
    src, dst = source.encoder, model.encoder
    if src.config.d_model != dst.config.d_model or source.config.features != model.config.features:
        raise PadlessInputError(
            f"model.encoder_init {checkpoint}: encoder width/features differ from the model's",
            "config",
        )
    if len(src.layers) > len(dst.layers):
        raise PadlessInputError(
            f"model.encoder_init {checkpoint}: {len(src.layers)} layers > the model's "
            f"{len(dst.layers)}",
            "config",
        )
    with torch.no_grad():
        dst.subsampling.load_state_dict(src.subsampling.state_dict())
        for i, layer in enumerate(src.layers):
            dst.layers[i].load_state_dict(layer.state_dict())
    log.info("encoder: %d of %d layers from %s", len(src.layers), len(dst.layers), checkpoint)
    return len(src.layers)


# ---------------------------------------------------------------------- the run


@dataclass
class Progress:
    """The counters a checkpoint must restore besides model, optimizer, sampler and RNG."""

    step: int = 0  # optimizer steps done
    consumed: int = 0  # micro-batches taken from the current sampler iteration
    bad_in_row: int = 0  # consecutive non-finite steps (as of the last metrics flush)
    skipped_total: int = 0  # examples dropped for unreadable audio
    best: dict[str, Any] | None = None  # {"metric": name, "value": v, "step": s}


def train(config: TrainingConfig, run_dir: str | Path) -> Progress:
    """Run (or continue) training in ``run_dir``; returns the final counters."""
    run_dir = Path(run_dir)
    cfg = config
    ranks = setup_ranks(cfg.train.device)
    stop = StopSignal()
    try:
        return _train(cfg, run_dir, ranks, stop)
    finally:
        stop.restore()
        if ranks.distributed:
            dist.destroy_process_group()


def _train(cfg: TrainingConfig, run_dir: Path, ranks: Ranks, stop: StopSignal) -> Progress:
    started = time.monotonic()
    device = ranks.device
    if cfg.train.threads is not None:
        torch.set_num_threads(cfg.train.threads)
    if cfg.train.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    resume_from = ckpt.resolve_resume(cfg.resume, run_dir)

    # -- run folder, config, plan (rank 0 writes; the others wait, then read)
    tokenizer = CanaryTokenizer.load(cfg.data.tokenizer)
    lengths = ExampleLengths(tokenizer)
    if ranks.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_config(cfg, run_dir / "config.yaml")
    load_plan = train_data.estimate_or_load_plan(cfg, run_dir, lengths, ranks.is_main, resume_from)
    metrics_path = run_dir / "metrics.jsonl"
    dump_path = Path(cfg.debug.dump_batches) if cfg.debug.dump_batches else None
    saved: dict[str, Any] | None = None
    if resume_from is not None:
        saved = torch.load(resume_from, map_location="cpu", mmap=True, weights_only=True)
    if ranks.is_main:
        # Logs keep the steps up to the checkpoint (the later ones are logged again), or
        # nothing from an earlier start in this folder that never reached a checkpoint.
        last = int(saved["extra"]["train"]["step"]) if saved is not None else 0
        for log_file in (metrics_path, run_dir / "validation.jsonl", dump_path):
            if log_file is not None:
                truncate_after(log_file, last)
    ranks.barrier()
    plan = load_plan()

    # -- model, optimizer (same initial weights everywhere: seeded alike, then DDP broadcasts)
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg, tokenizer).to(device).train()
    optimizer = SkippableAdamW(
        model.parameters(),
        lr=cfg.optim.lr,
        betas=cfg.optim.betas,
        weight_decay=cfg.optim.weight_decay,
        eps=cfg.optim.eps,
        fused=True,
    )
    loss_module: nn.Module = _LossModule(model)
    if ranks.distributed:
        loss_module = DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None
        )

    # -- data
    sampler = train_data.build_sampler(
        cfg, plan, lengths, rank=ranks.rank, world_size=ranks.world_size
    )
    progress = Progress()
    if saved is not None:
        progress = _restore(saved, model, optimizer, sampler, ranks)
        log.info("resumed from %s at step %d", resume_from, progress.step)
    else:
        # Each rank its own dropout/SpecAugment draws, reproducibly.
        torch.manual_seed(cfg.train.seed + 1000 * (ranks.rank + 1))
    loader = train_data.build_loader(
        cfg,
        sampler,
        tokenizer,
        pin_memory=device.type == "cuda",
        ctc_units=model.config.loss.ctc_units if model.ctc_head is not None else None,
    )
    batches = _batches(loader, sampler, progress)
    dev = train_data.dev_examples(cfg, lengths) if cfg.validation.every_steps else []
    metrics = MetricsLog(
        metrics_path,
        ranks.rank,
        tensorboard_dir=run_dir / "tensorboard" if cfg.logging.tensorboard else None,
        progress_total=cfg.train.max_steps if cfg.logging.progress else None,
    )
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=cfg.train.bf16 and device.type == "cuda"
    )
    params = [p for p in model.parameters() if p.requires_grad]
    accumulate = cfg.train.accumulate
    sample_rate = model.config.features.sample_rate

    def checkpoint(reason: str) -> None:
        _flush(metrics, progress, cfg)
        _save(cfg, run_dir, ranks, model, optimizer, sampler, progress, reason)

    try:
        while progress.step < cfg.train.max_steps:
            t_step = time.perf_counter()

            # 1. data (the only wait on the workers), 2. agreement across ranks
            micro: list[train_data.TrainBatch] = []
            error: str | None = None
            for _ in range(accumulate):
                try:
                    micro.append(next(batches))
                except AudioError as err:
                    error = f"example {err.example_id!r} ({err.source}): {err.reason}"
                    break
            data_wait = time.perf_counter() - t_step
            time_up = (
                cfg.train.max_time is not None and time.monotonic() - started >= cfg.train.max_time
            )
            bad_data, stopping = ranks.agree(
                error is not None, stop.received is not None or time_up
            )
            if bad_data:
                _raise_bad_data(ranks, error)
            if stopping:  # the fetched micro-batches stay unconsumed: the sampler rewinds them
                why = "max_time" if time_up else f"signal {stop.received}"
                checkpoint(why)
                log.info("stopped at step %d (%s)", progress.step, why)
                return progress
            lr = cfg.schedule.lr(cfg.optim.lr, progress.step + 1)

            # 3. forward/backward; DDP all-reduces gradients on the last micro-batch only
            loss_sum = torch.zeros((), device=device)
            ctc_dropped = torch.zeros((), dtype=torch.int64, device=device)
            for k, mb in enumerate(micro):
                batch = mb.batch.to(device, non_blocking=True)
                ctc_dropped += model.ctc_infeasible(batch)
                sync = k == len(micro) - 1 or not isinstance(loss_module, DistributedDataParallel)
                with contextlib.nullcontext() if sync else loss_module.no_sync():  # type: ignore[operator]
                    with autocast:
                        loss = loss_module(batch)
                    (loss * (mb.weight / len(micro))).backward()
                loss_sum += loss.detach().float() * mb.weight
            mean_loss = loss_sum / max(sum(mb.weight for mb in micro), 1.0)

            # 4. a non-finite loss anywhere or gradient skips the update (on the device)
            bad = (~torch.isfinite(mean_loss)).float()
            if ranks.distributed:
                dist.all_reduce(bad, op=dist.ReduceOp.MAX)  # device collective, no host sync
            max_norm = cfg.train.grad_clip if cfg.train.grad_clip is not None else float("inf")
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
            optimizer.found_inf = torch.maximum(bad, (~torch.isfinite(grad_norm)).float())

            # 5. update
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            progress.consumed += len(micro)

            # 6. metrics, debug dump, checkpoint, validation
            skipped = sum(len(mb.skipped) for mb in micro)
            for mb in micro:
                for message in mb.skipped:
                    log.warning("rank %d step %d: skipped %s", ranks.rank, progress.step, message)
            progress.skipped_total += skipped
            step_time = time.perf_counter() - t_step
            metrics.record(
                {
                    "step": progress.step,
                    "rank": ranks.rank,
                    "loss": mean_loss,
                    "lr": lr,
                    "bucket": micro[0].bucket,
                    **({"buckets": [mb.bucket for mb in micro]} if accumulate > 1 else {}),
                    **batch_shape_stats([mb.batch for mb in micro if mb.weight], sample_rate),
                    "step_time_s": step_time,
                    "data_wait_s": data_wait,
                    "peak_mem_mb": peak_memory_mb(device),
                    "grad_norm": grad_norm,
                    "bad_step": optimizer.found_inf,
                    "ctc_dropped": ctc_dropped,  # utterances whose CTC term is 0 (infeasible)
                    "skipped": skipped,
                    "skipped_total": progress.skipped_total,
                    "epoch": sampler.epoch,
                    "time_s": time.monotonic() - started,
                }
            )
            if dump_path is not None:
                ids = [i for mb in micro if mb.weight for i in mb.batch.ids]
                line = {"step": progress.step, "rank": ranks.rank, "bucket": micro[0].bucket}
                append_lines(dump_path, [line | {"ids": ids}])
            if progress.step % cfg.logging.interval == 0:
                _flush(metrics, progress, cfg)
            if dev and progress.step % cfg.validation.every_steps == 0:  # before a checkpoint
                _validate(cfg, run_dir, ranks, model, tokenizer, dev, progress, metrics, autocast)
            every = cfg.checkpoint.every_steps
            if every and progress.step % every == 0 and progress.step < cfg.train.max_steps:
                checkpoint("interval")  # holds the best metric up to this step's validation
        checkpoint("end")
        return progress
    finally:
        batches.close()
        train_data.stop_workers(loader)
        metrics.close()
        sampler.close()


def _batches(
    loader: torch.utils.data.DataLoader[Any], sampler: Any, progress: Progress
) -> Generator[train_data.TrainBatch, None, None]:
    """Micro-batches for ever: a finite sampler starts its next epoch when one ends (every
    rank ends its epoch at the same step: the sampler balances them)."""
    while True:
        got = False
        for item in loader:
            got = True
            yield item
        if not got:
            raise TrainingError("the sampler yielded no batch for a whole epoch (all filtered?)")
        sampler.set_epoch(sampler.epoch + 1)
        progress.consumed = 0


def _raise_bad_data(ranks: Ranks, error: str | None) -> None:
    """Every rank raises the same error, naming each bad example (gathered over gloo)."""
    messages = [f"rank {r}: {m}" for r, m in enumerate(ranks.all_gather(error)) if m is not None]
    raise BadDataError(
        "unreadable training audio (train.on_bad_audio: error): " + "; ".join(messages)
    )


def _flush(metrics: MetricsLog, progress: Progress, cfg: TrainingConfig) -> None:
    for record in metrics.flush():
        progress.bad_in_row = progress.bad_in_row + 1 if record["bad_step"] else 0
        if progress.bad_in_row >= cfg.train.max_bad_steps:
            # The flag is all-reduced, so every rank stops at this same step.
            raise TrainingError(
                f"{progress.bad_in_row} steps in a row had a non-finite loss or gradient "
                f"(train.max_bad_steps={cfg.train.max_bad_steps}), last at step {record['step']}: "
                "lower optim.lr, raise schedule.warmup_steps or check the data"
            )


# ---------------------------------------------------------------------- checkpoints


def _save(
    cfg: TrainingConfig,
    run_dir: Path,
    ranks: Ranks,
    model: AEDModel,
    optimizer: torch.optim.Optimizer,
    sampler: Any,
    progress: Progress,
    reason: str,
) -> None:
    """Rank 0 writes the checkpoint (atomically: tmp file + rename) with every rank's sampler
    and RNG state; the others wait at a barrier until the file is complete."""
    sampler_state = sampler.state_dict(consumed_steps=progress.consumed)
    mine = {
        "sampler": sampler_state,
        # A finished epoch resumes at the start of the next one, where nothing is consumed yet.
        "consumed": 0 if sampler_state.get("fresh") else progress.consumed,
        "rng": ckpt.rng_state(),
    }
    per_rank = ranks.all_gather(mine)
    if ranks.is_main:
        state = {
            "step": progress.step,
            "world_size": ranks.world_size,
            "reason": reason,
            "optimizer": optimizer.state_dict(),
            "schedule": {"step": progress.step, "warmup_steps": cfg.schedule.warmup_steps},
            "bad_in_row": progress.bad_in_row,
            "skipped_total": progress.skipped_total,
            "best": progress.best,
            "ranks": per_rank,
        }
        path = ckpt.step_path(run_dir, progress.step)
        save_checkpoint(path, model, tokenizer=cfg.data.tokenizer, extra={"train": state})
        ckpt.prune(run_dir, cfg.checkpoint.keep_last)
        log.info("checkpoint (%s) -> %s", reason, path)
    ranks.barrier()


def _restore(
    saved: dict[str, Any],
    model: AEDModel,
    optimizer: torch.optim.Optimizer,
    sampler: Any,
    ranks: Ranks,
) -> Progress:
    state = saved["extra"]["train"]
    if state["world_size"] != ranks.world_size:
        raise PadlessInputError(
            f"the checkpoint was written by {state['world_size']} ranks, this job has "
            f"{ranks.world_size}: resume with the same number of processes",
            "resume",
        )
    model.load_state_dict(saved["state_dict"])
    optimizer.load_state_dict(state["optimizer"])
    mine = state["ranks"][ranks.rank]
    sampler.load_state_dict(mine["sampler"])
    ckpt.set_rng_state(mine["rng"])
    return Progress(
        step=int(state["step"]),
        consumed=int(mine["consumed"]),
        bad_in_row=int(state["bad_in_row"]),
        skipped_total=int(state["skipped_total"]),
        best=state["best"],
    )


# ---------------------------------------------------------------------- validation


def _validate(
    cfg: TrainingConfig,
    run_dir: Path,
    ranks: Ranks,
    model: AEDModel,
    tokenizer: CanaryTokenizer,
    dev: list[Example],
    progress: Progress,
    metrics: MetricsLog,
    autocast: torch.autocast,
) -> None:
    """Dev loss (per target token) and, with ``validation.decode``, WER/BLEU: each rank works
    on its share of the examples, rank 0 scores; RUN/validation.jsonl gets one line, and
    best.pt the model when ``checkpoint.best_metric`` improves.

    Eval mode draws no random numbers (no dropout, dither or SpecAugment; decoding is
    deterministic), so the training RNG streams, and with them an exact resume, are untouched.
    """
    mine = dev[ranks.rank :: ranks.world_size]
    result: dict[str, Any] = {"step": progress.step, "examples": len(dev)}
    result["dev_loss"] = _dev_loss(cfg, ranks, model, tokenizer, mine, autocast)
    if cfg.validation.decode is not None:
        from padless.eval.evaluate import decode_hypotheses, score_hypotheses

        with autocast:
            hyps = decode_hypotheses(model, tokenizer, mine, config=cfg.validation.decode)
        gathered = ranks.all_gather(hyps)  # host objects over gloo
        scores = None
        if ranks.is_main:
            scored = score_hypotheses([h for part in gathered for h in part])
            scored.save(run_dir / "validation" / f"step-{progress.step:08d}")
            scores = {"wer_avg": scored.wer_avg, "bleu_avg": scored.bleu_avg}
            scores |= {f"wer_{k}": v for k, v in scored.wer.items()}
            scores |= {f"bleu_{k}": v for k, v in scored.bleu.items()}
        result |= ranks.all_gather(scores)[0]  # every rank keeps the same best
    if ranks.is_main:
        append_lines(run_dir / "validation.jsonl", [result])
        for key in ("dev_loss", "wer_avg", "bleu_avg"):
            if result.get(key) is not None:
                metrics.scalar(f"dev/{key}", result[key], progress.step)
        shown = ", ".join(
            f"{k} {result[k]:.4g}"
            for k in ("dev_loss", "wer_avg", "bleu_avg")
            if result.get(k) is not None
        )
        log.info("step %d: %s", progress.step, shown)
    metric = cfg.checkpoint.best_metric
    value = result.get(metric)
    if value is None or not cfg.checkpoint.keep_best:
        return
    higher = metric == "bleu_avg"
    best = progress.best
    if best is None or (value > best["value"] if higher else value < best["value"]):
        progress.best = {"metric": metric, "value": value, "step": progress.step}
        if ranks.is_main:
            extra = {"best": progress.best}
            save_checkpoint(run_dir / ckpt.BEST, model, tokenizer=cfg.data.tokenizer, extra=extra)


def _dev_loss(
    cfg: TrainingConfig,
    ranks: Ranks,
    model: AEDModel,
    tokenizer: CanaryTokenizer,
    mine: list[Example],
    autocast: torch.autocast,
) -> float:
    """Mean cross-entropy per target token over every rank's share (summed over ranks)."""
    totals = loss_sums(model, tokenizer, mine, cfg.validation.batch_size, ranks.device, autocast)
    if ranks.distributed:
        dist.all_reduce(totals)
    return float(totals[0] / totals[1].clamp(min=1))  # host sync


def loss_sums(
    model: AEDModel,
    tokenizer: CanaryTokenizer,
    examples: list[Example],
    batch_size: int,
    device: torch.device,
    autocast: torch.autocast,
) -> torch.Tensor:
    """``(loss x tokens, tokens)`` summed over ``examples`` in eval mode, float64 on ``device``:
    a token-weighted mean that shards can add up before dividing."""
    dataset = SpeechDataset(tokenizer, SpeechDatasetConfig(include_targets=True))
    totals = torch.zeros(2, dtype=torch.float64, device=device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), autocast:
        for start in range(0, len(examples), batch_size):
            batch = dataset[examples[start : start + batch_size]]
            # The tokens the loss averages over (see AEDModel.loss), counted on the host.
            first = (
                batch.prompt_lens
                if model.config.loss.mask_prompt
                else torch.ones_like(batch.prompt_lens)
            )
            counted = float((batch.token_lens - first).sum())
            loss = model.loss(batch.to(device)).double()
            totals[0] += loss * counted
            totals[1] += counted
    model.train(was_training)
    return totals


def run(
    config_path: str | None, overrides: list[str], run_dir: str, resume: str | None
) -> Progress:
    """What both commands do: load the config (``--resume`` sets ``resume``), train, and log
    to the console (rank 0 at INFO, the other ranks at WARNING)."""
    from padless.train.config import load_training_config

    if resume is not None:
        overrides = [*overrides, f"resume={resume}"]
    config = load_training_config(config_path, overrides)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(message)s",
    )
    return train(config, run_dir)
