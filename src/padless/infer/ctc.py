"""Joint CTC/attention beam search: the encoder's CTC head scores each prefix the decoder proposes.

The hybrid decoding of Watanabe et al. (2017, "Hybrid CTC/attention architecture for end-to-end
speech recognition", as in ESPnet): a hypothesis ``g`` scores

    (1 - w) * log p_att(g) + w * log p_ctc(g...)

where ``p_ctc(g...)`` is the CTC prefix probability, the probability that the encoder's CTC
output *begins with* ``g``, and at EOS the probability that it *is* ``g``. The attention decoder
alone may loop on a run of equal digits or drop a clause; CTC, which has to account for every
frame, makes such hypotheses improbable. Only transcription rows use it (the CTC head transcribes
what is said; a translation is not a prefix of it): rows with weight 0 are plain beam search.

Decoder tokens and CTC units may differ (pieces against the bytes of a byte CTC head, see
`padless.data.ctc`): `CtcSpelling` spells each token in CTC units, and a token of several units
extends the prefix one unit at a time.

Cost. The prefix recursion over frames is a first-order linear recurrence, so it is solved in
closed form with cumulative sums and ``logcumsumexp`` over the time axis instead of a Python loop
over frames: per decoding step, a few ``(hypotheses x candidates, T)`` float64 operations per
CTC unit of the longest candidate. Only the ``candidates`` best tokens of each hypothesis under
the decoder are scored (ESPnet's pre-beam); every other token is excluded on CTC rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from padless.data.ctc import BYTE_BLANK_ID, CtcUnits, byte_targets

if TYPE_CHECKING:
    from padless.data.tokenizer import CanaryTokenizer

NEG_INF = float("-inf")
#: Log-probability of a non-blank unit on a padding frame (past an utterance's end), where the
#: blank gets log 1: such frames can only extend a prefix by blanks, so every score is the
#: utterance's own. Finite (not -inf) so that cumulative sums never meet inf - inf; a prefix with
#: more units than the audio has frames scores about this much per unit too many, not -inf.
_PAD_FRAME_LOGP = -1.0e4


@dataclass(frozen=True)
class CtcSpelling:
    """Each decoder token spelt in CTC units, inside a text and at its start (where the leading
    space of a word-initial piece is not written).

    ``units (2, V, L)`` int64, padded with 0; ``lens (2, V)`` int64, -1 for a token that is never
    part of a transcript (special tokens): CTC gives it probability 0. Index 0 of the first axis
    is the spelling inside a text, 1 at its start. ``language (V,)``: the index in
    ``languages`` of the block a piece belongs to, -1 for a token of any language: a transcript
    in one language is spelt with that language's pieces only (the tokenizer joins runs of
    different languages with a space, which no spelling has).
    """

    units: torch.Tensor
    lens: torch.Tensor
    blank: int
    language: torch.Tensor
    languages: tuple[str, ...] = ()

    @classmethod
    def from_tokenizer(cls, tokenizer: CanaryTokenizer, units: CtcUnits) -> CtcSpelling:
        """Spellings for a CTC head over ``units``: the tokenizer's own pieces (one unit each), or
        the lower-cased UTF-8 bytes of each piece's text (`padless.data.ctc.byte_targets`)."""
        inside: list[list[int] | None] = []
        start: list[list[int] | None] = []
        languages = tokenizer.languages
        block = [-1] * tokenizer.vocab_size
        for index, lang in enumerate(languages):
            first, size = tokenizer.offsets[lang], tokenizer.lang_vocab_sizes[lang]
            block[first : first + size] = [index] * size
        for token in range(tokenizer.vocab_size):
            raw = tokenizer.piece_bytes(token)
            if raw is None:
                inside.append(None)
                start.append(None)
            elif units == "tokens":  # the CTC targets are the encoded pieces themselves
                inside.append([token] if raw else [])
                start.append([token] if raw else [])
            else:
                inside.append(_byte_units(raw))
                start.append(_byte_units(raw.lstrip(b" ")))
        blank = tokenizer.pad_id if units == "tokens" else BYTE_BLANK_ID
        return cls.from_lists(inside, start, blank, block, languages)

    @classmethod
    def from_lists(
        cls,
        inside: Sequence[Sequence[int] | None],
        start: Sequence[Sequence[int] | None],
        blank: int,
        language: Sequence[int] | None = None,
        languages: Sequence[str] = (),
    ) -> CtcSpelling:
        """Spellings from per-token unit lists (None: never in a transcript); ``language`` the
        index in ``languages`` of each token's block (None: every token of any language)."""
        if len(inside) != len(start):
            raise ValueError(f"{len(inside)} inside spellings for {len(start)} start spellings")
        width = max((len(s) for s in (*inside, *start) if s is not None), default=0)
        units = torch.zeros(2, len(inside), max(width, 1), dtype=torch.long)
        lens = torch.full((2, len(inside)), -1, dtype=torch.long)
        for side, spellings in enumerate((inside, start)):
            for token, spelled in enumerate(spellings):
                if spelled is None:
                    continue
                if blank in spelled:
                    raise ValueError(f"token {token} is spelt with the CTC blank ({blank})")
                lens[side, token] = len(spelled)
                units[side, token, : len(spelled)] = torch.tensor(spelled, dtype=torch.long)
        block = torch.full((len(inside),), -1, dtype=torch.long)
        if language is not None:
            block = torch.tensor(list(language), dtype=torch.long)
            if block.shape != (len(inside),) or int(block.max()) >= len(languages):
                raise ValueError(f"language needs one index < {len(languages)} per token")
        return cls(units, lens, blank, block, tuple(languages))

    def language_index(self, lang: str | None) -> int:
        """Index of ``lang`` in `languages` (-1 for None: any language)."""
        if lang is None:
            return -1
        if lang not in self.languages:
            raise ValueError(f"no pieces of language {lang!r} (have {', '.join(self.languages)})")
        return self.languages.index(lang)

    def to(self, device: torch.device | str) -> CtcSpelling:
        return dataclasses.replace(
            self,
            units=self.units.to(device),
            lens=self.lens.to(device),
            language=self.language.to(device),
        )


