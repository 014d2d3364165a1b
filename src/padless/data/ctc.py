"""CTC target units: the tokenizer's pieces, or the UTF-8 bytes of what is said.

Bytes make an easier first target for a small encoder trained from scratch: ~60 distinct
values against hundreds of pieces, each tied to a short stretch of sound, so the encoder's CTC
leaves its blank plateau within a few hundred steps where pieces take thousands (measured on
the demo corpus in ``bench/results/2026-12-06-demo-recipe.md``). They need more frames: espeak
speaks ~15 bytes per second, over the 12.5 frames per second of 8x subsampling, so byte
targets go with 4x. Targets are lower-cased (case is not heard); blank is 0, byte ``b`` is
``b + 1``.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch

CtcUnits = Literal["tokens", "bytes"]
CTC_UNITS: tuple[str, ...] = get_args(CtcUnits)
#: Classes of a byte CTC head: the blank (0) and the 256 byte values.
BYTE_VOCAB_SIZE = 257
BYTE_BLANK_ID = 0


def byte_targets(text: str) -> list[int]:
    """CTC targets of ``text`` in byte units: ``[b + 1 for b in utf8(text.lower())]``."""
    return [b + 1 for b in text.lower().encode("utf-8")]


def bytes_text(ids: list[int]) -> str:
    """The inverse of `byte_targets` (blank-free ids), for reading a byte CTC head's output."""
    return bytes(i - 1 for i in ids if 0 < i < BYTE_VOCAB_SIZE).decode("utf-8", errors="replace")


def min_frames(targets: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Frames a CTC alignment of ``targets (B, S)`` (``lens (B,)`` valid) needs: one per unit,
    plus a blank between each pair of equal neighbours. Fewer encoder frames than this make the
    loss infinite (``zero_infinity`` then drops the utterance)."""
    if targets.shape[1] < 2:
        return lens
    pair = torch.arange(targets.shape[1] - 1, device=targets.device)[None, :]
    repeats = (targets[:, 1:] == targets[:, :-1]) & (pair < (lens - 1)[:, None])
    return lens + repeats.sum(1)
