"""Batched greedy and beam search over the KV cache and the NeMo-like recompute reference.

The model is the small one trained for a few steps on short corpus utterances (`helpers.speech`):
its outputs vary, stop at EOS at different steps and are partly wrong, which exercises search,
per-row stopping and batch compaction. Rows mix languages and ASR/AST prompts.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch

from padless.data.tokenizer import CanaryTokenizer
from padless.infer import DecodingOptions, KVCache, decode_batch, decode_memory, output_limits
from padless.infer.search import Hypothesis
from padless.infer.transcribe import pad_audio
from padless.model import AEDModel
from padless.model.layers import sinusoids

EOS = 1
Batch = tuple[torch.Tensor, torch.Tensor, list[list[int]]]


@pytest.fixture(scope="module")
def model(partly_trained: AEDModel) -> AEDModel:
    return partly_trained


@pytest.fixture(scope="module")
def batch(utterances: Any, tokenizer: CanaryTokenizer) -> Batch:
    audio, lens = pad_audio(utterances.waves)
    return audio, lens, [tokenizer.prompt_ids_for(ex) for ex in utterances.examples]


def tokens_of(hyps: list[Hypothesis]) -> list[list[int]]:
    return [h.tokens for h in hyps]


@pytest.fixture(scope="module")
def greedy(model: AEDModel, batch: Batch) -> list[Hypothesis]:
    return decode_batch(model, *batch, DecodingOptions(compact_threshold=None))


def test_search_ends_rows_independently(greedy: list[Hypothesis]) -> None:
    ended = [h.ended_with_eos for h in greedy]
    lengths = [len(h.tokens) for h in greedy]
    assert sum(ended) >= 2 and len(set(lengths)) >= 3, (ended, lengths)
    assert all(EOS not in h.tokens for h in greedy)
    assert len({t for h in greedy for t in h.tokens}) >= 10, "outputs should be varied"


def test_greedy_tokens_are_the_teacher_forced_argmax(
    model: AEDModel, batch: Batch, greedy: list[Hypothesis]
) -> None:
    audio, lens, prompts = batch
    limits = output_limits(
        model.encode(audio, lens)[1], DecodingOptions(), model.config.frame_seconds
    )
    for row, hyp in enumerate(greedy):
        emitted = hyp.tokens + ([EOS] if hyp.ended_with_eos else [])
        sequence = torch.tensor([prompts[row] + emitted])
        with torch.no_grad():
            logits = model(audio[row : row + 1, : lens[row]], lens[row : row + 1], sequence)
        assert logits[0, len(prompts[row]) - 1 : -1].argmax(-1).tolist() == emitted
        if not hyp.ended_with_eos:
            assert len(emitted) == limits[row]  # stopped by its limit, not early


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_kv_cache_equals_recompute_token_for_token(
    model: AEDModel, batch: Batch, strategy: str
) -> None:
    outputs = {}
    for cache in ("kv", "recompute"):
        options = DecodingOptions(strategy=strategy, beam_size=3, length_penalty=1.0, cache=cache)  # type: ignore[arg-type]
        outputs[cache] = decode_batch(model, *batch, options)
    assert tokens_of(outputs["kv"]) == tokens_of(outputs["recompute"])
    if strategy == "beam":
        for a, b in zip(outputs["kv"], outputs["recompute"], strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-4)


@pytest.mark.parametrize("cache", ["kv", "recompute"])
def test_beam_width_one_equals_greedy(
    model: AEDModel, batch: Batch, greedy: list[Hypothesis], cache: str
) -> None:
    options = DecodingOptions(strategy="beam", beam_size=1, cache=cache)  # type: ignore[arg-type]
    assert tokens_of(decode_batch(model, *batch, options)) == tokens_of(greedy)


def test_beam_scores_are_length_penalised_log_probabilities(model: AEDModel, batch: Batch) -> None:
    audio, lens, prompts = batch
    alpha = 0.6
    options = DecodingOptions(strategy="beam", beam_size=4, length_penalty=alpha)
    for row, hyp in enumerate(decode_batch(model, audio, lens, prompts, options)):
        emitted = hyp.tokens + ([EOS] if hyp.ended_with_eos else [])
        sequence = torch.tensor([prompts[row] + emitted])
        with torch.no_grad():
            logits = model(audio[row : row + 1, : lens[row]], lens[row : row + 1], sequence)
        logp = logits[0, len(prompts[row]) - 1 : -1].float().log_softmax(-1)
        total = logp.gather(1, torch.tensor(emitted)[:, None]).sum().item()
        assert hyp.score == pytest.approx(total / ((5 + len(emitted)) / 6) ** alpha, abs=1e-3)


@pytest.mark.parametrize("cache", ["kv", "recompute"])
def test_decoded_tokens_do_not_depend_on_batch_padding(
    model: AEDModel, batch: Batch, greedy: list[Hypothesis], cache: str
) -> None:
    audio, lens, prompts = batch
    options = DecodingOptions(cache=cache)  # type: ignore[arg-type]
    for row in range(len(prompts)):
        alone = decode_batch(
            model, audio[row : row + 1, : lens[row]], lens[row : row + 1], [prompts[row]], options
        )
        assert alone[0].tokens == greedy[row].tokens


@pytest.mark.parametrize("cache", ["kv", "recompute"])
def test_prompts_of_different_lengths_are_left_padded(
    model: AEDModel, batch: Batch, cache: str
) -> None:
    audio, lens, prompts = batch
    # Cut some prompts short: rows then start at different positions in one batch.
    ragged = [p[: 5 - (row % 3)] for row, p in enumerate(prompts)]
    options = DecodingOptions(cache=cache)  # type: ignore[arg-type]
    together = decode_batch(model, audio, lens, ragged, options)
    for row, prompt in enumerate(ragged):
        alone = decode_batch(
            model, audio[row : row + 1, : lens[row]], lens[row : row + 1], [prompt], options
        )
        assert together[row].tokens == alone[0].tokens


def test_compaction_drops_finished_rows_without_changing_tokens(
    model: AEDModel, batch: Batch, greedy: list[Hypothesis]
) -> None:
    for threshold in (0.2, 0.5, 1.0):
        options = DecodingOptions(compact_threshold=threshold)
        assert tokens_of(decode_batch(model, *batch, options)) == tokens_of(greedy)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
@pytest.mark.parametrize("cache", ["kv", "recompute"])
def test_forced_lengths_emit_exactly_that_many_tokens(
    model: AEDModel, batch: Batch, strategy: str, cache: str
) -> None:
    rows = len(batch[2])
    forced = [1 + (7 * row) % 40 for row in range(rows)]  # some beyond the frame-based limit
    options = DecodingOptions(strategy=strategy, cache=cache, beam_size=2)  # type: ignore[arg-type]
    hyps = decode_batch(model, *batch, options, forced_lengths=forced)
    assert [len(h.tokens) + h.ended_with_eos for h in hyps] == forced


def test_output_length_is_bounded_by_encoder_frames(model: AEDModel, batch: Batch) -> None:
    audio, lens, prompts = batch
    # 6.25 tokens/s: half a token per 80 ms frame at 8x subsampling.
    options = DecodingOptions(max_tokens_per_second=6.25, max_new_tokens=9)
    memory, memory_lens = model.encode(audio, lens)
    assert model.config.frame_seconds == 0.08
    limits = output_limits(memory_lens, options, model.config.frame_seconds)
    assert limits.tolist() == [min(9, -(-n // 2)) for n in memory_lens.tolist()]
    # The same audio at 4x has twice the frames of half the length: the same limit.
    assert output_limits(2 * memory_lens, options, 0.04).tolist() == limits.tolist()
    hyps = decode_memory(model, memory, memory_lens, prompts, options)
    for hyp, limit in zip(hyps, limits.tolist(), strict=True):
        assert len(hyp.tokens) + hyp.ended_with_eos <= limit


def test_kv_cache_is_preallocated_and_written_in_place(model: AEDModel, batch: Batch) -> None:
    audio, lens, prompts = batch
    memory, memory_lens = model.encode(audio[:2], lens[:2])
    cache = KVCache(model.decoder, memory, memory_lens, max_len=12)
    assert cache.keys.shape == (2, 2, 2, 12, 48)  # (layers, rows, heads, max_len, d_head)
    pointers = (cache.keys.data_ptr(), cache.values.data_ptr())
    cross = [(k.data_ptr(), v.data_ptr()) for k, v in cache.cross]
    with torch.no_grad():
        model.decoder.step(torch.tensor(prompts[:2]), cache)
        for _ in range(6):
            model.decoder.step(torch.tensor([[20], [21]]), cache)
    assert cache.length == 11
    assert (cache.keys.data_ptr(), cache.values.data_ptr()) == pointers
    assert [(k.data_ptr(), v.data_ptr()) for k, v in cache.cross] == cross
    with pytest.raises(RuntimeError, match="cache overflow"), torch.no_grad():
        model.decoder.step(torch.tensor([[20, 20], [21, 21]]), cache)


def test_bad_decoding_inputs_are_clear_errors(model: AEDModel, batch: Batch) -> None:
    audio, lens, prompts = batch
    rows = len(prompts)
    with pytest.raises(ValueError, match=f"{rows - 1} prompts for a batch of {rows}"):
        decode_batch(model, audio, lens, prompts[1:])
    with pytest.raises(ValueError, match="non-empty prompt"):
        decode_batch(model, audio, lens, [[], *prompts[1:]])
    with pytest.raises(ValueError, match="one length >= 1 per row"):
        decode_batch(model, audio, lens, prompts, forced_lengths=[0] * rows)
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        DecodingOptions(strategy="beam", beam_size=0)
    model.train()
    try:
        with pytest.raises(ValueError, match=r"model\.eval\(\)"):
            decode_batch(model, audio, lens, prompts)
    finally:
        model.eval()


@pytest.mark.parametrize("cache", ["kv", "recompute"])
def test_memory_positions_reach_every_decoding_path(
    model: AEDModel, batch: Batch, cache: str
) -> None:
    # The same weights with `decoder.memory_positions`: decoding must see the memory the
    # teacher-forced forward sees (positions added once, in `AEDModel.encode`).
    config = dataclasses.replace(
        model.config, decoder=dataclasses.replace(model.config.decoder, memory_positions=True)
    )
    positioned = AEDModel(config).eval()
    positioned.load_state_dict(model.state_dict())
    audio, lens, prompts = batch
    with torch.no_grad():
        plain, _ = model.encode(audio, lens)
        shifted, _ = positioned.encode(audio, lens)
    frames = torch.arange(plain.shape[1])
    assert torch.allclose(
        shifted - plain, sinusoids(frames, plain.shape[2], plain.dtype), atol=1e-5
    )
    options = DecodingOptions(cache=cache, compact_threshold=None)  # type: ignore[arg-type]
    for row, hyp in enumerate(decode_batch(positioned, *batch, options)):
        emitted = hyp.tokens + ([EOS] if hyp.ended_with_eos else [])
        sequence = torch.tensor([prompts[row] + emitted])
        with torch.no_grad():
            logits = positioned(audio[row : row + 1, : lens[row]], lens[row : row + 1], sequence)
        assert logits[0, len(prompts[row]) - 1 : -1].argmax(-1).tolist() == emitted