def _byte_units(raw: bytes) -> list[int]:
    """Byte CTC units of a piece's bytes, lower-cased as the CTC targets are."""
    try:
        return byte_targets(raw.decode("utf-8"))
    except UnicodeDecodeError:  # a byte-fallback piece: one byte of a longer character
        return [b + 1 for b in raw.lower()]


class CtcPrefixScorer:
    """CTC prefix scores of a beam's hypotheses, one decoding step at a time.

    Holds, per hypothesis, the forward variables of its prefix at every frame: the log-probability
    of having emitted the prefix by frame ``t`` with a non-blank (``r_n``) or a blank (``r_b``)
    last, ``(H, T + 1)`` float64 (column 0 is before the first frame). Hypotheses are ``b * K + k``
    for ``K`` beams per utterance, starting from one empty prefix per utterance.
    """

    def __init__(
        self,
        log_probs: torch.Tensor,  # (B, T, C) CTC log-probabilities
        lens: torch.Tensor,  # (B,) valid frames
        weights: torch.Tensor,  # (B,) CTC weight of each utterance; 0 = attention alone
        spelling: CtcSpelling,
        candidates: int,
        languages: torch.Tensor | None = None,  # (B,) transcript language index, -1 any
    ) -> None:
        batch, frames, classes = log_probs.shape
        if lens.shape != (batch,) or weights.shape != (batch,):
            raise ValueError(
                f"lens {tuple(lens.shape)} and weights {tuple(weights.shape)} for "
                f"a batch of {batch}"
            )
        if int(spelling.units.max()) >= classes:
            raise ValueError(
                f"the spelling uses CTC unit {int(spelling.units.max())}, the head has {classes}"
            )
        device = log_probs.device
        self.spelling = spelling.to(device)
        self.candidates = candidates
        self.weights = weights.to(device=device, dtype=torch.float64)
        if languages is None:
            languages = torch.full((batch,), -1, dtype=torch.long)
        self.languages = languages.to(device)
        valid = torch.arange(frames, device=device)[None, :] < lens.to(device)[:, None]
        logp = log_probs.double().masked_fill(~valid[..., None], _PAD_FRAME_LOGP)
        logp[..., spelling.blank] = logp[..., spelling.blank].masked_fill(~valid, 0.0)
        self.x = logp.transpose(1, 2).contiguous()  # (B, C, T): a unit's frames are contiguous
        zero = torch.zeros(batch, 1, dtype=torch.float64, device=device)
        # Cumulative log-probability of blanks: (B, T + 1), column t = frames 1..t.
        self.blank_cum = torch.cat([zero, self.x[:, spelling.blank].cumsum(1)], dim=1)
        self.utterance = torch.arange(batch, device=device)  # hypothesis -> utterance
        self.r_n = torch.full((batch, frames + 1), NEG_INF, dtype=torch.float64, device=device)
        self.r_b = self.blank_cum.clone()
        self.prefix = torch.zeros(batch, dtype=torch.float64, device=device)  # log p(g...)
        self.last = torch.full((batch,), -1, dtype=torch.long, device=device)  # last unit
        self.started = torch.zeros(batch, dtype=torch.bool, device=device)  # any unit yet?
        self._pending: tuple[torch.Tensor, ...] | None = None

    def joint(self, att: torch.Tensor, eos_id: int) -> torch.Tensor:
        """Per-token step scores ``(B, K, V)`` from the decoder's log-probabilities ``att``:
        ``(1 - w) * att + w * (log p_ctc(g + token...) - log p_ctc(g...))`` for the
        ``candidates`` best tokens of each hypothesis, -inf for the others; ``att`` unchanged on
        rows of weight 0. Call `advance` with the tokens chosen."""
        batch, beams, vocab = att.shape
        hyps = batch * beams
        if hyps != self.prefix.shape[0]:
            raise ValueError(f"{hyps} hypotheses scored, the scorer holds {self.prefix.shape[0]}")
        count = min(self.candidates, vocab)
        cand = att.reshape(hyps, vocab).topk(count, dim=-1).indices  # (H, N)
        psi, state = self._extend(cand, eos_id)  # psi (H, N)
        w = self.weights[:, None, None]
        gained = torch.where(self.prefix.isneginf()[:, None], NEG_INF, psi - self.prefix[:, None])
        delta = gained.view(batch, beams, count)
        picked = att.gather(-1, cand.view(batch, beams, count)).double()
        scores = (1 - w) * picked + w * delta  # -inf where CTC excludes the token
        joint = torch.full_like(att, NEG_INF, dtype=torch.float64)
        joint.scatter_(-1, cand.view(batch, beams, count), scores)
        self._pending = (cand, *state)
        return torch.where(w > 0, joint, att.double()).to(att.dtype)

    def advance(self, origin: torch.Tensor, token: torch.Tensor) -> None:
        """Keep the hypotheses the search chose: ``origin (B, K)`` the beam each extends (of the
        beams scored by the last `joint`), ``token (B, K)`` the token it appended. A token that
        was not a candidate (a finished beam's padding, a row of weight 0) keeps its parent's
        prefix state."""
        if self._pending is None:
            raise RuntimeError("advance() needs a joint() first")
        cand, r_n, r_b, psi, last, started = self._pending
        batch = origin.shape[0]
        old_beams = cand.shape[0] // batch
        parent = (torch.arange(batch, device=origin.device)[:, None] * old_beams + origin).view(-1)
        match = cand[parent] == token.reshape(-1, 1)  # (H', N)
        found = match.any(-1)
        column = parent * cand.shape[1] + match.long().argmax(-1)

        def pick(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
            if new.dim() == 2:  # (H * N, T + 1) forward variables
                return torch.where(found[:, None], new[column], old[parent])
            return torch.where(found, new[column], old[parent])

        self.r_n, self.r_b = pick(r_n, self.r_n), pick(r_b, self.r_b)
        self.prefix, self.last = pick(psi, self.prefix), pick(last, self.last)
        self.started = pick(started, self.started)
        self.utterance = self.utterance[parent]
        self._pending = None

    def _extend(
        self, cand: torch.Tensor, eos_id: int
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Prefix log-probabilities ``(H, N)`` of every hypothesis extended by each candidate,
        and the extended forward variables (flattened over ``H * N``)."""
        hyps, count = cand.shape
        flat = hyps * count
        side = (~self.started).long()[:, None].expand(hyps, count)  # 1: spelt at a text's start
        units = self.spelling.units[side, cand].view(flat, -1)  # (F, L)
        lens = self.spelling.lens[side, cand].view(flat)  # (F,)
        parent = torch.arange(hyps, device=cand.device).repeat_interleave(count)
        utterance = self.utterance[parent]
        r_n, r_b = self.r_n[parent], self.r_b[parent]
        psi, last, started = self.prefix[parent], self.last[parent], self.started[parent]
        blank_cum = self.blank_cum[utterance]  # (F, T + 1)
        for j in range(int(lens.max().clamp(min=0))):
            cols = (lens > j).nonzero().squeeze(1)  # candidates with a j-th unit
            unit = units[cols, j]
            x = self.x[utterance[cols], unit]  # (F', T)
            same = unit == last[cols]
            r_n[cols], r_b[cols], phi = _extend_by_unit(
                r_n[cols], r_b[cols], x, blank_cum[cols], same
            )
            final = (lens[cols] == j + 1).nonzero().squeeze(1)  # the prefix score, at the end
            psi[cols[final]] = torch.logsumexp(phi[final] + x[final], 1)
            last[cols], started[cols] = unit, True
        token = cand.reshape(flat)
        # EOS: the probability that the whole CTC output is the prefix (the last frame's
        # variables; padding frames only add blanks).
        ended = torch.logaddexp(self.r_n[:, -1], self.r_b[:, -1])[parent]
        psi = torch.where(token == eos_id, ended, psi)
        block = self.spelling.language[token]
        want = self.languages[utterance]
        foreign = (block >= 0) & (want >= 0) & (block != want)
        psi = torch.where(((lens < 0) & (token != eos_id)) | foreign, NEG_INF, psi)
        return psi.view(hyps, count), (r_n, r_b, psi, last, started)


def _extend_by_unit(
    r_n: torch.Tensor,  # (F, T + 1) forward variables of the prefix g
    r_b: torch.Tensor,
    x: torch.Tensor,  # (F, T) log p(unit c) at frames 1..T
    blank_cum: torch.Tensor,  # (F, T + 1) cumulative log p(blank), column 0 = 0
    same: torch.Tensor,  # (F,) c equals g's last unit (then g must end in a blank first)
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Forward variables of ``h = g + c``, and ``phi`` (``(T, F)``), from which the prefix
    log-probability of ``h`` is ``logsumexp(phi + x)`` over time.

    In probabilities, with ``phi[s] = r_b[s] + (r_n[s] unless same)`` the mass of ``g`` ready to
    emit ``c`` after frame ``s``:

        r_n'[t] = (r_n'[t-1] + phi[t-1]) * x[t]       r_b'[t] = (r_n'[t-1] + r_b'[t-1]) * blank[t]
        p(h...) = sum_t phi[t-1] * x[t]

    Both recurrences have the form ``y[t] = (y[t-1] + u[t-1]) * a[t]``, so
    ``y[t] = A[t] * sum_{s<t} u[s] / A[s]`` with ``A`` the cumulative product of ``a``: in logs, a
    cumulative sum and a ``logcumsumexp``, vectorised over time.
    """
    phi = torch.where(same[:, None], r_b, torch.logaddexp(r_n, r_b))[:, :-1]  # (F, T)
    zero = torch.zeros_like(r_n[:, :1])
    cum_x = torch.cat([zero, x.cumsum(1)], 1)  # (F, T + 1)
    start = torch.full_like(r_n[:, :1], NEG_INF)
    new_n = torch.cat([start, cum_x[:, 1:] + torch.logcumsumexp(phi - cum_x[:, :-1], 1)], 1)
    ready = new_n[:, :-1] - blank_cum[:, :-1]
    new_b = torch.cat([start, blank_cum[:, 1:] + torch.logcumsumexp(ready, 1)], 1)
    return new_n, new_b, phi


__all__ = ["CtcPrefixScorer", "CtcSpelling"]
