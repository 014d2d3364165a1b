"""The trial training step every probe runs, and the padless AED model as its workload.

A trial is what training does once per batch: forward, loss, backward, optimizer step,
``zero_grad(set_to_none=True)``, on a synthetic batch in which every example has the bucket's
maximum duration and maximum token count (the worst case the bucket can produce). The optimizer
is AdamW with its state already allocated, as in every step after the first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from padless.batchsize.config import StepConfig
from padless.batchsize.search import BucketShape
from padless.data.dataset import SpeechBatch
from padless.model import AEDModel, ModelConfig, get_config

#: Audio sampling rate of synthetic batches (the models' input rate).
SAMPLE_RATE = 16_000
#: Canary's 5-token decoder prompt; synthetic token rows start with that many prompt ids.
PROMPT_TOKENS = 5


@dataclass(frozen=True)
class AEDWorkload:
    """A padless `AEDModel`, described by its config (picklable, for trial processes).

    Build it with `load` (preset name or checkpoint path: the checkpoint's config is read once,
    never its weights) or `from_config`.
    """

    name: str
    config_dict: Mapping[str, Any]

    @classmethod
    def load(cls, model: str) -> AEDWorkload:
        return cls.from_config(get_config(model), name=model)

    @classmethod
    def from_config(cls, config: ModelConfig, name: str | None = None) -> AEDWorkload:
        return cls(name=name or config.name, config_dict=config.to_dict())

    def model_config(self) -> ModelConfig:
        return ModelConfig.from_dict(dict(self.config_dict))

    def build(self, step: StepConfig) -> nn.Module:
        """The model on the current default device (``with torch.device(...)``), train mode."""
        config = self.model_config()
        # Built in the target dtype rather than converted with .to(): conversion would hold
        # both copies at once, and cannot swap parameters of fake tensors.
        default = torch.get_default_dtype()
        torch.set_default_dtype(weight_dtype(step))
        try:
            model = AEDModel(config)
        finally:
            torch.set_default_dtype(default)
        return model.train()

    def batch(self, shape: BucketShape, batch_size: int, device: torch.device) -> SpeechBatch:
        """A `SpeechBatch` of ``batch_size`` examples, each exactly ``shape`` long."""
        vocab_size = int(self.config_dict["vocab_size"])
        samples = round(shape.max_duration * SAMPLE_RATE)
        tokens = max(shape.max_tokens, PROMPT_TOKENS + 1)
        n = batch_size
        return SpeechBatch(
            audio=0.1 * torch.randn(n, samples, device=device),  # (B, T)
            audio_lens=torch.full((n,), samples, dtype=torch.int64, device=device),
            tokens=torch.randint(2, vocab_size, (n, tokens), device=device),  # (B, U)
            token_lens=torch.full((n,), tokens, dtype=torch.int64, device=device),
            prompt_lens=torch.full((n,), PROMPT_TOKENS, dtype=torch.int64, device=device),
            ids=tuple(f"synthetic-{i}" for i in range(n)),
        )

    @staticmethod
    def loss(model: nn.Module, batch: object) -> torch.Tensor:
        loss = model.loss(batch)  # type: ignore[operator]
        assert isinstance(loss, torch.Tensor)
        return loss


def autocast_dtype(step: StepConfig) -> torch.dtype | None:
    """The autocast dtype of a step's forward and loss (None: no autocast)."""
    return torch.bfloat16 if step.precision == "bf16" else None


def weight_dtype(step: StepConfig) -> torch.dtype:
    """The dtype the model's weights (and gradients, and AdamW state) are built in."""
    return torch.bfloat16 if step.precision == "bf16-pure" else torch.float32


def make_optimizer(model: nn.Module, step: StepConfig) -> torch.optim.Optimizer:
    """AdamW over the model's parameters with its state allocated (zeros), as after step 1."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01, foreach=step.foreach)
    for p in params:
        p.grad = torch.zeros_like(p)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer


#: Called at phase boundaries of a step ("forward", "backward", "optimizer") for labelling.
PhaseCallback = Callable[[str], None]


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: object,
    loss_fn: Callable[[nn.Module, object], torch.Tensor],
    autocast: Callable[[], contextlib.AbstractContextManager[object]],
    on_phase: PhaseCallback | None = None,
    update: bool = True,
) -> None:
    """forward + loss (under ``autocast()``), backward, optimizer step, zero_grad(None).

    ``update=False`` skips ``optimizer.step()`` (the simulator takes that part of a step from
    another shape's recording: it does not depend on the batch).
    """
    phase = on_phase or (lambda _: None)
    phase("forward")
    with autocast():
        loss = loss_fn(model, batch)
    phase("backward")
    loss.backward()
    del loss
    phase("optimizer")
    if update:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    phase("idle")
