"""NeMo Canary conversion against NeMo's own outputs, without NeMo installed.

The fixtures are tiny random-weight ``EncDecMultiTaskModel``s that NeMo built and saved, with
NeMo's outputs on two fixed waveforms (``bench/peers/nemo/fixtures.py`` makes both). A converted
model must reproduce those outputs: features, encoder states and log-probabilities within fp32
tolerances, greedy and beam transcripts token for token.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import tarfile
from pathlib import Path
from typing import Any

import orjson
import pytest
import torch
import yaml
from typer.testing import CliRunner

from padless.cli import app
from padless.data.tokenizer import CanaryTokenizer
from padless.infer import DecodingOptions, decode_batch
from padless.interop.nemo import (
    NemoConversionError,
    convert_from_nemo,
    from_nemo,
    read_nemo,
    to_nemo,
)
from padless.model import PRESETS, AEDModel, load_checkpoint, save_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ["canary-fixture", "canary2-fixture"]


def _reference(name: str) -> dict[str, Any]:
    return torch.load(FIXTURES / f"{name}.reference.pt", weights_only=True)


def _valid(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    return x[torch.arange(x.shape[1])[None] < lens[:, None]]


@pytest.mark.parametrize("name", NAMES)
def test_converted_model_computes_what_nemo_computed(name: str) -> None:
    ref = _reference(name)
    converted = from_nemo(FIXTURES / f"{name}.nemo")
    model = converted.model
    audio = ref["audio_int16"].float() / 32768
    lens = ref["audio_lens"]
    with torch.inference_mode():
        feats, feat_lens = model.features(audio, lens)
        memory, memory_lens = model.encode(audio, lens)
        assert torch.equal(feat_lens, ref["feature_lens"])
        assert torch.equal(memory_lens, ref["memory_lens"])
        # NeMo takes |X| (a square root) and squares it again: ~1e-5 on normalised features.
        want = _valid(ref["features"], feat_lens)
        torch.testing.assert_close(_valid(feats, feat_lens), want, atol=1e-4, rtol=0)
        want = _valid(ref["memory"], memory_lens)
        torch.testing.assert_close(_valid(memory, memory_lens), want, atol=1e-5, rtol=1e-5)
        tokens = ref["tokens"]
        for i in range(tokens.shape[0]):
            n = int(ref["token_lens"][i])
            valid = torch.arange(memory.shape[1])[None] < memory_lens[i]
            logits = model.decoder(tokens[i : i + 1, :n], memory[i : i + 1], valid)
            torch.testing.assert_close(
                logits.log_softmax(-1), ref["logprobs"][i : i + 1, :n], atol=1e-5, rtol=0
            )
    for strategy in ("greedy", "beam"):
        options = DecodingOptions(
            strategy=strategy,
            beam_size=ref["beam_size"],
            length_penalty=0.0,
            max_generation_delta=ref["max_generation_delta"],
        )
        # Batched here, one at a time in NeMo: the same tokens.
        hyps = decode_batch(model, audio, lens, ref["prompts"], options)
        assert [h.tokens for h in hyps] == ref[strategy], strategy
        assert all(len(h.tokens) > 5 for h in hyps)  # not vacuous: real outputs were compared


@pytest.mark.parametrize("name", NAMES)
def test_tokenizer_keeps_nemo_ids_and_prompts(name: str) -> None:
    ref = _reference(name)
    tok = from_nemo(FIXTURES / f"{name}.nemo").tokenizer
    specials = [tok.id_to_piece(i) for i in range(tok.num_special)]
    assert specials[0] == "<unk>" and tok.pad_id == specials.index("<pad>")
    langs = tok.block_order
    assert tok.prompt_ids(langs[0], langs[0], "asr", True) == ref["prompts"][0]
    assert tok.prompt_ids(*langs, "ast", False) == ref["prompts"][1]
    # NeMo pads the output layer to a multiple of 8; the extra ids decode to nothing.
    assert tok.vocab_size % 8 == 0
    ids = tok.encode("the train leaves", langs[0])
    assert tok.decode([*ids, tok.vocab_size - 1]) == tok.decode(ids) == "the train leaves"
    again = pickle.loads(pickle.dumps(tok))
    assert again.block_order == tok.block_order and again.encode("x y", langs[0]) == tok.encode(
        "x y", langs[0]
    )


@pytest.mark.parametrize("name", NAMES)
def test_to_nemo_then_from_nemo_is_bit_exact(name: str, tmp_path: Path) -> None:
    first = from_nemo(FIXTURES / f"{name}.nemo")
    to_nemo(first.model, first.tokenizer, tmp_path / "back.nemo")
    second = from_nemo(tmp_path / "back.nemo")
    assert second.model.config.encoder == first.model.config.encoder
    assert second.model.config.decoder == first.model.config.decoder
    assert second.model.config.features == first.model.config.features
    mine, theirs = first.model.state_dict(), second.model.state_dict()
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    tok1, tok2 = first.tokenizer, second.tokenizer
    assert [tok1.id_to_piece(i) for i in range(tok1.vocab_size)] == [
        tok2.id_to_piece(i) for i in range(tok2.vocab_size)
    ]


def test_checkpoint_from_the_command_line_transcribes(tmp_path: Path) -> None:
    """``convert from-nemo`` writes a checkpoint that loads with its tokenizer; ``to-nemo``
    writes it back; the checkpoint's tokenizer survives save/load with its explicit layout."""
    runner = CliRunner()
    ckpt, back = tmp_path / "m.pt", tmp_path / "m.nemo"
    result = runner.invoke(
        app, ["convert", "from-nemo", str(FIXTURES / "canary2-fixture.nemo"), "--out", str(ckpt)]
    )
    assert result.exit_code == 0, result.output
    assert "canary2" in result.output
    loaded = load_checkpoint(ckpt)
    tok = loaded.tokenizer()
    ref = _reference("canary2-fixture")
    assert tok.prompt_ids("en", "en", "asr", True) == ref["prompts"][0]
    assert loaded.extra["converted_from"]["decoding"]["strategy"] == "beam"
    audio = ref["audio_int16"].float() / 32768
    options = DecodingOptions(max_generation_delta=ref["max_generation_delta"])
    hyps = decode_batch(loaded.model, audio, ref["audio_lens"], ref["prompts"], options)
    assert [h.tokens for h in hyps] == ref["greedy"]
    # `padless transcribe` with NeMo's output limit: NeMo's greedy transcript of each file.
    import soundfile as sf

    wavs = []
    for i in range(2):
        wavs.append(tmp_path / f"u{i}.wav")
        pcm = ref["audio_int16"][i, : int(ref["audio_lens"][i])].numpy()
        sf.write(wavs[i], pcm, 16000, subtype="PCM_16")
    delta = str(ref["max_generation_delta"])
    argv = ["transcribe", str(ckpt), str(wavs[0]), "--source-lang", "en", "--pnc"]
    result = runner.invoke(app, [*argv, "--max-generation-delta", delta])
    assert result.exit_code == 0, result.output
    text = orjson.loads(result.stdout)["text"]
    assert text and text == tok.decode(ref["greedy"][0])
    result = runner.invoke(app, ["convert", "to-nemo", str(ckpt), "--out", str(back)])
    assert result.exit_code == 0, result.output
    assert read_nemo(back).config["prompt_format"] == "canary2"


