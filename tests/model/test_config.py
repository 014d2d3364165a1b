"""Presets reproduce the paper's parameter counts, counted on the meta device (no weights)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from padless.model import (
    PRESETS,
    AEDModel,
    EncoderConfig,
    ModelConfig,
    build_on_meta,
    get_config,
    parameter_counts,
)

# Paper, Table 3 (Canary-1B family) and the canary-180m-flash model card, in millions.
PAPER_PARAMS_M = {
    "canary-1b": 1018,
    "canary-1b-small-decoder": 680,
    "canary-1b-flash": 882,
    "canary-180m-flash": 182,
}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_full_size_parameter_counts_within_one_percent(name: str) -> None:
    model = build_on_meta(get_config(name))
    assert all(p.is_meta for p in model.parameters()), "counting must not allocate weights"
    counts = parameter_counts(model)
    expected = PAPER_PARAMS_M[name] * 1e6
    assert abs(counts["total"] - expected) / expected < 0.01, counts
    assert counts["total"] == counts["encoder"] + counts["projection"] + counts["decoder"]


def test_moving_layers_from_decoder_to_encoder_changes_counts_as_expected() -> None:
    counts = {name: parameter_counts(build_on_meta(get_config(name))) for name in PAPER_PARAMS_M}
    # small-decoder drops 20 decoder layers; flash adds 8 encoder layers to it.
    assert counts["canary-1b-small-decoder"]["encoder"] == counts["canary-1b"]["encoder"]
    assert counts["canary-1b-flash"]["decoder"] == counts["canary-1b-small-decoder"]["decoder"]
    per_enc_layer = (
        counts["canary-1b-flash"]["encoder"] - counts["canary-1b-small-decoder"]["encoder"]
    ) / 8
    assert 25.0e6 < per_enc_layer < 25.4e6  # macaron FFNs + rel-pos MHSA + conv module
    assert counts["canary-180m-flash"]["projection"] == 512 * 1024 + 1024


def test_tiny_presets_have_the_requested_shapes() -> None:
    shapes = {
        "tiny-canary-1b": (6, 6),
        "tiny-canary-1b-small-decoder": (6, 1),
        "tiny-canary-1b-flash": (8, 1),
    }
    for name, (enc, dec) in shapes.items():
        cfg = PRESETS[name]
        assert (cfg.encoder.n_layers, cfg.decoder.n_layers) == (enc, dec)
        assert cfg.encoder.d_model == cfg.decoder.d_model == 176
        assert parameter_counts(build_on_meta(cfg))["total"] < 10e6


def test_config_round_trips_through_a_plain_dict() -> None:
    for cfg in PRESETS.values():
        assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert PRESETS["canary-1b"].with_vocab_size(1036).vocab_size == 1036


def test_unknown_or_inconsistent_fields_are_clear_errors() -> None:
    data = PRESETS["tiny-canary-1b"].to_dict()
    data["encoder"]["n_layer"] = 3
    with pytest.raises(ValueError, match=r"unknown field\(s\) \['n_layer'\]"):
        ModelConfig.from_dict(data)
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        ModelConfig(encoder=EncoderConfig(d_model=100, n_heads=8))
    with pytest.raises(ValueError, match="n_mels=80 must be divisible"):
        dataclasses.replace(PRESETS["tiny-canary-1b"], encoder=EncoderConfig(subsampling_factor=32))
    with pytest.raises(ValueError, match="power of 2"):
        ModelConfig(encoder=EncoderConfig(subsampling_factor=6))
    with pytest.raises(ValueError, match="neither a preset"):
        get_config("canary-2b")


def test_meta_model_materializes_into_a_usable_model() -> None:
    cfg = dataclasses.replace(PRESETS["tiny-canary-1b"], vocab_size=64)
    model = build_on_meta(cfg).materialize("cpu").eval()
    assert not any(p.is_meta for p in model.parameters())
    audio = torch.randn(1, 8000)
    logits = model(audio, torch.tensor([8000]), torch.tensor([[2, 8, 3, 8, 5]]))
    assert logits.shape == (1, 5, 64)
    assert torch.isfinite(logits).all()
    # Same parameter count as an eagerly built model.
    assert parameter_counts(model) == parameter_counts(AEDModel(cfg))
