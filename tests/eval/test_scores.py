"""WER and BLEU against hand-computed cases, and grouping per language and direction."""

from __future__ import annotations

import math

import pytest

from padless.data.errors import PadlessInputError
from padless.eval.evaluate import Hypothesis, score_hypotheses
from padless.eval.scores import WerScore, corpus_bleu, pooled, word_errors


def test_one_substitution_in_four_words_is_25_percent():
    score = word_errors(["the cat sat down"], ["the cat sat up"], "en")
    assert (score.substitutions, score.deletions, score.insertions) == (1, 0, 0)
    assert score.reference_words == 4 and score.wer == 25.0


def test_normalisation_applies_before_counting():
    # case, punctuation and the number spelling differ; the words do not
    score = word_errors(["It's forty-five percent."], ["it is 45%"], "en")
    assert score.errors == 0 and score.wer == 0.0
    # German: only case and punctuation go
    assert word_errors(["Der Zug, bitte!"], ["der zug bitte"], "de").wer == 0.0


def test_corpus_level_not_mean_of_utterances():
    # 1 error in 1 word and 0 in 9: corpus WER 10%, a mean of per-utterance rates would be 50%
    refs = ["yes", "one two three four five six seven eight nine"]
    hyps = ["no", "one two three four five six seven eight nine"]
    assert word_errors(refs, hyps, "fr").wer == pytest.approx(10.0)


def test_empty_hypothesis_and_empty_reference():
    # an empty hypothesis deletes every reference word; an empty reference makes every
    # hypothesis word an insertion, counted against the other references' words
    score = word_errors(["a b c", ""], ["", "x y"], "fr")
    assert (score.deletions, score.insertions, score.reference_words) == (3, 2, 3)
    assert score.wer == pytest.approx(100 * 5 / 3)
    with pytest.raises(PadlessInputError, match="all 2 references are empty"):
        word_errors(["", "..."], ["a", ""], "fr")
    with pytest.raises(ValueError, match="2 references but 1"):
        word_errors(["a", "b"], ["a"], "fr")


def test_pooled_adds_counts():
    a = WerScore(utterances=1, reference_words=4, substitutions=1, deletions=0, insertions=0)
    b = WerScore(utterances=2, reference_words=16, substitutions=0, deletions=2, insertions=1)
    total = pooled([a, b])
    assert total.utterances == 3 and total.wer == pytest.approx(100 * 4 / 20)


def test_bleu_identical_is_100_and_disjoint_is_0():
    refs = ["The train leaves at seven fifteen.", "Prices rose by forty-five percent."]
    assert corpus_bleu(refs, refs).bleu == pytest.approx(100.0)
    assert corpus_bleu(refs, ["Nothing here matches", "Zero overlap really"]).bleu == 0
    empty = corpus_bleu(refs, ["", ""])
    assert empty.bleu == 0.0 and empty.hypothesis_length == 0 and empty.reference_length == 13
    assert "tok:13a" in empty.signature and "case:mixed" in empty.signature


def test_bleu_is_on_raw_text():
    # no normalisation: case and punctuation count (13a splits the final period off)
    ref = ["The train leaves at seven fifteen."]
    assert corpus_bleu(ref, ["the train leaves at seven fifteen"]).bleu < 100
    # under four words there are no 4-grams: corpus BLEU is 0 even for an exact hypothesis
    assert corpus_bleu(["Fifty."], ["Fifty."]).bleu == 0.0


def test_bleu_hand_computed():
    # hyp "a b c d e f" vs ref "a b c d e g": n-gram precisions 5/6, 4/5, 3/4, 2/3, equal lengths
    expected = 100 * math.exp(sum(math.log(p) for p in (5 / 6, 4 / 5, 3 / 4, 2 / 3)) / 4)
    assert corpus_bleu(["a b c d e g"], ["a b c d e f"]).bleu == pytest.approx(expected)


def _hyp(i: int, task: str, src: str, tgt: str, ref: str, hyp: str) -> Hypothesis:
    return Hypothesis(
        id=f"u{i}",
        task="asr" if task == "asr" else "ast",
        source_lang=src,
        target_lang=tgt,
        pnc=True,
        duration=1.0,
        reference=ref,
        hypothesis=hyp,
    )


def test_grouping_per_language_and_direction():
    long_de = "Der Zug fährt um sieben Uhr fünfzehn ab."
    hyps = [
        _hyp(0, "asr", "en", "en", "the cat sat down", "the cat sat up"),  # 1/4
        _hyp(1, "asr", "fr", "fr", "un deux trois", "un deux trois"),  # 0/3
        _hyp(2, "asr", "en", "en", "we meet here today", "we meet here today"),  # 0/4
        _hyp(3, "ast", "en", "de", long_de, long_de),
        _hyp(4, "ast", "de", "en", "The train leaves at seven.", "Nothing alike here sorry"),
    ]
    result = score_hypotheses(hyps)
    assert result.wer == {"en": pytest.approx(12.5), "fr": 0.0}
    assert result.wer_avg == pytest.approx(6.25)  # each language weighs the same
    assert result.wer_total == pytest.approx(100 * 1 / 11)  # pooled: 1 edit in 11 words
    assert set(result.bleu) == {"en->de", "de->en"}
    assert result.bleu["en->de"] == pytest.approx(100.0) and result.bleu["de->en"] == 0.0
    assert result.bleu_avg == pytest.approx(50.0)
    assert result.wer_scores["en"].utterances == 2 and result.bleu_scores["en->de"].utterances == 1
    assert [h.id for h in result.hypotheses] == [f"u{i}" for i in range(5)]
    assert result.metrics() == {
        "wer_avg": result.wer_avg,
        "bleu_avg": result.bleu_avg,
        "wer_total": result.wer_total,
        "wer/en": result.wer["en"],
        "wer/fr": 0.0,
        "bleu/de->en": 0.0,
        "bleu/en->de": result.bleu["en->de"],
    }


def test_only_one_task():
    asr_only = score_hypotheses([_hyp(0, "asr", "es", "es", "hola amigo", "hola amiga")])
    assert asr_only.bleu == {} and asr_only.bleu_avg is None and asr_only.wer == {"es": 50.0}
    assert "bleu_avg" not in asr_only.metrics() and asr_only.to_dict()["bleu_avg"] is None
