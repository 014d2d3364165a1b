"""The training loss and the build-anywhere contract (meta device, fake tensors)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch._subclasses.fake_tensor import FakeTensorMode

from helpers.batches import make_batch, tiny_config
from padless.data.dataset import SpeechBatch
from padless.model import PRESETS, AEDModel


def test_loss_is_cross_entropy_over_text_and_eos_targets() -> None:
    model = AEDModel(tiny_config()).eval()
    batch = make_batch()
    with torch.no_grad():
        loss = model.loss(batch)
        logits = model(batch.audio, batch.audio_lens, batch.tokens[:, :-1])
    terms = []
    for b in range(len(batch)):
        first, last = int(batch.prompt_lens[b]) - 1, int(batch.token_lens[b]) - 1
        terms.append(
            F.cross_entropy(
                logits[b, first:last], batch.tokens[b, first + 1 : last + 1], reduction="none"
            )
        )
    torch.testing.assert_close(loss, torch.cat(terms).mean())


def test_unmasked_prompt_and_label_smoothing_change_the_loss() -> None:
    batch = make_batch()
    losses = {}
    for key, cfg in {
        "base": tiny_config(),
        "prompt": tiny_config(mask_prompt=False),
        "smooth": tiny_config(label_smoothing=0.1),
    }.items():
        torch.manual_seed(0)
        with torch.no_grad():
            losses[key] = AEDModel(cfg).eval().loss(batch)
    assert losses["prompt"] != losses["base"] != losses["smooth"]


def test_padding_tokens_never_reach_the_loss() -> None:
    model = AEDModel(tiny_config()).eval()
    batch = make_batch()
    garbage = batch.tokens.clone()
    beyond = torch.arange(garbage.shape[1])[None] >= batch.token_lens[:, None]
    garbage[beyond] = 7
    with torch.no_grad():
        a = model.loss(batch)
        b = model.loss(dataclasses.replace(batch, tokens=garbage))
    torch.testing.assert_close(a, b)


def test_backward_reaches_every_parameter() -> None:
    model = AEDModel(tiny_config()).train()
    model.loss(make_batch()).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert not missing


@pytest.mark.parametrize(
    ("where", "preset"), [("meta", "canary-1b-flash"), ("fake", "canary-180m-flash")]
)
def test_training_step_runs_without_real_memory(where: str, preset: str) -> None:
    # The batch-size search runs exactly this: build, forward, backward, optimizer step.
    cfg = PRESETS[preset]
    context = torch.device("meta") if where == "meta" else FakeTensorMode()
    with context:
        model = AEDModel(cfg).train()
        batch = SpeechBatch(
            audio=torch.randn(2, 16_000 * 3),
            audio_lens=torch.tensor([16_000 * 3, 16_000]),
            tokens=torch.randint(0, cfg.vocab_size, (2, 40)),
            token_lens=torch.tensor([40, 20]),
            prompt_lens=torch.tensor([5, 5]),
            ids=("x", "y"),
        )
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        loss = model.loss(batch)
        loss.backward()
        optimizer.step()
    assert loss.shape == ()
    assert all(p.grad is not None for p in model.parameters())


def test_builds_and_trains_under_a_bfloat16_default_dtype() -> None:
    # The batch-size search builds models this way (weights born in the training dtype).
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        model = AEDModel(tiny_config())
        loss = model.train().loss(make_batch())
    finally:
        torch.set_default_dtype(default)
    assert model.dtype == torch.bfloat16 and loss.dtype == torch.bfloat16
    assert torch.isfinite(loss)
    loss.backward()
