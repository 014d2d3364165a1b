"""Search strategies over a decoder cache: batched greedy and batched beam search.

Both take the decoder, a prepared cache (prompt not yet run), the left-padded prompts and each
row's output limit, and return one `Hypothesis` per row. Rows stop independently: at EOS, or at
their limit. With ``forced=True`` EOS does not stop a row and every row emits exactly its limit
(used to time randomly initialised models with realistic output lengths).

Host syncs: one per step (``all finished?``), which on a GPU costs far less than a decoder step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F

from padless.infer.cache import DecodingCache, KVCache
from padless.infer.ctc import CtcPrefixScorer
from padless.infer.options import DecodingOptions
from padless.model.decoder import TransformerDecoder


@dataclass(frozen=True)
class Hypothesis:
    """Output tokens of one utterance (prompt and EOS excluded) and its search score."""

    tokens: list[int]
    score: float | None = None  # beam search: length-penalised log-probability
    ended_with_eos: bool = False


class SearchStrategy(Protocol):
    def __call__(
        self,
        decoder: TransformerDecoder,
        cache: DecodingCache,
        prompts: torch.Tensor,  # (B, P) left-padded prompt ids
        limits: torch.Tensor,  # (B,) max output tokens per row, EOS included
        options: DecodingOptions,
        eos_id: int,
        pad_id: int,
        forced: bool,
    ) -> list[Hypothesis]: ...


def _collect(tokens: torch.Tensor, lengths: torch.Tensor, eos_id: int) -> list[Hypothesis]:
    """``tokens (B, N)``, ``lengths (B,)`` tokens emitted per row (EOS included) -> hypotheses."""
    out = []
    for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True):
        emitted = row[:n]
        ended = bool(emitted) and emitted[-1] == eos_id
        out.append(Hypothesis(tokens=emitted[:-1] if ended else emitted, ended_with_eos=ended))
    return out


def greedy_search(
    decoder: TransformerDecoder,
    cache: DecodingCache,
    prompts: torch.Tensor,
    limits: torch.Tensor,
    options: DecodingOptions,
    eos_id: int,
    pad_id: int,
    forced: bool,
) -> list[Hypothesis]:
    batch = prompts.shape[0]
    device = prompts.device
    max_steps = int(limits.max())
    out = torch.full((batch, max_steps), pad_id, dtype=torch.long, device=device)
    emitted = torch.zeros(batch, dtype=torch.long, device=device)  # tokens per row so far
    live = torch.arange(batch, device=device)  # cache row -> batch row
    live_limits = limits
    finished = torch.zeros(batch, dtype=torch.bool, device=device)  # over live rows
    logits = decoder.step(prompts, cache)[:, -1]  # (R, V)
    for step in range(max_steps):
        token = logits.argmax(-1).masked_fill(finished, pad_id)  # (R,)
        out[live, step] = token
        emitted[live] += (~finished).long()
        done = step + 1 >= live_limits
        if not forced:
            done |= token == eos_id
        finished |= done
        n_finished = int(finished.sum())  # the per-step host sync
        if n_finished == finished.numel():
            break
        threshold = options.compact_threshold
        if threshold is not None and n_finished >= threshold * finished.numel():
            keep = (~finished).nonzero().squeeze(1)
            cache.select(keep)
            live, live_limits, finished = live[keep], live_limits[keep], finished[keep]
            token = token[keep]
        logits = decoder.step(token[:, None], cache)[:, -1]
    return _collect(out, emitted, eos_id)


def _length_penalty(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    return ((5.0 + lengths.float()) / 6.0) ** alpha


def beam_search(
    decoder: TransformerDecoder,
    cache: DecodingCache,
    prompts: torch.Tensor,
    limits: torch.Tensor,
    options: DecodingOptions,
    eos_id: int,
    pad_id: int,
    forced: bool,
    ctc: CtcPrefixScorer | None = None,
) -> list[Hypothesis]:
    """Batched beam search: ``beam_size`` hypotheses per utterance, scored by
    ``sum log p / ((5 + len) / 6) ** length_penalty``.

    A finished hypothesis stays in its beam with a frozen score (it can only be extended by
    padding at no cost), so hypotheses of different lengths compete under the length penalty.
    With ``beam_size=1`` this is exactly greedy search. With ``ctc``, ``log p`` is the joint
    CTC/attention score of `padless.infer.ctc` on the rows it weights.
    """
    batch, beams = prompts.shape[0], options.beam_size
    device = prompts.device
    max_steps = int(limits.max())
    logits = decoder.step(prompts, cache)[:, -1]  # (B, V)
    vocab = logits.shape[-1]
    logp = F.log_softmax(logits.float(), dim=-1)
    if ctc is not None:
        logp = ctc.joint(logp[:, None], eos_id)[:, 0]
    cache.expand(beams)  # rows b * K + k
    # All K beams start identical: take the first step's top K from one copy.
    scores, token = logp.topk(beams, dim=-1)  # (B, K)
    if ctc is not None:
        ctc.advance(torch.zeros_like(token), token)
    history = torch.full((batch, beams, max_steps), pad_id, dtype=torch.long, device=device)
    history[:, :, 0] = token
    lengths = torch.ones(batch, beams, dtype=torch.long, device=device)
    limit = limits[:, None]  # (B, 1)
    finished = lengths >= limit
    if not forced:
        finished |= token == eos_id
    # A finished beam's only continuation: padding, at log-probability 0.
    frozen = torch.full((vocab,), float("-inf"), device=device)
    frozen[pad_id] = 0.0
    base = (torch.arange(batch, device=device) * beams)[:, None]  # (B, 1)
    for step in range(1, max_steps):
        if bool(finished.all()):  # the per-step host sync
            break
        logits = decoder.step(token.reshape(-1, 1), cache)[:, -1]  # (B*K, V)
        logp = F.log_softmax(logits.float(), dim=-1).view(batch, beams, vocab)
        if ctc is not None:
            logp = ctc.joint(logp, eos_id)
        logp = torch.where(finished[..., None], frozen, logp)
        candidates = scores[..., None] + logp  # (B, K, V)
        new_lengths = lengths + (~finished).long()  # (B, K)
        ranked = candidates / _length_penalty(new_lengths, options.length_penalty)[..., None]
        best = ranked.view(batch, -1).topk(beams, dim=-1).indices  # (B, K) into K * V
        origin = torch.div(best, vocab, rounding_mode="floor")
        token = best % vocab
        scores = candidates.view(batch, -1).gather(1, best)
        lengths = new_lengths.gather(1, origin)
        history = history.gather(1, origin[..., None].expand_as(history))
        history[:, :, step] = token
        finished = finished.gather(1, origin) | (lengths >= limit)
        if not forced:
            finished |= token == eos_id
        cache.reorder((base + origin).reshape(-1))
        if ctc is not None:
            ctc.advance(origin, token)
    final = scores / _length_penalty(lengths, options.length_penalty)  # (B, K)
    pick = final.argmax(-1)  # (B,)
    rows = torch.arange(batch, device=device)
    hyps = _collect(history[rows, pick], lengths[rows, pick], eos_id)
    return [
        Hypothesis(h.tokens, score=s, ended_with_eos=h.ended_with_eos)
        for h, s in zip(hyps, final[rows, pick].tolist(), strict=True)
    ]


STRATEGIES: dict[str, SearchStrategy] = {"greedy": greedy_search, "beam": beam_search}

__all__ = ["STRATEGIES", "Hypothesis", "KVCache", "SearchStrategy", "beam_search", "greedy_search"]
