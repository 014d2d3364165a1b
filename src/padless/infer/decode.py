"""Batched decoding of audio tensors: encoder once, then a search strategy over a cache."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from padless.infer.cache import CACHES
from padless.infer.ctc import CtcPrefixScorer, CtcSpelling
from padless.infer.options import DecodingOptions
from padless.infer.search import STRATEGIES, Hypothesis, beam_search
from padless.model.aed import AEDModel


def left_pad_prompts(
    prompts: Sequence[Sequence[int]], pad_id: int, device: torch.device | str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-row prompts -> ``(B, P)`` ids, left-padded, and the pad count per row (None when
    every prompt has the same length, the common case)."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every row needs a non-empty prompt")
    width = max(len(p) for p in prompts)
    rows = [[pad_id] * (width - len(p)) + list(p) for p in prompts]
    tokens = torch.tensor(rows, dtype=torch.long, device=device)
    if all(len(p) == width for p in prompts):
        return tokens, None
    offsets = torch.tensor([width - len(p) for p in prompts], dtype=torch.long, device=device)
    return tokens, offsets


def output_limits(
    memory_lens: torch.Tensor,
    options: DecodingOptions,
    frame_seconds: float,
    prompt_len: int = 0,
) -> torch.Tensor:
    """Max output tokens (EOS included) per row, bounded by the audio's duration: encoder
    frames of ``frame_seconds`` each (see `DecodingOptions.max_generation_delta` for NeMo's
    rule, which counts frames and the prompt)."""
    delta = options.max_generation_delta
    if delta is None:
        per_frame = options.max_tokens_per_second * frame_seconds
        limits = torch.ceil(memory_lens.double() * per_frame).long()
    else:
        limits = memory_lens.long() + (delta - prompt_len + (options.strategy == "beam"))
    return limits.clamp(min=1, max=options.max_new_tokens)


@torch.inference_mode()
def decode_memory(
    model: AEDModel,
    memory: torch.Tensor,
    memory_lens: torch.Tensor,
    prompts: Sequence[Sequence[int]],
    options: DecodingOptions = DecodingOptions(),
    forced_lengths: Sequence[int] | None = None,
    limit_lens: torch.Tensor | None = None,
    ctc: CtcPrefixScorer | None = None,
) -> list[Hypothesis]:
    """Search from encoder states ``memory (B, T, D)`` (see `AEDModel.encode`).

    ``limit_lens``: the encoder frames the output limit is computed from, when not
    ``memory_lens`` (NeMo's rule, see `nemo_limit_frames`). ``ctc``: joint CTC/attention beam
    search with this scorer of the same utterances."""
    if model.training:
        raise ValueError("decoding needs model.eval() (dropout would change the outputs)")
    if len(prompts) != memory.shape[0]:
        raise ValueError(f"{len(prompts)} prompts for a batch of {memory.shape[0]}")
    tokens, offsets = left_pad_prompts(prompts, model.config.pad_id, memory.device)
    if forced_lengths is not None:
        if len(forced_lengths) != len(prompts) or min(forced_lengths) < 1:
            raise ValueError("forced_lengths needs one length >= 1 per row")
        limits = torch.tensor(list(forced_lengths), dtype=torch.long, device=memory.device)
    else:
        frames = memory_lens if limit_lens is None else limit_lens
        limits = output_limits(frames, options, model.config.frame_seconds, tokens.shape[1])
    max_len = tokens.shape[1] + int(limits.max())
    cache = CACHES[options.cache](model.decoder, memory, memory_lens, max_len, offsets)
    search = dict(eos_id=model.config.eos_id, pad_id=model.config.pad_id)
    forced = forced_lengths is not None
    if ctc is not None:
        if options.strategy != "beam":
            raise ValueError("joint CTC decoding needs strategy 'beam'")
        return beam_search(
            model.decoder, cache, tokens, limits, options, **search, forced=forced, ctc=ctc
        )
    strategy = STRATEGIES[options.strategy]
    return strategy(model.decoder, cache, tokens, limits, options, **search, forced=forced)


@torch.inference_mode()
def decode_batch(
    model: AEDModel,
    audio: torch.Tensor,
    audio_lens: torch.Tensor,
    prompts: Sequence[Sequence[int]],
    options: DecodingOptions = DecodingOptions(),
    forced_lengths: Sequence[int] | None = None,
    *,
    spelling: CtcSpelling | None = None,
    transcripts: Sequence[str | None] | None = None,
) -> list[Hypothesis]:
    """``audio (B, T)`` float at 16 kHz, zero-padded, with per-row prompt ids -> hypotheses.

    Rows may mix languages and tasks (each row has its own prompt). ``forced_lengths`` makes
    row r emit exactly ``forced_lengths[r]`` tokens whatever it predicts (for timing).

    Joint CTC/attention decoding (``options.ctc_weight > 0``) needs the tokens' CTC
    ``spelling`` (`CtcSpelling.from_tokenizer`). It applies to the rows whose output is what is
    said (ASR): ``transcripts`` gives each row's transcript language, None for a row that is not
    a transcript (AST: the decoder alone); None for the whole list: every row, any language.
    """
    ctc = None
    if options.ctc_weight > 0 and (transcripts is None or any(t is not None for t in transcripts)):
        if spelling is None:
            raise ValueError("joint CTC decoding (ctc_weight > 0) needs the tokens' CTC spelling")
        if model.ctc_head is None:
            raise ValueError(
                "joint CTC decoding (ctc_weight > 0) needs a model trained with a CTC head "
                "(loss.ctc_weight > 0); this one has none"
            )
        memory, memory_lens, ctc_log_probs = model.encode_with_ctc(audio, audio_lens)
        if transcripts is None:
            weights = torch.full((len(prompts),), options.ctc_weight)
            languages = None
        else:
            if len(transcripts) != len(prompts):
                raise ValueError(f"{len(transcripts)} transcript languages for {len(prompts)} rows")
            weights = torch.tensor([0.0 if t is None else options.ctc_weight for t in transcripts])
            languages = torch.tensor([spelling.language_index(t) for t in transcripts])
        ctc = CtcPrefixScorer(
            ctc_log_probs, memory_lens, weights, spelling, options.ctc_candidates, languages
        )
    else:
        memory, memory_lens = model.encode(audio, audio_lens)
    limit_lens = None
    if options.max_generation_delta is not None:
        limit_lens = nemo_limit_frames(model, audio_lens)
    return decode_memory(
        model, memory, memory_lens, prompts, options, forced_lengths, limit_lens=limit_lens, ctc=ctc
    )


def nemo_limit_frames(model: AEDModel, audio_lens: torch.Tensor) -> torch.Tensor:
    """The encoder frames NeMo's output limit counts for each utterance decoded alone: the time
    axis of its encoder output, i.e. every centred STFT frame subsampled, which for some lengths
    is one more than the valid frames (NeMo counts ``L // hop`` valid feature frames of the
    ``L // hop + 1`` its STFT returns)."""
    stft_frames = torch.div(audio_lens, model.config.features.hop_length, rounding_mode="floor")
    return model.encoder.output_lengths(stft_frames + 1)
