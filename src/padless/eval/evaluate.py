"""Evaluate a model on examples with references: decode, then WER per ASR language and BLEU per
AST direction.

Two steps, so validation in a data-parallel run can split the work::

    hyps = decode_hypotheses(model, tokenizer, examples[rank::world])   # on every rank
    everything = gather(hyps)                                           # e.g. all_gather_object
    result = score_hypotheses(everything)                               # on rank 0

`evaluate_examples` does both in one process. Decoding is `padless.infer.transcribe` (longest
first, one prompt per example, so a batch may mix languages and tasks); scoring is
`padless.eval.scores`. `EvalResult.save` writes ``scores.json`` and ``hypotheses.jsonl`` side by
side (format in docs/eval.md).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

import orjson
import torch

from padless.data.errors import PadlessInputError
from padless.data.example import Example, Task
from padless.eval.config import EvalConfig
from padless.eval.normalize import normalize
from padless.eval.scores import BleuScore, WerScore, corpus_bleu, pooled, word_errors
from padless.infer.transcribe import AudioLoader, transcribe
from padless.model.aed import AEDModel

if TYPE_CHECKING:
    from padless.data.tokenizer import CanaryTokenizer

SCORES_FILE = "scores.json"
HYPOTHESES_FILE = "hypotheses.jsonl"


@dataclass(frozen=True)
class Hypothesis:
    """One decoded example beside its reference (raw text, as decoded and as in the manifest)."""

    id: str
    task: Task
    source_lang: str
    target_lang: str
    pnc: bool
    duration: float
    reference: str
    hypothesis: str

    @property
    def group(self) -> str:
        """The score this example counts in: its language for ASR, ``src->tgt`` for AST."""
        return self.source_lang if self.task == "asr" else f"{self.source_lang}->{self.target_lang}"

    def to_json(self) -> dict[str, Any]:
        """The ``hypotheses.jsonl`` row; ASR rows add the normalised texts WER compared."""
        row: dict[str, Any] = {
            "id": self.id,
            "task": self.task,
            "source_lang": self.source_lang,
            "target_lang": self.target_lang,
            "pnc": self.pnc,
            "duration": self.duration,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
        }
        if self.task == "asr":
            row["reference_normalized"] = normalize(self.reference, self.target_lang)
            row["hypothesis_normalized"] = normalize(self.hypothesis, self.target_lang)
        return row


@dataclass(frozen=True)
class EvalResult:
    """Scores of one evaluation. Percentages; ``None`` where there is nothing to average."""

    wer: dict[str, float]  # per ASR language, e.g. {"de": 12.5, "en": 8.0}
    bleu: dict[str, float]  # per AST direction, e.g. {"de->en": 31.2, "en->fr": 28.4}
    wer_avg: float | None  # mean over languages (each language weighs the same)
    bleu_avg: float | None  # mean over directions
    wer_total: float | None  # all ASR edits over all ASR reference words (pooled)
    wer_scores: dict[str, WerScore]  # the counts behind ``wer``
    bleu_scores: dict[str, BleuScore]  # the counts behind ``bleu``
    hypotheses: list[Hypothesis]  # in input order

    @property
    def utterances(self) -> int:
        return len(self.hypotheses)

    def metrics(self) -> dict[str, float]:
        """Flat scalar metrics for logs: ``wer_avg``, ``bleu_avg``, ``wer_total``, ``wer/<lang>``,
        ``bleu/<src>-><tgt>`` (absent when undefined)."""
        totals = {"wer_avg": self.wer_avg, "bleu_avg": self.bleu_avg, "wer_total": self.wer_total}
        out = {key: value for key, value in totals.items() if value is not None}
        out.update({f"wer/{k}": v for k, v in self.wer.items()})
        out.update({f"bleu/{k}": v for k, v in self.bleu.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        """The ``scores.json`` object (everything but the hypotheses)."""
        return {
            "wer": self.wer,
            "bleu": self.bleu,
            "wer_avg": self.wer_avg,
            "bleu_avg": self.bleu_avg,
            "wer_total": self.wer_total,
            "utterances": self.utterances,
            "asr": {
                k: {
                    "wer": s.wer,
                    "utterances": s.utterances,
                    "reference_words": s.reference_words,
                    "substitutions": s.substitutions,
                    "deletions": s.deletions,
                    "insertions": s.insertions,
                }
                for k, s in self.wer_scores.items()
            },
            "ast": {
                k: {
                    "bleu": s.bleu,
                    "utterances": s.utterances,
                    "hypothesis_length": s.hypothesis_length,
                    "reference_length": s.reference_length,
                    "signature": s.signature,
                }
                for k, s in self.bleu_scores.items()
            },
        }

    def save(self, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``scores.json`` and ``hypotheses.jsonl`` (one line per example, input order)
        into ``directory``; returns both paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        scores = directory / SCORES_FILE
        hyps = directory / HYPOTHESES_FILE
        scores.write_bytes(orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2) + b"\n")
        hyps.write_bytes(b"".join(orjson.dumps(h.to_json()) + b"\n" for h in self.hypotheses))
        return scores, hyps


def decode_hypotheses(
    model: AEDModel,
    tokenizer: CanaryTokenizer,
    examples: Sequence[Example],
    *,
    config: EvalConfig = EvalConfig(),
    on_batch: Callable[[int], None] | None = None,
    audio_loader: AudioLoader | None = None,
) -> list[Hypothesis]:
    """Decode ``examples`` (each with its reference text) in eval mode, no autograd; the model's
    train/eval mode is restored afterwards, so validation can call this mid-training."""
    for example in examples:
        if example.text is None:
            raise PadlessInputError(f"example {example.id!r}: no reference text", "no text")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            transcripts = transcribe(
                model,
                tokenizer,
                examples,
                options=config.decoding_options(),
                batch_size=config.batch_size,
                audio_loader=audio_loader,
                on_batch=on_batch,
            )
    finally:
        model.train(was_training)
    return [
        Hypothesis(
            id=t.id,
            task=t.task,
            source_lang=t.source_lang,
            target_lang=t.target_lang,
            pnc=t.pnc,
            duration=ex.duration,
            reference=ex.text or "",
            hypothesis=t.text,
        )
        for ex, t in zip(examples, transcripts, strict=True)
    ]


def score_hypotheses(hypotheses: Sequence[Hypothesis]) -> EvalResult:
    """WER per ASR language, BLEU per AST direction, their means and the pooled WER."""
    groups: dict[str, list[Hypothesis]] = defaultdict(list)
    for hyp in hypotheses:
        groups[hyp.group].append(hyp)
    wer_scores: dict[str, WerScore] = {}
    bleu_scores: dict[str, BleuScore] = {}
    for key in sorted(groups):
        members = groups[key]
        refs = [h.reference for h in members]
        hyps = [h.hypothesis for h in members]
        if members[0].task == "asr":
            wer_scores[key] = word_errors(refs, hyps, members[0].target_lang)
        else:
            bleu_scores[key] = corpus_bleu(refs, hyps)
    wer = {k: s.wer for k, s in wer_scores.items()}
    bleu = {k: s.bleu for k, s in bleu_scores.items()}
    return EvalResult(
        wer=wer,
        bleu=bleu,
        wer_avg=fmean(wer.values()) if wer else None,
        bleu_avg=fmean(bleu.values()) if bleu else None,
        wer_total=pooled(list(wer_scores.values())).wer if wer_scores else None,
        wer_scores=wer_scores,
        bleu_scores=bleu_scores,
        hypotheses=list(hypotheses),
    )


def evaluate_examples(
    model: AEDModel,
    tokenizer: CanaryTokenizer,
    examples: Sequence[Example],
    *,
    config: EvalConfig = EvalConfig(),
    device: str | torch.device | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    on_batch: Callable[[int], None] | None = None,
    audio_loader: AudioLoader | None = None,
) -> EvalResult:
    """Decode ``examples`` with ``model`` as ``config`` says and score them
    (`decode_hypotheses`, then `score_hypotheses`); with ``out_dir``, also `EvalResult.save`
    there.

    ``device`` is where decoding runs; the model must already be there (``None``: wherever it
    is). Pass the bare model, not its DDP wrapper. ``on_batch(n)`` reports progress.
    """
    if not examples:
        raise PadlessInputError("no examples to evaluate", "no examples")
    if device is not None:
        have, want = next(model.parameters()).device, torch.device(device)
        if want.type != have.type or want.index not in (None, have.index):
            raise ValueError(f"the model is on {have}, not on {want}")
    hyps = decode_hypotheses(
        model, tokenizer, examples, config=config, on_batch=on_batch, audio_loader=audio_loader
    )
    result = score_hypotheses(hyps)
    if out_dir is not None:
        result.save(out_dir)
    return result
