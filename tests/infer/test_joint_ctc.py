"""Joint CTC/attention beam search (`padless.infer.ctc`).

The prefix scores are checked against their definitions by enumeration (every frame-level path
of a short utterance) and against PyTorch's CTC loss; the beam search against plain beam search
and against teacher-forced scores of what it returns, on a small model trained a few steps with
a byte CTC head on corpus utterances.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from padless.data.ctc import BYTE_BLANK_ID, byte_targets
from padless.data.dataset import collate, spoken_text
from padless.data.tokenizer import CanaryTokenizer
from padless.infer import DecodingOptions, decode_batch
from padless.infer.ctc import CtcPrefixScorer, CtcSpelling
from padless.infer.transcribe import pad_audio, transcribe
from padless.model import AEDModel, LossConfig

EOS = 0  # the toy vocabulary's end token: never spelt, scored as the end of the CTC output
#: Toy decoder tokens over CTC units {blank 0, a 1, b 2}: one unit, two units, nothing, a repeat.
TOY_SPELLING = [None, [1], [2], [1, 2], [], [2, 2]]


def toy_spelling() -> CtcSpelling:
    return CtcSpelling.from_lists(TOY_SPELLING, TOY_SPELLING, blank=0)


def collapse(path: tuple[int, ...]) -> list[int]:
    out, prev = [], None
    for unit in path:
        if unit != prev and unit != 0:
            out.append(unit)
        prev = unit
    return out


def enumerated(log_probs: torch.Tensor, frames: int, units: list[int]) -> tuple[float, float]:
    """(log p(CTC output starts with units), log p(CTC output is units)) over every path."""
    prefix = full = 0.0
    for path in itertools.product(range(log_probs.shape[1]), repeat=frames):
        p = float(torch.exp(sum(log_probs[t, u] for t, u in enumerate(path))))
        out = collapse(path)
        prefix += p if out[: len(units)] == units else 0.0
        full += p if out == units else 0.0
    return float(torch.tensor(prefix).log()), float(torch.tensor(full).log())


def test_prefix_scores_match_enumeration_of_every_path() -> None:
    torch.manual_seed(0)
    frames, lens = 5, torch.tensor([5, 3])  # the second utterance ends early (padding frames)
    log_probs = torch.randn(2, frames, 3).log_softmax(-1)
    # CTC alone (weight 1, decoder scores 0): each step's score is the prefix's gain.
    scorer = CtcPrefixScorer(log_probs, lens, torch.ones(2), toy_spelling(), candidates=6)
    att = torch.zeros(2, 1, len(TOY_SPELLING))
    walk = [1, 5, 4]  # a, then b b (needs a blank between), then an empty token
    spelt: list[int] = []
    total = torch.zeros(2, dtype=torch.float64)
    for token in walk:
        step = scorer.joint(att, EOS)[:, 0].double()  # (B, V)
        for row in range(2):
            for cand, spelling in enumerate(TOY_SPELLING):
                n = int(lens[row])
                want_prefix, _ = enumerated(log_probs[row], n, spelt + (spelling or []))
                if cand == EOS:
                    want_prefix = enumerated(log_probs[row], n, spelt)[1]
                got = float(total[row] + step[row, cand])
                if want_prefix == float("-inf"):  # more units than frames: past the padding
                    assert got < -1e3, (row, spelt, cand)
                else:
                    assert got == pytest.approx(want_prefix, abs=1e-6), (row, spelt, cand)
        total += step[:, token]
        spelt += TOY_SPELLING[token] or []
        scorer.advance(torch.zeros(2, 1, dtype=torch.long), torch.full((2, 1), token))


def test_full_sequence_score_is_the_ctc_loss() -> None:
    torch.manual_seed(1)
    frames = 60
    log_probs = torch.randn(3, frames, 3).mul(3).log_softmax(-1)
    lens = torch.tensor([60, 41, 25])
    scorer = CtcPrefixScorer(log_probs, lens, torch.ones(3), toy_spelling(), candidates=6)
    att = torch.zeros(3, 1, len(TOY_SPELLING))
    walk = [3, 5, 1, 1, 4, 2, 3]
    total = torch.zeros(3, dtype=torch.float64)
    for token in [*walk, EOS]:
        total += scorer.joint(att, EOS)[:, 0, token].double()
        scorer.advance(torch.zeros(3, 1, dtype=torch.long), torch.full((3, 1), token))
    units = [u for t in walk for u in TOY_SPELLING[t] or []]
    targets = torch.tensor([units] * 3)
    want = -F.ctc_loss(
        log_probs.transpose(0, 1).double(),
        targets,
        lens,
        torch.full((3,), len(units)),
        blank=0,
        reduction="none",
    )
    torch.testing.assert_close(total, want, rtol=0, atol=1e-4)  # float32 step scores


def test_only_candidates_survive_and_weight_zero_rows_are_the_decoder_alone() -> None:
    torch.manual_seed(2)
    log_probs = torch.randn(2, 8, 3).log_softmax(-1)
    scorer = CtcPrefixScorer(
        log_probs, torch.tensor([8, 8]), torch.tensor([0.4, 0.0]), toy_spelling(), candidates=3
    )
    att = torch.randn(2, 1, len(TOY_SPELLING)).log_softmax(-1)
    joint = scorer.joint(att, EOS)
    best = att[0, 0].topk(3).indices
    assert torch.isfinite(joint[0, 0, best]).all()
    outside = torch.ones(len(TOY_SPELLING), dtype=torch.bool)
    outside[best] = False
    assert torch.isneginf(joint[0, 0, outside]).all()
    torch.testing.assert_close(joint[1], att[1])


def test_tokenizer_spelling_is_the_ctc_target_of_the_text(
    tokenizer: CanaryTokenizer, utterances: Any
) -> None:
    spelling = CtcSpelling.from_tokenizer(tokenizer, "bytes")
    assert spelling.blank == BYTE_BLANK_ID
    for ex in utterances.examples:
        ids = tokenizer.encode(ex.text, ex.target_lang)
        units: list[int] = []
        for token in ids:
            side = 0 if units else 1  # a text's first units drop the word marker's space
            units += spelling.units[side, token, : spelling.lens[side, token]].tolist()
        assert units == byte_targets(tokenizer.decode(ids)), ex.text
    specials = [tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id, tokenizer.lang_id("en")]
    assert (spelling.lens[:, specials] == -1).all()
    assert (spelling.lens[:, tokenizer.nospeech_id] == 0).all()
    pieces = CtcSpelling.from_tokenizer(tokenizer, "tokens")
    assert pieces.blank == tokenizer.pad_id
    for ex in utterances.examples:  # token CTC targets are the encoded ids, first one included
        ids = tokenizer.encode(ex.text, ex.target_lang)
        spelt = [
            pieces.units[0 if i else 1, t, : pieces.lens[0 if i else 1, t]].tolist()
            for i, t in enumerate(ids)
        ]
        assert [u for s in spelt for u in s] == ids, ex.text


@pytest.fixture(scope="module")
def ctc_model(
    utterances: Any, tokenizer: CanaryTokenizer, small_config: Any, train: Any
) -> AEDModel:
    """The small model with a byte CTC head, 40 steps on the utterances (partly right)."""
    config = dataclasses.replace(
        small_config(tokenizer.vocab_size), loss=LossConfig(ctc_weight=0.5, ctc_units="bytes")
    )
    examples = utterances.examples
    prompts = [tokenizer.prompt_ids_for(ex) for ex in examples]
    sequences = [
        p + tokenizer.encode(ex.text, ex.target_lang) + [tokenizer.eos_id]
        for p, ex in zip(prompts, examples, strict=True)
    ]
    ctc = [byte_targets(spoken_text(ex)[0]) for ex in examples]
    batch = collate(
        utterances.waves,
        sequences,
        [len(p) for p in prompts],
        [ex.id for ex in examples],
        tokenizer.pad_id,
        ctc_sequences=ctc,
    )
    torch.manual_seed(0)
    model = AEDModel(config)
    train(model, batch, steps=40)
    return model.eval()


def test_joint_search_scores_are_the_weighted_decoder_and_ctc_log_probabilities(
    ctc_model: AEDModel, tokenizer: CanaryTokenizer, utterances: Any
) -> None:
    audio, lens = pad_audio(utterances.waves)
    prompts = [tokenizer.prompt_ids_for(ex) for ex in utterances.examples]
    asr = [ex.target_lang if ex.task == "asr" else None for ex in utterances.examples]
    spelling = CtcSpelling.from_tokenizer(tokenizer, "bytes")
    weight = 0.4
    options = DecodingOptions(strategy="beam", beam_size=3, ctc_weight=weight)
    hyps = decode_batch(
        ctc_model, audio, lens, prompts, options, spelling=spelling, transcripts=asr
    )
    plain = decode_batch(
        ctc_model, audio, lens, prompts, dataclasses.replace(options, ctc_weight=0.0)
    )
    checked = 0
    for row, hyp in enumerate(hyps):
        if asr[row] is None:  # translation rows: the decoder alone, as without CTC
            assert hyp.tokens == plain[row].tokens
            assert hyp.score == pytest.approx(plain[row].score, abs=1e-5)
            continue
        assert hyp.ended_with_eos
        emitted = [*hyp.tokens, tokenizer.eos_id]
        sequence = torch.tensor([prompts[row] + emitted])
        with torch.no_grad():
            one = audio[row : row + 1, : lens[row]]
            logits = ctc_model(one, lens[row : row + 1], sequence)
            _, frames, ctc_logp = ctc_model.encode_with_ctc(one, lens[row : row + 1])
        logp = logits[0, len(prompts[row]) - 1 : -1].float().log_softmax(-1)
        att = logp.gather(1, torch.tensor(emitted)[:, None]).sum().item()
        units = byte_targets(tokenizer.decode(hyp.tokens))
        ctc = -F.ctc_loss(
            ctc_logp.transpose(0, 1),
            torch.tensor([units]),
            frames,
            torch.tensor([len(units)]),
            blank=BYTE_BLANK_ID,
            reduction="sum",
        ).item()
        assert hyp.score == pytest.approx((1 - weight) * att + weight * ctc, abs=2e-3)
        checked += 1
    assert checked >= 2


def test_joint_decoding_through_transcribe_and_its_errors(
    ctc_model: AEDModel, tokenizer: CanaryTokenizer, utterances: Any, partly_trained: AEDModel
) -> None:
    options = DecodingOptions(strategy="beam", beam_size=2, ctc_weight=0.3)
    out = transcribe(ctc_model, tokenizer, utterances.examples, options=options)
    assert [t.id for t in out] == [ex.id for ex in utterances.examples]
    audio, lens = pad_audio(utterances.waves[:2])
    prompts = [tokenizer.prompt_ids_for(ex) for ex in utterances.examples[:2]]
    with pytest.raises(ValueError, match="spelling"):
        decode_batch(ctc_model, audio, lens, prompts, options)
    spelling = CtcSpelling.from_tokenizer(tokenizer, "bytes")
    with pytest.raises(ValueError, match="CTC head"):
        decode_batch(partly_trained, audio, lens, prompts, options, spelling=spelling)
    with pytest.raises(ValueError, match="beam"):
        DecodingOptions(ctc_weight=0.3)
    with pytest.raises(ValueError, match="ctc_weight"):
        DecodingOptions(strategy="beam", ctc_weight=1.5)
