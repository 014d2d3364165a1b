"""Corpus-level WER (jiwer) and BLEU (sacrebleu), grouped per ASR language and AST direction.

WER is corpus-level: the edits of every utterance of a group (substitutions + deletions +
insertions) over its reference words, in percent; not a mean of per-utterance rates, which would
weigh a two-word utterance like a twenty-word one. References and hypotheses are normalised first
(`padless.eval.normalize`). An empty reference scores its hypothesis words as insertions and an
empty hypothesis its reference words as deletions (jiwer does both); a group whose references are
all empty has no WER (nothing to divide by) and is an error that names it.

BLEU is sacrebleu's corpus BLEU with its defaults (13a tokenisation, case-sensitive, exponential
smoothing, no effective order) on the raw text, not normalised: sacrebleu expects detokenised,
cased text and its 13a tokeniser splits punctuation itself, and this is how AST results are
reported (the ``signature`` records the settings). An empty hypothesis contributes its reference
length and no matches. Corpus BLEU counts n-grams up to 4 over the whole group, so a group made
only of sentences under four words scores 0 even when every hypothesis is exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from padless.data.errors import PadlessInputError
from padless.eval.normalize import normalize


@dataclass(frozen=True)
class WerScore:
    """Word error counts of one group of utterances, normalised."""

    utterances: int
    reference_words: int
    substitutions: int
    deletions: int
    insertions: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Edits per reference word, in percent."""
        return 100.0 * self.errors / self.reference_words


@dataclass(frozen=True)
class BleuScore:
    """Corpus BLEU of one group of utterances."""

    utterances: int
    bleu: float
    hypothesis_length: int  # 13a tokens
    reference_length: int
    signature: str  # sacrebleu's record of the settings, e.g. "nrefs:1|case:mixed|...|tok:13a|..."


def word_errors(references: Sequence[str], hypotheses: Sequence[str], lang: str) -> WerScore:
    """`WerScore` of raw texts in language ``lang``, normalised here."""
    import jiwer

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        raise ValueError(f"WER for {lang!r}: no utterances")
    refs = [normalize(text, lang) for text in references]
    hyps = [normalize(text, lang) for text in hypotheses]
    out = jiwer.process_words(refs, hyps)
    ref_words = out.hits + out.substitutions + out.deletions
    if ref_words == 0:
        raise PadlessInputError(
            f"WER for {lang!r}: all {len(refs)} references are empty after normalisation",
            "empty references",
        )
    return WerScore(
        utterances=len(refs),
        reference_words=ref_words,
        substitutions=out.substitutions,
        deletions=out.deletions,
        insertions=out.insertions,
    )


def corpus_bleu(references: Sequence[str], hypotheses: Sequence[str]) -> BleuScore:
    """`BleuScore` of raw (cased, punctuated) texts, one reference per hypothesis."""
    from sacrebleu.metrics import BLEU

    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    metric = BLEU()
    score = metric.corpus_score(list(hypotheses), [list(references)])
    return BleuScore(
        utterances=len(references),
        bleu=float(score.score),
        hypothesis_length=int(score.sys_len),
        reference_length=int(score.ref_len),
        signature=str(metric.get_signature()),
    )


def pooled(scores: Sequence[WerScore]) -> WerScore:
    """Several groups as one: counts add, so the WER is edits over all reference words."""
    return WerScore(
        utterances=sum(s.utterances for s in scores),
        reference_words=sum(s.reference_words for s in scores),
        substitutions=sum(s.substitutions for s in scores),
        deletions=sum(s.deletions for s in scores),
        insertions=sum(s.insertions for s in scores),
    )
