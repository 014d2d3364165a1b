"""Model sources of a run: a checkpoint, and an encoder grown from a shallower checkpoint."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from trainrun import EMPTY_CONFIG, Corpus, base_overrides

from padless.data.errors import PadlessInputError
from padless.data.tokenizer import CanaryTokenizer
from padless.model import AEDModel, load_checkpoint, save_checkpoint
from padless.train.config import load_training_config
from padless.train.loop import build_model


def test_encoder_grows_from_a_shallower_checkpoint(corpus: Corpus, tmp_path: Path) -> None:
    source = load_checkpoint(corpus.model).model  # 2 encoder layers
    deeper = dataclasses.replace(
        source.config, encoder=dataclasses.replace(source.config.encoder, n_layers=3)
    )
    torch.manual_seed(1)
    save_checkpoint(tmp_path / "deep.pt", AEDModel(deeper), tokenizer=corpus.tokenizer)
    overrides = [
        *base_overrides(corpus, tmp_path),
        f"model.init={tmp_path / 'deep.pt'}",
        f"model.encoder_init={corpus.model}",
    ]
    config = load_training_config(EMPTY_CONFIG, overrides)
    tokenizer = CanaryTokenizer.load(corpus.tokenizer)
    model = build_model(config, tokenizer)
    fresh = load_checkpoint(tmp_path / "deep.pt").model

    def same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
        return all(
            torch.equal(x, y)
            for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
        )

    enc, src = model.encoder, source.encoder
    assert same(enc.subsampling, src.subsampling)
    assert same(enc.layers[0], src.layers[0]) and same(enc.layers[1], src.layers[1])
    assert same(enc.layers[2], fresh.encoder.layers[2])  # the new top layer: its own init
    assert not same(enc.layers[2], src.layers[1])
    assert same(model.decoder, fresh.decoder)  # the decoder is not touched

    # The other way round (a deeper source than the model) is refused with the reason.
    config = load_training_config(
        EMPTY_CONFIG,
        [
            *overrides[:-2],
            f"model.init={corpus.model}",
            f"model.encoder_init={tmp_path / 'deep.pt'}",
        ],
    )
    with pytest.raises(PadlessInputError, match="3 layers > the model's 2"):
        build_model(config, tokenizer)