def test_padless_native_model_is_refused_by_to_nemo(tmp_path: Path) -> None:
    tok = from_nemo(FIXTURES / "canary-fixture.nemo").tokenizer
    model = AEDModel(PRESETS["tiny-canary-1b-flash"].with_vocab_size(tok.vocab_size))
    with pytest.raises(NemoConversionError, match=r"count_last_frame.*embedding_scale"):
        to_nemo(model.eval(), tok, tmp_path / "x.nemo")
    # A converted model fine-tuned with the demo recipe's decoder option: refused by name.
    converted = from_nemo(FIXTURES / "canary-fixture.nemo").model.config
    positioned = dataclasses.replace(
        converted, decoder=dataclasses.replace(converted.decoder, memory_positions=True)
    )
    with pytest.raises(NemoConversionError, match=r"memory_positions"):
        to_nemo(AEDModel(positioned).eval(), tok, tmp_path / "y.nemo")


# ------------------------------------------------------------------------------ bad archives


def _rewrite(src: Path, dst: Path, edit: Any) -> Path:
    """Copy a .nemo archive, letting ``edit(files)`` change the {name: bytes} it holds."""
    with tarfile.open(src) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    edit(files)
    with tarfile.open(dst, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return dst


def _edit_config(change: Any) -> Any:
    def edit(files: dict[str, bytes]) -> None:
        config = yaml.safe_load(files["./model_config.yaml"])
        change(config)
        files["./model_config.yaml"] = yaml.safe_dump(config).encode()

    return edit


def _untie(files: dict[str, bytes]) -> None:
    state = torch.load(io.BytesIO(files["./model_weights.ckpt"]), weights_only=True)
    state["log_softmax.mlp.layer0.weight"] = state["log_softmax.mlp.layer0.weight"] + 1.0
    buffer = io.BytesIO()
    torch.save(state, buffer)
    files["./model_weights.ckpt"] = buffer.getvalue()


BAD = [
    ("missing weights", lambda f: f.pop("./model_weights.ckpt"), "model_weights.ckpt is missing"),
    (
        "unknown architecture",
        _edit_config(lambda c: c.update(target="nemo.collections.asr.models.EncDecRNNTBPEModel")),
        "unknown|EncDecRNNTBPEModel",
    ),
    (
        "transducer without a decoder",
        _edit_config(lambda c: (c.pop("target"), c.pop("transf_decoder"))),
        "not an attention encoder-decoder",
    ),
    (
        "unsupported attention",
        _edit_config(lambda c: c["encoder"].update(self_attention_model="abs_pos")),
        "encoder.self_attention_model = 'abs_pos'",
    ),
    (
        "unknown key",
        _edit_config(lambda c: c["encoder"].update(shiny_new_option=3)),
        "shiny_new_option",
    ),
    (
        "unknown prompt format",
        _edit_config(lambda c: c.update(prompt_format="canary-timestamps")),
        "prompt_format = 'canary-timestamps'",
    ),
    (
        "missing tokenizer file",
        lambda f: f.pop(next(n for n in f if n.endswith("tokenizer.model"))),
        "model_path",
    ),
    ("untied head", _untie, "log_softmax.mlp.layer0.weight is not tied"),
]


@pytest.mark.parametrize(("what", "edit", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_archive_is_an_error_naming_the_key(
    what: str, edit: Any, message: str, tmp_path: Path
) -> None:
    path = _rewrite(FIXTURES / "canary-fixture.nemo", tmp_path / "bad.nemo", edit)
    with pytest.raises(NemoConversionError, match=message):
        convert_from_nemo(path, tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()


def test_unknown_weight_is_an_error(tmp_path: Path) -> None:
    def extra(files: dict[str, bytes]) -> None:
        state = torch.load(io.BytesIO(files["./model_weights.ckpt"]), weights_only=True)
        state["encoder.layers.0.adapter.weight"] = torch.zeros(3)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        files["./model_weights.ckpt"] = buffer.getvalue()

    path = _rewrite(FIXTURES / "canary-fixture.nemo", tmp_path / "bad.nemo", extra)
    with pytest.raises(NemoConversionError, match=r"encoder\.layers\.0\.adapter\.weight"):
        from_nemo(path)


def test_explicit_layout_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    converted = from_nemo(FIXTURES / "canary-fixture.nemo")
    save_checkpoint(tmp_path / "m.pt", converted.model, tokenizer=converted.tokenizer)
    tok = load_checkpoint(tmp_path / "m.pt").tokenizer()
    assert isinstance(tok, CanaryTokenizer)
    assert tok.reserved == converted.tokenizer.reserved > 0
    assert tok.offsets == converted.tokenizer.offsets
    assert tok.special_ids == converted.tokenizer.special_ids
