"""The guided-attention loss: its penalty, the attention it reads, and its place in the loss."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers.batches import make_batch, tiny_config
from padless.data.dataset import SpeechBatch
from padless.model import AEDModel, LossConfig, SpecAugmentConfig
from padless.model.decoder import MultiHeadAttention
from padless.model.guided import diagonal_penalty, guided_attention_loss
from padless.model.layers import lengths_to_mask


def test_penalty_is_zero_on_the_diagonal_and_outside_the_text() -> None:
    """Prompt queries, padding queries and padding frames carry no penalty; inside, it grows
    with the distance from the diagonal and is ~0 on it."""
    frame_lens = torch.tensor([40, 20])
    prompt_lens = torch.tensor([5, 4])
    token_lens = torch.tensor([15, 9])  # 10 and 5 text queries (text + EOS targets)
    penalty = diagonal_penalty(frame_lens, prompt_lens, token_lens, 14, 40, sigma=0.2)
    assert penalty.shape == (2, 14, 40)
    assert not penalty[0, :4].any() and not penalty[1, :3].any()  # prompt queries
    assert not penalty[1, 8:].any() and not penalty[1, :, 20:].any()  # padding
    for b, first, n, frames in ((0, 4, 10, 40), (1, 3, 5, 20)):
        for k in range(n):
            row = penalty[b, first + k, :frames]
            centre = int(row.argmin())  # the frame at the token's relative position
            assert abs(centre + 0.5 - (k + 0.5) / n * frames) <= 1.0 and row[centre] < 0.02
            assert torch.all(row[centre:].diff() >= 0) and torch.all(row[: centre + 1].diff() <= 0)


def test_loss_prefers_diagonal_attention() -> None:
    """Attention on the diagonal scores ~0, uniform attention much more, attention at the wrong
    end of the utterance close to 1."""
    frame_lens, prompt_lens, token_lens = torch.tensor([30]), torch.tensor([3]), torch.tensor([9])
    queries, frames, heads = 8, 30, 2
    penalty = diagonal_penalty(frame_lens, prompt_lens, token_lens, queries, frames, 0.2)
    diagonal = torch.zeros(1, heads, queries, frames)
    backwards = torch.zeros(1, heads, queries, frames)
    for j in range(2, queries):  # the text's queries: j >= prompt_len - 1
        centre = int((j - 2 + 0.5) / 6 * frames)
        diagonal[0, :, j, centre] = 1.0
        backwards[0, :, j, frames - 1 - centre] = 1.0
    uniform = torch.full((1, heads, queries, frames), 1.0 / frames)

    def loss(w: torch.Tensor) -> float:
        return float(guided_attention_loss([w], frame_lens, prompt_lens, token_lens, 0.2))

    assert loss(diagonal) < 0.01 < 0.4 < loss(uniform) < loss(backwards)
    assert float(penalty.max()) < 1.0


def test_attention_with_weights_is_the_same_attention() -> None:
    """The explicit path the loss reads gives the fused kernel's output, probabilities that sum
    to one over the valid frames and are zero on the masked ones."""
    attn = MultiHeadAttention(d_model=32, n_heads=4, dropout=0.1).eval()
    q, k, v = torch.randn(3, 4, 6, 8), torch.randn(3, 4, 11, 8), torch.randn(3, 4, 11, 8)
    valid = torch.arange(11)[None, :] < torch.tensor([11, 7, 2])[:, None]
    mask = valid[:, None, None, :]
    out, probs = attn.attend_with_weights(q, k, v, mask)
    torch.testing.assert_close(out, attn.attend(q, k, v, mask), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(probs.sum(-1), torch.ones(3, 4, 6))
    assert not probs.masked_select(~mask.expand_as(probs)).any()


def _guided_term(model: AEDModel, batch: SpeechBatch, layers: int, sigma: float) -> torch.Tensor:
    """The guided-attention loss of ``model``'s own cross-attention on ``batch``, read back
    from the decoder (no gradient)."""
    with torch.no_grad():
        memory, lens = model.encode(batch.audio, batch.audio_lens)
        _, weights = model.decoder.forward_with_attention(
            batch.tokens[:, :-1], memory, lengths_to_mask(lens, memory.shape[1]), weights_of=layers
        )
        assert len(weights) == layers
        return guided_attention_loss(weights, lens, batch.prompt_lens, batch.token_lens, sigma)


@pytest.mark.parametrize("layers", [1, 2])
def test_guided_loss_adds_to_training_loss_only(layers: int) -> None:
    """In training mode the loss is CE + w * guided (the guided term read back from the
    decoder's own attention); in eval mode (the dev loss) it is the cross-entropy alone, the
    same as a model without the guided loss."""
    batch = make_batch()
    plain_cfg = tiny_config()
    # Training mode without its randomness: no dither, SpecAugment or dropout.
    plain_cfg = dataclasses.replace(
        plain_cfg,
        features=dataclasses.replace(plain_cfg.features, dither=0.0),
        spec_augment=SpecAugmentConfig(freq_masks=0, time_masks=0),
        encoder=dataclasses.replace(plain_cfg.encoder, dropout=0.0, attn_dropout=0.0),
        decoder=dataclasses.replace(plain_cfg.decoder, dropout=0.0, attn_dropout=0.0),
    )
    guided_cfg = dataclasses.replace(
        plain_cfg,
        loss=LossConfig(guided_attention_weight=0.5, guided_attention_layers=layers),
    )
    plain = AEDModel(plain_cfg)
    guided = AEDModel(guided_cfg)
    guided.load_state_dict(plain.state_dict())
    with torch.no_grad():  # eval first: training steps move the batch-norm statistics
        torch.testing.assert_close(guided.eval().loss(batch), plain.eval().loss(batch))
    plain.train()
    guided.train()
    with torch.no_grad():
        ce = plain.loss(batch)
        total = guided.loss(batch)
    expected = _guided_term(guided, batch, layers, sigma=0.2)
    assert 0.0 < float(expected) < 1.0
    torch.testing.assert_close(total, ce + 0.5 * expected)


def test_guided_loss_trains_attention_towards_the_diagonal() -> None:
    """A few optimizer steps on one batch lower the guided term: the gradient reaches the
    attention it charges."""
    cfg = dataclasses.replace(
        tiny_config(), loss=LossConfig(guided_attention_weight=1.0, guided_attention_sigma=0.1)
    )
    model = AEDModel(cfg).train()
    batch = make_batch()
    optimizer = torch.optim.Adam(model.decoder.parameters(), lr=3e-3)

    before = float(_guided_term(model, batch, layers=1, sigma=0.1))
    for _ in range(30):
        optimizer.zero_grad()
        model.loss(batch).backward()
        optimizer.step()
    assert float(_guided_term(model, batch, layers=1, sigma=0.1)) < 0.7 * before


def test_config_rejects_bad_guided_settings() -> None:
    with pytest.raises(ValueError, match="guided_attention_sigma"):
        LossConfig(guided_attention_weight=1.0, guided_attention_sigma=0.0)
    with pytest.raises(ValueError, match="guided_attention_layers"):
        LossConfig(guided_attention_layers=0)
