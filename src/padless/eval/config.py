"""How evaluation decodes: one frozen dataclass whose defaults `padless evaluate` shows and
training validation reads. Kept free of torch imports so the command line's help stays fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from padless.infer.options import DecodingOptions


@dataclass(frozen=True)
class EvalConfig:
    """Decoding settings of an evaluation."""

    #: Beam width; 1 decodes greedily (the default strategy of `DecodingOptions`), which is
    #: what validation during training can afford.
    beam_size: int = 1
    #: Utterances per decoding batch (sorted longest first, so batches are little padded).
    batch_size: int = 16
    #: Beam length penalty; None keeps `DecodingOptions.length_penalty`.
    length_penalty: float | None = None
    #: Joint CTC/attention decoding of the ASR rows (`DecodingOptions.ctc_weight`): the weight
    #: of the encoder's CTC prefix score; needs ``beam_size > 1`` and a model with a CTC head.
    ctc_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.beam_size < 1 or self.batch_size < 1:
            raise ValueError(
                f"beam_size and batch_size must be >= 1, got {self.beam_size}, {self.batch_size}"
            )
        if self.ctc_weight > 0 and self.beam_size == 1:
            raise ValueError("joint CTC decoding (ctc_weight > 0) needs a beam (beam_size > 1)")

    def describe(self) -> str:
        """``greedy``, ``beam 4``, ``beam 4 + CTC 0.3``: the decoding in a few words."""
        if self.beam_size == 1:
            return "greedy"
        ctc = f" + CTC {self.ctc_weight:g}" if self.ctc_weight > 0 else ""
        return f"beam {self.beam_size}{ctc}"

    def decoding_options(self) -> DecodingOptions:
        from padless.infer.options import DecodingOptions

        if self.beam_size == 1:
            options = DecodingOptions(strategy="greedy")
        else:
            options = DecodingOptions(
                strategy="beam", beam_size=self.beam_size, ctc_weight=self.ctc_weight
            )
        if self.length_penalty is None:
            return options
        return dataclasses.replace(options, length_penalty=self.length_penalty)
