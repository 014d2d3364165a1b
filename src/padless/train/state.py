"""Training checkpoints: files, RNG states and which checkpoints are kept.

A training checkpoint is a model checkpoint (`padless.model.save_checkpoint`: config, weights,
tokenizer; `padless transcribe` and `load_checkpoint` read it) whose ``extra["train"]`` holds
the rest of the run, plain data only so it loads with ``weights_only=True``::

    {"step": 1200, "world_size": 2,
     "optimizer": AdamW.state_dict(),
     "schedule": {"step": 1200, ...ScheduleConfig fields},
     "bad_in_row": 0, "skipped_total": 3, "best": {"metric": "dev_loss", "value": 2.1} | None,
     "ranks": [{"sampler": sampler.state_dict(consumed_steps=...), "consumed": n,
                "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...]}},
               ...one per rank]}

Files: RUN/checkpoints/step-00001200.pt (the newest ``keep_last`` are kept) and RUN/best.pt.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_DIR = "checkpoints"
BEST = "best.pt"
_STEP_FILE = re.compile(r"step-(\d+)\.pt")


def step_path(run_dir: Path, step: int) -> Path:
    return run_dir / CHECKPOINT_DIR / f"step-{step:08d}.pt"


def step_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of the run's step checkpoints, oldest first."""
    folder = run_dir / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STEP_FILE.fullmatch(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = step_checkpoints(run_dir)
    return found[-1][1] if found else None


def prune(run_dir: Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` step checkpoints; returns what was deleted."""
    found = step_checkpoints(run_dir)
    doomed = [p for _, p in found[: max(len(found) - keep_last, 0)]]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def resolve_resume(resume: str | None, run_dir: Path) -> Path | None:
    """The checkpoint to continue from: ``auto`` = the run's newest (or none), a folder = its
    newest, a file = itself; None = start afresh (refused when the run already has some)."""
    if resume is None:
        existing = latest_checkpoint(run_dir)
        if existing is not None:
            raise FileExistsError(
                f"{run_dir} already holds checkpoints ({existing.name}); resume with "
                "--resume / resume: auto, or use another --run-dir"
            )
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise FileNotFoundError(f"{path}: no checkpoints to resume from")
        return found
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such run folder or checkpoint")
    return path


def rng_state() -> dict[str, Any]:
    """The RNGs the loop draws from: torch's (dropout, dither, SpecAugment). The sampler's
    generators are seeded from its own state; nothing in the loop uses numpy's or Python's
    global RNG."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
