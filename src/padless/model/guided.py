"""Guided attention: a training loss that pulls the decoder's cross-attention to the diagonal.

A decoder trained from scratch first learns the text's language model and finds *where* in the
audio each token is only later (the slow start of attention encoder-decoder models). Speech is
read in order, so token ``k`` of ``n`` sits near frame ``T * k / n``; the loss of Tachibana et
al. (2018, "Efficiently trainable text-to-speech ... with guided attention") charges attention
mass by its distance from there:

    penalty(t, k) = 1 - exp(-(t / T - k / n)^2 / (2 sigma^2))
    loss = mean over heads and text queries k of sum_t attention(k, t) * penalty(t, k)

Translation reorders words, so the band (``sigma``, a fraction of the utterance) is loose: it
asks for "roughly this part of the audio", not an alignment. The loss reads the attention
probabilities, so the guided layers run attention as explicit matmuls while it is on.
"""

from __future__ import annotations

import torch


def diagonal_penalty(
    frame_lens: torch.Tensor,
    prompt_lens: torch.Tensor,
    token_lens: torch.Tensor,
    queries: int,
    frames: int,
    sigma: float,
) -> torch.Tensor:
    """Penalty ``(B, queries, frames)`` for the decoder inputs ``tokens[:, :-1]``; 0 outside the
    text's queries and the valid frames.

    Decoder input ``j`` predicts token ``j + 1``; the text's queries are ``prompt_len - 1 <= j <
    token_len - 1`` (the last prompt token predicts the first text token; the last query
    predicts EOS). Their relative position is ``(k + 1/2) / n`` with ``k = j - prompt_len + 1``
    and ``n = token_len - prompt_len``; a frame's is ``(t + 1/2) / T``.
    """
    device = frame_lens.device
    j = torch.arange(queries, device=device)[None, :]  # (1, U)
    first = (prompt_lens - 1)[:, None]
    count = (token_lens - prompt_lens).clamp(min=1)[:, None]
    query_pos = (j - first + 0.5) / count  # (B, U)
    query_valid = (j >= first) & (j < (token_lens - 1)[:, None])
    t = torch.arange(frames, device=device)[None, :]
    frame_pos = (t + 0.5) / frame_lens.clamp(min=1)[:, None]  # (B, T)
    frame_valid = t < frame_lens[:, None]
    distance = frame_pos[:, None, :] - query_pos[:, :, None]  # (B, U, T)
    penalty = 1.0 - torch.exp(-distance.square() / (2.0 * sigma**2))
    return penalty * (query_valid[:, :, None] & frame_valid[:, None, :])


def guided_attention_loss(
    weights: list[torch.Tensor],
    frame_lens: torch.Tensor,
    prompt_lens: torch.Tensor,
    token_lens: torch.Tensor,
    sigma: float,
) -> torch.Tensor:
    """Mean off-diagonal attention mass per (layer, head, text query) of cross-attention
    ``weights``, each ``(B, H, U, T)``; in [0, 1), 0 for attention on the diagonal."""
    _, heads, queries, frames = weights[0].shape
    penalty = diagonal_penalty(frame_lens, prompt_lens, token_lens, queries, frames, sigma)
    text_queries = ((token_lens - prompt_lens).clamp(min=0)).sum().clamp(min=1)
    total = sum((w.float() * penalty[:, None]).sum() for w in weights)
    return total / (text_queries * heads * len(weights))


__all__ = ["diagonal_penalty", "guided_attention_loss"]
