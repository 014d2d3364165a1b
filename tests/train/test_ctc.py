"""The auxiliary CTC loss: its targets (what is said), its effect on the loss and parameters,
checkpoints, and the training config's model overrides that switch it on."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from trainrun import EMPTY_CONFIG, Corpus, base_overrides

from padless.data.ctc import BYTE_BLANK_ID, BYTE_VOCAB_SIZE, byte_targets, bytes_text, min_frames
from padless.data.dataset import SpeechDataset, SpeechDatasetConfig
from padless.data.errors import PadlessInputError
from padless.data.example import Example
from padless.data.stream import read_manifest
from padless.data.tokenizer import CanaryTokenizer
from padless.model import AEDModel, ModelConfig, load_checkpoint, save_checkpoint
from padless.train.config import load_training_config
from padless.train.loop import build_model


def _examples(corpus: Corpus) -> tuple[Example, Example]:
    """The first ASR and the first AST example of the corpus (both with some words)."""
    examples = list(read_manifest(str(corpus.train))) + list(read_manifest(str(corpus.dev)))
    asr = next(e for e in examples if e.task == "asr" and e.text and len(e.text.split()) > 2)
    ast = next(e for e in examples if e.task == "ast" and e.text and len(e.text.split()) > 2)
    return asr, ast


def _with_ctc(config: ModelConfig, weight: float) -> ModelConfig:
    return dataclasses.replace(
        config, loss=dataclasses.replace(config.loss, ctc_weight=weight), name="test-ctc"
    )


def test_ctc_targets_are_what_is_said(corpus: Corpus) -> None:
    tok = CanaryTokenizer.load(corpus.tokenizer)
    asr, ast = _examples(corpus)
    assert ast.source_lang != ast.target_lang
    batch = SpeechDataset(tok, SpeechDatasetConfig(ctc_targets=True))[[asr, ast]]
    assert batch.ctc_tokens is not None and batch.ctc_lens is not None
    said_asr = tok.encode(asr.text or "", asr.source_lang or "")
    said_ast = tok.encode(ast.extras["source_text"], ast.source_lang or "")  # type: ignore[index]
    assert batch.ctc_lens.tolist() == [len(said_asr), len(said_ast)]
    assert batch.ctc_tokens[0, : len(said_asr)].tolist() == said_asr
    assert batch.ctc_tokens[1, : len(said_ast)].tolist() == said_ast
    for row, n in enumerate(batch.ctc_lens.tolist()):  # right padding is pad_id (the blank)
        assert (batch.ctc_tokens[row, n:] == tok.pad_id).all()
    # For AST the CTC target is the source transcript, not the translation the decoder learns.
    translation = tok.encode(ast.text or "", ast.target_lang or "")
    assert said_ast != translation
    assert batch.tokens[1, batch.prompt_lens[1] : batch.token_lens[1] - 1].tolist() == translation

    # Not asked for: no CTC tensors. An AST example without its source text: an error naming it.
    assert SpeechDataset(tok)[[asr]].ctc_tokens is None
    bare = dataclasses.replace(ast, extras={})
    with pytest.raises(ValueError, match=f"{ast.id}.*source_text"):
        SpeechDataset(tok, SpeechDatasetConfig(ctc_targets=True))[[bare]]


def test_weight_zero_is_the_plain_model_and_loss(corpus: Corpus) -> None:
    tok = CanaryTokenizer.load(corpus.tokenizer)
    base = load_checkpoint(corpus.model).model.eval()
    assert base.config.loss.ctc_weight == 0.0 and base.ctc_head is None
    asr, ast = _examples(corpus)
    with_ctc = SpeechDataset(tok, SpeechDatasetConfig(ctc_targets=True))[[asr, ast]]
    plain = SpeechDataset(tok)[[asr, ast]]
    with torch.no_grad():
        loss, loss_plain = base.loss(with_ctc), base.loss(plain)
        # The cross-entropy written out: the loss of a model without CTC, batch targets or not.
        targets = plain.tokens[:, 1:].clone()
        index = torch.arange(targets.shape[1])[None, :]
        drop = (index >= (plain.token_lens - 1)[:, None]) | (
            index < (plain.prompt_lens - 1)[:, None]
        )
        logits = base(plain.audio, plain.audio_lens, plain.tokens[:, :-1])
        ce = F.cross_entropy(logits.flatten(0, 1), targets.masked_fill(drop, -100).flatten())
    assert torch.equal(loss, loss_plain) and torch.equal(loss, ce)

    torch.manual_seed(0)
    hybrid = AEDModel(_with_ctc(base.config, 0.3))
    assert hybrid.ctc_head is not None
    extra = {n for n, _ in hybrid.named_parameters()} - {n for n, _ in base.named_parameters()}
    assert extra == {"ctc_head.weight", "ctc_head.bias"}
    assert hybrid.ctc_head.out_features == tok.vocab_size
    assert hybrid.ctc_blank_id == tok.pad_id


def test_hybrid_loss_is_finite_and_falls_when_overfitting(corpus: Corpus) -> None:
    tok = CanaryTokenizer.load(corpus.tokenizer)
    base = load_checkpoint(corpus.model).model
    torch.manual_seed(0)
    model = AEDModel(_with_ctc(base.config, 0.5)).train()
    batch = SpeechDataset(tok, SpeechDatasetConfig(ctc_targets=True))[list(_examples(corpus))]
    assert batch.ctc_tokens is not None and batch.ctc_lens is not None
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def ctc_part() -> float:
        with torch.no_grad():
            model.eval()
            states, lens = model._encoder_states(batch.audio, batch.audio_lens)
            model.train()
            assert batch.ctc_tokens is not None and batch.ctc_lens is not None
            return float(model.ctc_loss(states, lens, batch.ctc_tokens, batch.ctc_lens))

    ctc_before = ctc_part()
    losses = []
    for _ in range(40):
        loss = model.loss(batch)
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        assert model.ctc_head is not None and model.ctc_head.weight.grad is not None
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.5 * losses[0]
    assert ctc_part() < 0.5 * ctc_before


def test_checkpoint_keeps_the_ctc_head(corpus: Corpus, tmp_path: Path) -> None:
    base = load_checkpoint(corpus.model).model
    torch.manual_seed(0)
    model = AEDModel(_with_ctc(base.config, 0.3))
    save_checkpoint(tmp_path / "ctc.pt", model, tokenizer=corpus.tokenizer)
    loaded = load_checkpoint(tmp_path / "ctc.pt").model
    assert loaded.config.loss.ctc_weight == 0.3
    assert loaded.ctc_head is not None and model.ctc_head is not None
    assert torch.equal(loaded.ctc_head.weight, model.ctc_head.weight)
    assert torch.equal(loaded.ctc_head.bias, model.ctc_head.bias)


def test_training_config_overrides_the_preset(corpus: Corpus, tmp_path: Path) -> None:
    tok = CanaryTokenizer.load(corpus.tokenizer)
    overrides = [
        *base_overrides(corpus, tmp_path),
        "model.init=tiny-canary-1b-flash",
        "model.overrides={encoder: {d_model: 96, n_layers: 2}, decoder: {d_model: 96}}",
        "model.overrides.loss.ctc_weight=0.3",
    ]
    model = build_model(load_training_config(EMPTY_CONFIG, overrides), tok)
    assert model.config.encoder.d_model == 96 and len(model.encoder.layers) == 2
    assert model.config.loss.ctc_weight == 0.3 and model.ctc_head is not None
    assert model.config.vocab_size == tok.vocab_size

    bad = [*overrides, "model.overrides.encoder.depth=3"]
    with pytest.raises(PadlessInputError, match="depth"):
        build_model(load_training_config(EMPTY_CONFIG, bad), tok)
    from_checkpoint = [*overrides, f"model.init={corpus.model}"]
    with pytest.raises(PadlessInputError, match="preset"):
        build_model(load_training_config(EMPTY_CONFIG, from_checkpoint), tok)


def test_byte_targets_are_the_lowercased_utf8_of_what_is_said(corpus: Corpus) -> None:
    assert byte_targets("Él, 5.") == [b + 1 for b in "él, 5.".encode()]
    assert len(byte_targets("é")) == 2  # two UTF-8 bytes, two CTC labels
    assert bytes_text(byte_targets("Año Über")) == "año über"
    tok = CanaryTokenizer.load(corpus.tokenizer)
    asr, ast = _examples(corpus)
    config = SpeechDatasetConfig(ctc_targets=True, ctc_units="bytes")
    batch = SpeechDataset(tok, config)[[asr, ast]]
    assert batch.ctc_tokens is not None and batch.ctc_lens is not None
    said = [asr.text or "", ast.extras["source_text"]]  # type: ignore[index]
    for row, text in enumerate(said):
        n = int(batch.ctc_lens[row])
        assert bytes_text(batch.ctc_tokens[row, :n].tolist()) == text.lower()
        assert (batch.ctc_tokens[row, :n] > BYTE_BLANK_ID).all()
    with pytest.raises(ValueError, match="ctc_units"):
        SpeechDatasetConfig(ctc_targets=True, ctc_units="letters")  # type: ignore[arg-type]


def test_byte_ctc_head_has_its_own_classes_and_blank(corpus: Corpus) -> None:
    tok = CanaryTokenizer.load(corpus.tokenizer)
    base = load_checkpoint(corpus.model).model
    config = _with_ctc(base.config, 0.5)
    config = dataclasses.replace(
        config,
        # 4x: bytes outnumber 80 ms frames (the loss would be zero_infinity's 0, without grads).
        encoder=dataclasses.replace(config.encoder, subsampling_factor=4),
        loss=dataclasses.replace(config.loss, ctc_units="bytes"),
    )
    torch.manual_seed(0)
    model = AEDModel(config).train()
    assert model.ctc_head is not None and model.ctc_head.out_features == BYTE_VOCAB_SIZE
    assert model.ctc_blank_id == BYTE_BLANK_ID
    dataset = SpeechDataset(tok, SpeechDatasetConfig(ctc_targets=True, ctc_units="bytes"))
    batch = dataset[list(_examples(corpus))]
    loss = model.loss(batch)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.ctc_head.weight.grad is not None and model.ctc_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="ctc_units"):
        dataclasses.replace(config.loss, ctc_units="letters")


def test_min_frames_counts_a_blank_between_repeated_units() -> None:
    targets = torch.tensor([[5, 5, 6, 6, 6], [7, 8, 7, 0, 0], [9, 9, 0, 0, 0]])
    lens = torch.tensor([5, 3, 1])  # the third row's second 9 is padding: no repeat counted
    assert min_frames(targets, lens).tolist() == [8, 3, 1]


def test_infeasible_count_is_the_utterances_ctc_cannot_align(corpus: Corpus) -> None:
    """`ctc_infeasible` (what the loop logs as ``ctc_dropped``) counts exactly the utterances
    whose CTC loss is infinite without ``zero_infinity``: bytes at 8x subsampling, where fast
    speech says more bytes than it has 80 ms frames."""
    tok = CanaryTokenizer.load(corpus.tokenizer)
    base = load_checkpoint(corpus.model).model.config
    hybrid = _with_ctc(base, 0.5)
    config = dataclasses.replace(hybrid, loss=dataclasses.replace(hybrid.loss, ctc_units="bytes"))
    model = AEDModel(config).eval()
    examples = list(read_manifest(str(corpus.train)))
    batch = SpeechDataset(tok, SpeechDatasetConfig(ctc_targets=True, ctc_units="bytes"))[examples]
    assert batch.ctc_tokens is not None and batch.ctc_lens is not None
    with torch.no_grad():
        states, lens = model._encoder_states(batch.audio, batch.audio_lens)
        assert model.ctc_head is not None
        log_probs = model.ctc_head(states).float().log_softmax(-1).transpose(0, 1)
        per_utterance = F.ctc_loss(
            log_probs, batch.ctc_tokens, lens, batch.ctc_lens, blank=0, reduction="none"
        )
    infinite = int(torch.isinf(per_utterance).sum())
    assert 0 < infinite < len(examples)  # the check can fail both ways on this corpus
    assert int(model.ctc_infeasible(batch)) == infinite
    plain = AEDModel(base).eval()  # no CTC head: nothing to drop
    assert int(plain.ctc_infeasible(batch)) == 0
