"""Self-contained model checkpoints and config lookup by preset name or checkpoint path.

A checkpoint is one ``torch.save`` file holding plain data only (loadable with
``weights_only=True``)::

    {"format": "padless-aed/1", "config": ModelConfig.to_dict(), "state_dict": {...},
     "tokenizer_files": {"tokenizer.json": b"...", "en.model": b"...", ...} or None,
     "extra": {...}}

so `load_checkpoint(path)` rebuilds the model, and the tokenizer if one was saved with it,
from that file alone. ``extra`` is free for the caller (e.g. the training step) and must be
plain data too (numbers, strings, lists, dicts, tensors).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from padless.model.aed import AEDModel
from padless.model.config import PRESETS, ModelConfig

if TYPE_CHECKING:
    from padless.data.tokenizer import CanaryTokenizer

CHECKPOINT_FORMAT = "padless-aed/1"


def get_config(preset_or_checkpoint: str | os.PathLike[str]) -> ModelConfig:
    """The `ModelConfig` of a preset name (see `PRESETS`) or of a checkpoint file.

    Reading a checkpoint's config memory-maps the file and touches no weights.
    """
    key = str(preset_or_checkpoint)
    if key in PRESETS:
        return PRESETS[key]
    path = Path(key)
    if not path.is_file():
        raise ValueError(
            f"{key!r} is neither a preset ({', '.join(PRESETS)}) nor a checkpoint file"
        )
    return ModelConfig.from_dict(_read(path)["config"])


def save_checkpoint(
    path: str | os.PathLike[str],
    model: AEDModel,
    *,
    tokenizer: CanaryTokenizer | str | os.PathLike[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (config + weights) and optionally its tokenizer (an object or a saved
    tokenizer directory), atomically."""
    tokenizer_files = _tokenizer_files(tokenizer) if tokenizer is not None else None
    if tokenizer_files is not None:
        vocab = _vocab_size(tokenizer_files)
        if vocab is not None and vocab != model.config.vocab_size:
            raise ValueError(
                f"tokenizer vocab_size {vocab} != model vocab_size {model.config.vocab_size}"
            )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "state_dict": model.state_dict(),
        "tokenizer_files": tokenizer_files,
        "extra": extra or {},
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target and rename: a crash never leaves a truncated checkpoint.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode) and what was saved with it."""

    path: Path
    model: AEDModel
    tokenizer_files: dict[str, bytes] | None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def tokenizer(self) -> CanaryTokenizer:
        """The tokenizer saved with the model (error if none was)."""
        from padless.data.tokenizer import CanaryTokenizer

        if not self.tokenizer_files:
            raise ValueError(f"{self.path}: checkpoint was saved without a tokenizer")
        with tempfile.TemporaryDirectory(prefix="padless-tok-") as tmp:
            for name, data in self.tokenizer_files.items():
                (Path(tmp) / name).write_bytes(data)
            return CanaryTokenizer.load(tmp)


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Checkpoint:
    """Rebuild the model of a checkpoint on ``device`` (eval mode), with no other input."""
    path = Path(path)
    payload = _read(path)
    config = ModelConfig.from_dict(payload["config"])
    with torch.device("meta"):
        model = AEDModel(config)
    # assign=True adopts the loaded (memory-mapped) tensors instead of copying into fresh ones.
    model.load_state_dict(payload["state_dict"], strict=True, assign=True)
    model.features.to_empty(device="cpu")  # derived buffers are not stored; recompute them
    model.features.reset_buffers()
    model.to(device).eval()
    return Checkpoint(
        path=path,
        model=model,
        tokenizer_files=payload.get("tokenizer_files"),
        extra=payload.get("extra") or {},
    )


def _tokenizer_files(tokenizer: CanaryTokenizer | str | os.PathLike[str]) -> dict[str, bytes]:
    if isinstance(tokenizer, str | os.PathLike):
        directory = Path(tokenizer)
        if not (directory / "tokenizer.json").is_file():
            raise ValueError(f"{directory}: not a tokenizer directory (no tokenizer.json)")
        return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
    with tempfile.TemporaryDirectory(prefix="padless-tok-") as tmp:
        tokenizer.save(tmp)
        return {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}


def _vocab_size(tokenizer_files: dict[str, bytes]) -> int | None:
    try:
        meta = json.loads(tokenizer_files["tokenizer.json"])
    except (KeyError, ValueError):
        return None
    vocab = meta.get("vocab_size") if isinstance(meta, dict) else None
    return vocab if isinstance(vocab, int) else None


def _read(path: Path) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # torch raises many types for foreign or corrupt files
        raise ValueError(f"{path}: not a readable padless checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a padless checkpoint (expected format {CHECKPOINT_FORMAT})")
    return payload
