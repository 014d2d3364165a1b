"""NeMo Canary ``.nemo`` archives <-> padless checkpoints, without NeMo.

A ``.nemo`` file is a tar archive (plain or gzip) holding ``model_config.yaml`` (the model's
Hydra config), ``model_weights.ckpt`` (a ``torch.save`` state dict) and the files the config
names as ``nemo:<file>`` (for Canary, one SentencePiece model per block of the aggregate
tokenizer). It is read here with `tarfile`, PyYAML and ``torch.load(weights_only=True)``.

What maps (see docs/nemo.md for the key table): ``EncDecMultiTaskModel`` with an
``AudioToMelSpectrogramPreprocessor``, a ``ConformerEncoder`` (``dw_striding``, ``rel_pos``,
batch norm), no extra Transformer encoder, a pre-LN ``TransformerDecoderNM`` with a final layer
norm, a one-layer ``TokenClassifier`` head tied to the decoder embedding, the ``canary`` or
``canary2`` prompt, and the aggregate ``CanaryTokenizer``. Config values padless cannot
reproduce are errors naming the key; so is any weight left unmapped. NeMo's conventions that
change numbers are reproduced through config flags (`FeatureConfig.count_last_frame`,
`DecoderConfig.embedding_scale`), so a converted model computes what NeMo computes.
"""

from __future__ import annotations

import io
import math
import os
import struct
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sentencepiece as spm
import torch
import yaml

from padless.data.errors import PadlessInputError
from padless.data.prompt import PROMPT_FORMATS
from padless.data.tokenizer import CanaryTokenizer
from padless.model.aed import AEDModel
from padless.model.config import (
    DecoderConfig,
    EncoderConfig,
    FeatureConfig,
    LossConfig,
    ModelConfig,
    SpecAugmentConfig,
)
from padless.model.features import mel_filterbank
from padless.model.layers import sinusoids

CONFIG_FILE = "model_config.yaml"
WEIGHTS_FILE = "model_weights.ckpt"
MODEL_TARGET = "nemo.collections.asr.models.aed_multitask_models.EncDecMultiTaskModel"
SPECIAL_BLOCK = "spl_tokens"  # NeMo's name of the aggregate tokenizer's special-token block
CANARY_TOKENIZER = "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer"


class NemoConversionError(PadlessInputError):
    """A ``.nemo`` archive (or a padless model) that cannot be converted; the message names the
    file and the config key or weight."""

    def __init__(self, message: str, reason: str = "cannot convert") -> None:
        super().__init__(message, reason)


@dataclass
class NemoArchive:
    """The parts of a ``.nemo`` file: config, weights, and every other file by name."""

    path: Path
    config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    files: dict[str, bytes] = field(default_factory=dict)


def read_nemo(path: str | os.PathLike[str]) -> NemoArchive:
    """Read a ``.nemo`` archive; a missing config or weights file is an error naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such .nemo file")
    try:
        with tarfile.open(path, "r:*") as tar:
            files = {
                _member_name(m.name): _read_member(tar, m) for m in tar.getmembers() if m.isfile()
            }
    except tarfile.TarError as err:
        raise NemoConversionError(f"{path}: not a .nemo archive (a tar file): {err}") from None
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if name not in files:
            raise NemoConversionError(f"{path}: {name} is missing from the archive", "missing file")
    config = yaml.safe_load(files.pop(CONFIG_FILE))
    if not isinstance(config, dict):
        raise NemoConversionError(f"{path}: {CONFIG_FILE} is not a mapping")
    try:
        state = torch.load(
            io.BytesIO(files.pop(WEIGHTS_FILE)), map_location="cpu", weights_only=True
        )
    except Exception as err:  # torch raises many types for foreign or corrupt files
        raise NemoConversionError(f"{path}: {WEIGHTS_FILE} is not readable ({err})") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    return NemoArchive(path, config, dict(state), files)


def _member_name(name: str) -> str:
    return name[2:] if name.startswith("./") else name


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None  # regular files always have one
    return handle.read()


# ------------------------------------------------------------------------------ config


class _Section:
    """One config section (``encoder``, ``preprocessor``, ...): reads keys with NeMo's defaults
    and checks that every key present was read or is listed as having no effect here."""

    def __init__(self, archive: NemoArchive, name: str, values: Any, ignored: tuple[str, ...]):
        if not isinstance(values, dict):
            raise NemoConversionError(f"{archive.path}: config section {name!r} is missing")
        self.archive, self.name, self.values = archive, name, values
        self.used: set[str] = set(ignored)

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.values.get(key, default)

    def require(self, key: str, allowed: Callable[[Any], bool] | Any, default: Any = None) -> Any:
        """The value of ``key`` (``default`` when absent); an error unless ``allowed``."""
        value = self.get(key, default)
        ok = allowed(value) if callable(allowed) else value == allowed
        if not ok:
            want = "" if callable(allowed) else f" (padless supports {allowed!r})"
            raise NemoConversionError(
                f"{self.archive.path}: {self.name}.{key} = {value!r} cannot be converted{want}",
                "unsupported config",
            )
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.values) - self.used)
        if unknown:
            raise NemoConversionError(
                f"{self.archive.path}: {self.name}: unknown key(s) {unknown}; padless does not "
                "know what they change, so it does not convert them",
                "unknown config key",
            )


def _target(section: _Section, suffix: str) -> None:
    section.require("_target_", lambda t: isinstance(t, str) and t.endswith(suffix))


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and value > 0


# Keys that change training only (dropout, augmentation, regularisation) or nothing at all.
_ENCODER_NO_EFFECT = (
    "dropout_pre_encoder",
    "dropout_emb",
    "stochastic_depth_drop_prob",
    "stochastic_depth_mode",
    "stochastic_depth_start_layer",
    "pos_emb_max_len",  # NeMo's table size; padless computes positions on the fly
    "subsampling_conv_chunking_factor",  # how NeMo splits the convolution, not what it computes
    "use_pytorch_sdpa",
    "use_pytorch_sdpa_backends",
    "sync_max_audio_length",
    "att_context_probs",
    "att_context_style",
    "conv_context_style",
)
_PREPROCESSOR_NO_EFFECT = ("pad_to", "pad_value", "rng", "nb_max_freq", "use_torchaudio")


def model_config(archive: NemoArchive) -> ModelConfig:
    """The padless `ModelConfig` of a NeMo Canary config (errors name the key)."""
    cfg = archive.config
    path = archive.path
    target = cfg.get("target")
    if target is not None and target != MODEL_TARGET:
        raise NemoConversionError(
            f"{path}: target = {target!r}: padless converts Canary models ({MODEL_TARGET}) only",
            "unknown architecture",
        )
    if "transf_decoder" not in cfg or "encoder" not in cfg:
        raise NemoConversionError(
            f"{path}: no encoder/transf_decoder sections: not an attention encoder-decoder "
            "(Canary) model",
            "unknown architecture",
        )
    fmt = cfg.get("prompt_format")
    if fmt not in PROMPT_FORMATS:
        raise NemoConversionError(
            f"{path}: prompt_format = {fmt!r} cannot be converted (known: "
            f"{', '.join(sorted(PROMPT_FORMATS))})",
            "unsupported config",
        )
    if cfg.get("sample_rate", 16000) != 16000:
        raise NemoConversionError(f"{path}: sample_rate = {cfg['sample_rate']} (padless: 16000)")
    features = _features(archive)
    spec = _spec_augment(archive)
    encoder = _encoder(archive, features.n_mels)
    decoder = _decoder(archive)
    transf_encoder = cfg.get("transf_encoder") or {}
    if int(transf_encoder.get("num_layers", 0)) > 0:
        raise NemoConversionError(
            f"{path}: transf_encoder.num_layers = {transf_encoder['num_layers']}: padless has no "
            "Transformer encoder between the Conformer and the decoder",
            "unsupported config",
        )
    defaults = _Section(archive, "model_defaults", cfg.get("model_defaults"), ("lm_enc_hidden",))
    defaults.require("asr_enc_hidden", encoder.d_model)
    defaults.require("lm_dec_hidden", decoder.d_model)
    defaults.finish()
    head = _Section(archive, "head", cfg.get("head"), ("dropout", "use_transformer_init"))
    _target(head, "TokenClassifier")
    head.require("num_layers", 1, 1)
    head.require("log_softmax", True, True)
    head.require("hidden_size", decoder.d_model)
    head.get("activation")  # unused with one layer
    # The output layer's size: the embedding's rows (NeMo rounds the tokenizer's size up to a
    # multiple of 8); the config's num_classes, when set, must agree.
    embedding = archive.state_dict.get("transf_decoder._embedding.token_embedding.weight")
    if embedding is None:
        raise NemoConversionError(
            f"{path}: weight transf_decoder._embedding.token_embedding.weight is missing",
            "missing weight",
        )
    vocab = int(embedding.shape[0])
    head.require("num_classes", lambda n: n in (None, vocab), None)
    head.finish()
    loss = cfg.get("loss") or {}
    special_ids = _special_ids(archive)
    return ModelConfig(
        name=path.stem,
        vocab_size=vocab,
        pad_id=special_ids["pad_id"],
        eos_id=special_ids["eos_id"],
        features=features,
        spec_augment=spec,
        encoder=encoder,
        decoder=decoder,
        loss=LossConfig(label_smoothing=float(loss.get("label_smoothing", 0.0))),
    )


def _features(archive: NemoArchive) -> FeatureConfig:
    pre = _Section(
        archive, "preprocessor", archive.config.get("preprocessor"), _PREPROCESSOR_NO_EFFECT
    )
    _target(pre, "AudioToMelSpectrogramPreprocessor")
    pre.require("sample_rate", 16000, 16000)
    window_size = pre.get("window_size", 0.02)
    window_stride = pre.get("window_stride", 0.01)
    win_length = pre.get("n_window_size") or int(window_size * 16000)
    hop_length = pre.get("n_window_stride") or int(window_stride * 16000)
    n_fft = pre.get("n_fft") or 2 ** math.ceil(math.log2(win_length))
    pre.require("window", "hann", "hann")
    pre.require("normalize", "per_feature", "per_feature")
    pre.require("log", True, True)
    pre.require("log_zero_guard_type", "add", "add")
    guard = pre.require("log_zero_guard_value", lambda v: isinstance(v, float), 2.0**-24)
    pre.require("frame_splicing", 1, 1)
    pre.require("exact_pad", False, False)
    pre.require("mag_power", 2.0, 2.0)
    pre.require("mel_norm", "slaney", "slaney")
    pre.require("lowfreq", 0, 0)
    pre.require("highfreq", lambda v: v in (None, 8000), None)
    pre.require("nb_augmentation_prob", 0.0, 0.0)
    pre.require("stft_exact_pad", False, False)
    pre.require("stft_conv", False, False)
    n_mels = pre.require("features", _positive_int, 64)
    preemph = pre.get("preemph", 0.97)
    dither = pre.get("dither", 1e-5)
    pre.finish()
    return FeatureConfig(
        sample_rate=16000,
        n_mels=n_mels,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop_length,
        preemphasis=float(preemph or 0.0),
        dither=float(dither),
        log_zero_guard=float(guard),
        count_last_frame=False,
    )


def _spec_augment(archive: NemoArchive) -> SpecAugmentConfig:
    values = archive.config.get("spec_augment")
    if values is None:
        return SpecAugmentConfig(freq_masks=0, time_masks=0)
    # How NeMo vectorises the masks does not change what they are.
    spec = _Section(
        archive,
        "spec_augment",
        values,
        ("rect_time", "rect_freq", "use_vectorized_spec_augment", "use_numba_spec_augment"),
    )
    _target(spec, "SpectrogramAugmentation")
    spec.require("rect_masks", 0, 0)
    spec.require("mask_value", 0.0, 0.0)
    time_width = spec.require("time_width", lambda v: isinstance(v, float), 0.05)
    out = SpecAugmentConfig(
        freq_masks=int(spec.get("freq_masks", 0)),
        freq_width=int(spec.get("freq_width", 10)),
        time_masks=int(spec.get("time_masks", 0)),
        time_width=time_width,
    )
    spec.finish()
    return out


def _encoder(archive: NemoArchive, n_mels: int) -> EncoderConfig:
    enc = _Section(archive, "encoder", archive.config.get("encoder"), _ENCODER_NO_EFFECT)
    _target(enc, "ConformerEncoder")
    enc.require("feat_in", n_mels)
    enc.require("feat_out", -1, -1)
    enc.require("subsampling", "dw_striding", "striding")
    factor = enc.require("subsampling_factor", lambda f: f in (2, 4, 8, 16), 4)
    enc.require("causal_downsampling", False, False)
    enc.require("reduction", None, None)
    enc.get("reduction_position")
    enc.require("reduction_factor", 1, 1)
    enc.require("self_attention_model", "rel_pos", "rel_pos")
    enc.require("att_context_size", lambda v: v in (None, [-1, -1]), None)
    enc.require("att_chunk_context_size", None, None)
    enc.require("untie_biases", True, True)
    enc.require("conv_norm_type", "batch_norm", "batch_norm")
    enc.require("conv_context_size", lambda v: v in (None, "symmetric"), None)
    enc.require("use_bias", True, True)
    enc.require("global_tokens", 0, 0)
    enc.get("global_tokens_spacing")
    enc.get("global_attn_separate")
    d_model = enc.require("d_model", _positive_int)
    out = EncoderConfig(
        d_model=d_model,
        n_layers=enc.require("n_layers", _positive_int),
        n_heads=enc.require("n_heads", _positive_int, 4),
        ff_mult=enc.require("ff_expansion_factor", _positive_int, 4),
        conv_kernel=enc.require("conv_kernel_size", _positive_int, 31),
        subsampling_factor=factor,
        subsampling_channels=_channels(enc.get("subsampling_conv_channels", -1), d_model),
        xscaling=bool(enc.get("xscaling", True)),
        dropout=float(enc.get("dropout", 0.1)),
        attn_dropout=float(enc.get("dropout_att", 0.0)),
    )
    enc.finish()
    return out


def _channels(value: Any, d_model: int) -> int:
    return d_model if value in (None, -1) else int(value)


def _decoder(archive: NemoArchive) -> DecoderConfig:
    outer = _Section(
        archive, "transf_decoder", archive.config.get("transf_decoder"), ("model_name", "encoder")
    )
    _target(outer, "get_nemo_transformer")
    outer.require("pretrained", False, False)
    outer.require("pre_ln_final_layer_norm", True, True)
    dec = _Section(
        archive,
        "transf_decoder.config_dict",
        outer.get("config_dict"),
        ("vocab_size", "embedding_dropout", "attn_layer_dropout", "max_sequence_length"),
    )
    outer.finish()
    dec.require("pre_ln", True, False)
    dec.require("hidden_act", "relu", "relu")
    dec.require("learn_positional_encodings", False, False)
    dec.get("num_token_types")  # token-type embeddings exist but NeMo's decoding never adds them
    d_model = dec.require("hidden_size", _positive_int)
    inner = dec.require("inner_size", lambda v: _positive_int(v) and v % d_model == 0)
    out = DecoderConfig(
        d_model=d_model,
        n_layers=dec.require("num_layers", _positive_int),
        n_heads=dec.require("num_attention_heads", _positive_int, 1),
        ff_mult=inner // d_model,
        dropout=float(dec.get("ffn_dropout", 0.0)),
        attn_dropout=float(dec.get("attn_score_dropout", 0.0)),
        embedding_scale="positions",
    )
    dec.finish()
    return out


# ------------------------------------------------------------------------------ tokenizer


@dataclass(frozen=True)
class _Block:
    lang: str
    model: bytes


def _tokenizer_blocks(archive: NemoArchive) -> list[_Block]:
    """The aggregate tokenizer's blocks in id order, with their SentencePiece models."""
    path = archive.path
    tok = _Section(archive, "tokenizer", archive.config.get("tokenizer"), ("dir",))
    tok.require("type", "agg")
    custom = tok.get("custom_tokenizer") or {}
    if custom.get("_target_") != CANARY_TOKENIZER:
        raise NemoConversionError(
            f"{path}: tokenizer.custom_tokenizer = {custom.get('_target_')!r} cannot be converted"
            f" (padless supports {CANARY_TOKENIZER})",
            "unsupported config",
        )
    langs = tok.get("langs")
    tok.finish()
    if not isinstance(langs, dict) or next(iter(langs), None) != SPECIAL_BLOCK:
        raise NemoConversionError(
            f"{path}: tokenizer.langs must start with the {SPECIAL_BLOCK!r} block",
            "unsupported config",
        )
    blocks = []
    for lang, spec in langs.items():
        where = f"tokenizer.langs.{lang}"
        if not isinstance(spec, dict) or spec.get("type") != "bpe":
            raise NemoConversionError(f"{path}: {where}.type must be 'bpe' (SentencePiece)")
        ref = str(spec.get("model_path", ""))
        name = ref.removeprefix("nemo:")
        if name not in archive.files:
            raise NemoConversionError(
                f"{path}: {where}.model_path = {ref!r} is not in the archive", "missing file"
            )
        blocks.append(_Block(lang, archive.files[name]))
    return blocks


def _special_pieces(model: bytes) -> list[str]:
    sp = spm.SentencePieceProcessor(model_proto=model)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def _special_ids(archive: NemoArchive) -> dict[str, int]:
    """``pad_id`` and ``eos_id``: where NeMo's special block has ``<pad>`` and
    ``<|endoftext|>``."""
    specials = _special_pieces(_tokenizer_blocks(archive)[0].model)
    ids = {}
    for key, token in (("pad_id", "<pad>"), ("eos_id", "<|endoftext|>")):
        if token not in specials:
            raise NemoConversionError(
                f"{archive.path}: the {SPECIAL_BLOCK} tokenizer has no {token}",
                "unsupported config",
            )
        ids[key] = specials.index(token)
    return ids


def tokenizer(archive: NemoArchive, vocab_size: int) -> CanaryTokenizer:
    """NeMo's aggregate tokenizer as a `CanaryTokenizer` with NeMo's ids: the special block's
    pieces as special tokens, the language blocks in NeMo's order, and the ids NeMo's output
    layer adds (padding its size to a multiple of 8) as reserved ids."""
    blocks = _tokenizer_blocks(archive)
    specials = _special_pieces(blocks[0].model)
    models = {b.lang: b.model for b in blocks[1:]}
    size = len(specials) + sum(
        spm.SentencePieceProcessor(model_proto=m).get_piece_size() for m in models.values()
    )
    if size > vocab_size:
        raise NemoConversionError(
            f"{archive.path}: the tokenizer has {size} ids but the model only {vocab_size}"
        )
    try:
        return CanaryTokenizer(
            models,
            prompt_format=str(archive.config["prompt_format"]),
            training={"converted_from": str(archive.path)},
            specials=specials,
            block_order=[b.lang for b in blocks[1:]],
            reserved=vocab_size - size,
        )
    except ValueError as err:
        raise NemoConversionError(
            f"{archive.path}: tokenizer: {err}", "unsupported config"
        ) from None


# ------------------------------------------------------------------------------ weights


def _encoder_layer_keys(i: int) -> dict[str, str]:
    """padless key -> NeMo key of encoder layer ``i``'s plain copies."""
    pairs = {
        "norm_ff1": "norm_feed_forward1",
        "ff1.linear1": "feed_forward1.linear1",
        "ff1.linear2": "feed_forward1.linear2",
        "norm_attn": "norm_self_att",
        "attn.linear_q": "self_attn.linear_q",
        "attn.linear_k": "self_attn.linear_k",
        "attn.linear_v": "self_attn.linear_v",
        "attn.linear_out": "self_attn.linear_out",
        "norm_conv": "norm_conv",
        "conv.depthwise": "conv.depthwise_conv",
        "norm_ff2": "norm_feed_forward2",
        "ff2.linear1": "feed_forward2.linear1",
        "ff2.linear2": "feed_forward2.linear2",
        "norm_out": "norm_out",
    }
    out = {}
    for ours, theirs in pairs.items():
        for param in ("weight", "bias"):
            out[f"encoder.layers.{i}.{ours}.{param}"] = f"encoder.layers.{i}.{theirs}.{param}"
    for param in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
        out[f"encoder.layers.{i}.conv.norm.{param}"] = f"encoder.layers.{i}.conv.batch_norm.{param}"
    for param in ("linear_pos.weight", "pos_bias_u", "pos_bias_v"):
        out[f"encoder.layers.{i}.attn.{param}"] = f"encoder.layers.{i}.self_attn.{param}"
    return out


def _decoder_layer_keys(i: int) -> dict[str, str]:
    ours, theirs = f"decoder.layers.{i}", f"transf_decoder._decoder.layers.{i}"
    pairs = {
        "norm_self": "layer_norm_1",
        "self_attn.q_proj": "first_sub_layer.query_net",
        "self_attn.out_proj": "first_sub_layer.out_projection",
        "norm_cross": "layer_norm_2",
        "cross_attn.q_proj": "second_sub_layer.query_net",
        "cross_attn.out_proj": "second_sub_layer.out_projection",
        "norm_ff": "layer_norm_3",
        "ff.linear1": "third_sub_layer.dense_in",
        "ff.linear2": "third_sub_layer.dense_out",
    }
    return {
        f"{ours}.{a}.{param}": f"{theirs}.{b}.{param}"
        for a, b in pairs.items()
        for param in ("weight", "bias")
    }


def key_map(config: ModelConfig) -> dict[str, str]:
    """padless state-dict key -> NeMo key, for every weight that is a plain copy."""
    out: dict[str, str] = {}
    stages = int(math.log2(config.encoder.subsampling_factor))
    for param in ("weight", "bias"):
        out[f"encoder.subsampling.first.{param}"] = f"encoder.pre_encode.conv.0.{param}"
        out[f"encoder.subsampling.out.{param}"] = f"encoder.pre_encode.out.{param}"
        for s in range(stages - 1):
            # NeMo's Sequential: conv, ReLU, then (depthwise, pointwise, ReLU) per stage.
            out[f"encoder.subsampling.depthwise.{s}.{param}"] = (
                f"encoder.pre_encode.conv.{2 + 3 * s}.{param}"
            )
            out[f"encoder.subsampling.pointwise.{s}.{param}"] = (
                f"encoder.pre_encode.conv.{3 + 3 * s}.{param}"
            )
        if config.encoder.d_model != config.decoder.d_model:
            out[f"projection.{param}"] = f"encoder_decoder_proj.{param}"
        out[f"decoder.embedding_norm.{param}"] = f"transf_decoder._embedding.layer_norm.{param}"
        out[f"decoder.final_norm.{param}"] = f"transf_decoder._decoder.final_layer_norm.{param}"
    for i in range(config.encoder.n_layers):
        out.update(_encoder_layer_keys(i))
    for i in range(config.decoder.n_layers):
        out.update(_decoder_layer_keys(i))
    out["decoder.embedding.weight"] = "transf_decoder._embedding.token_embedding.weight"
    out["decoder.output_bias"] = "log_softmax.mlp.layer0.bias"
    return out


# padless keys built from NeMo weights by a reshape or a concatenation, not a plain copy.
_POINTWISE = ("pointwise_in", "pointwise_conv1"), ("pointwise_out", "pointwise_conv2")
_KV = ("self_attn", "first_sub_layer"), ("cross_attn", "second_sub_layer")


def state_dict_from_nemo(archive: NemoArchive, config: ModelConfig) -> dict[str, torch.Tensor]:
    """padless weights from NeMo's; every NeMo weight is used or checked, else an error."""
    theirs = archive.state_dict
    used: set[str] = set()
    path = archive.path

    def take(key: str) -> torch.Tensor:
        if key not in theirs:
            raise NemoConversionError(f"{path}: weight {key} is missing", "missing weight")
        used.add(key)
        return theirs[key]

    ours = {mine: take(key) for mine, key in key_map(config).items()}
    for i in range(config.encoder.n_layers):
        for mine, key in _POINTWISE:
            for param in ("weight", "bias"):
                value = take(f"encoder.layers.{i}.conv.{key}.{param}")
                ours[f"encoder.layers.{i}.conv.{mine}.{param}"] = (
                    value.squeeze(-1) if param == "weight" else value
                )
    for i in range(config.decoder.n_layers):
        for mine, key in _KV:
            base = f"transf_decoder._decoder.layers.{i}.{key}"
            for param in ("weight", "bias"):
                ours[f"decoder.layers.{i}.{mine}.kv_proj.{param}"] = torch.cat(
                    (take(f"{base}.key_net.{param}"), take(f"{base}.value_net.{param}"))
                )
    _check_derived(archive, config, take)
    leftover = sorted(set(theirs) - used - _unused_by_nemo(theirs))
    if leftover:
        raise NemoConversionError(
            f"{path}: weights padless has no place for: {', '.join(leftover[:8])}"
            + (f" and {len(leftover) - 8} more" if len(leftover) > 8 else ""),
            "unmapped weight",
        )
    return ours


def _unused_by_nemo(theirs: Mapping[str, torch.Tensor]) -> set[str]:
    """Weights NeMo stores but its Canary forward never reads: the decoder's token-type
    embeddings (no token types are passed)."""
    return {k for k in theirs if k == "transf_decoder._embedding.token_type_embedding.weight"}


def _check_derived(
    archive: NemoArchive, config: ModelConfig, take: Callable[[str], torch.Tensor]
) -> None:
    """Buffers NeMo stores that padless derives from the config: they must agree, and the
    output head must be tied to the embedding."""
    path = archive.path
    feats = config.features
    checks = {
        "preprocessor.featurizer.window": torch.hann_window(feats.win_length, periodic=False),
        "preprocessor.featurizer.fb": mel_filterbank(feats.sample_rate, feats.n_fft, feats.n_mels),
    }
    for key, expected in checks.items():
        value = take(key).float().reshape(expected.shape)
        if not torch.allclose(value, expected, rtol=1e-4, atol=1e-6):
            raise NemoConversionError(
                f"{path}: {key} differs from padless's (max |diff| "
                f"{(value - expected).abs().max():.3g}): a front end padless does not compute",
                "unsupported weight",
            )
    pos = take("transf_decoder._embedding.position_embedding.pos_enc").float()
    d = config.decoder.d_model
    expected = sinusoids(torch.arange(pos.shape[0]), d, torch.float32) / math.sqrt(d)
    if not torch.allclose(pos, expected, atol=1e-5):
        raise NemoConversionError(
            f"{path}: transf_decoder._embedding.position_embedding.pos_enc is not NeMo's "
            "sinusoid table",
            "unsupported weight",
        )
    head = take("log_softmax.mlp.layer0.weight")
    embedding = take("transf_decoder._embedding.token_embedding.weight")
    if not torch.equal(head, embedding):
        raise NemoConversionError(
            f"{path}: log_softmax.mlp.layer0.weight is not tied to the decoder embedding "
            "(padless's output head is the embedding matrix)",
            "unsupported weight",
        )


# ------------------------------------------------------------------------------ entry points


@dataclass
class Converted:
    """A NeMo model as padless objects, and NeMo's decoding settings for reference."""

    model: AEDModel
    tokenizer: CanaryTokenizer
    decoding: dict[str, Any]


def from_nemo(path: str | os.PathLike[str]) -> Converted:
    """Convert a ``.nemo`` Canary archive: the padless model (eval mode) and tokenizer."""
    archive = read_nemo(path)
    config = model_config(archive)
    tok = tokenizer(archive, config.vocab_size)
    state = state_dict_from_nemo(archive, config)
    with torch.device("meta"):
        model = AEDModel(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.features.to_empty(device="cpu")
    model.features.reset_buffers()
    decoding = archive.config.get("decoding") or {}
    return Converted(model.eval(), tok, dict(decoding))


def convert_from_nemo(path: str | os.PathLike[str], out: str | os.PathLike[str]) -> Converted:
    """`from_nemo` and save the result as a padless checkpoint at ``out``."""
    from padless.model.checkpoint import save_checkpoint

    converted = from_nemo(path)
    save_checkpoint(
        out,
        converted.model,
        tokenizer=converted.tokenizer,
        extra={"converted_from": {"nemo": str(path), "decoding": _plain(converted.decoding)}},
    )
    return converted


def _plain(value: Any) -> Any:
    """YAML values as plain data a checkpoint may hold."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ------------------------------------------------------------------------------ to NeMo


def nemo_config(config: ModelConfig, tok: CanaryTokenizer) -> dict[str, Any]:
    """NeMo's Canary config for a padless model (tokenizer files named as `to_nemo` writes)."""
    _check_exportable(config)
    enc, dec, feats, spec = config.encoder, config.decoder, config.features, config.spec_augment
    langs = {
        block: {
            "dir": block,  # NeMo wants one; every file it reads is named below
            "type": "bpe",
            "model_path": f"nemo:{block}_tokenizer.model",
            "vocab_path": f"nemo:{block}_vocab.txt",
            "spe_tokenizer_vocab": f"nemo:{block}_tokenizer.vocab",
        }
        for block in (SPECIAL_BLOCK, *tok.block_order)
    }
    return {
        "sample_rate": feats.sample_rate,
        "prompt_format": tok.prompt_format.name,
        "model_defaults": {
            "asr_enc_hidden": enc.d_model,
            "lm_enc_hidden": dec.d_model,
            "lm_dec_hidden": dec.d_model,
        },
        "tokenizer": {
            "dir": None,
            "type": "agg",
            "langs": langs,
            "custom_tokenizer": {"_target_": CANARY_TOKENIZER},
        },
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": feats.sample_rate,
            "normalize": "per_feature",
            # Seconds: NeMo refuses sample counts alongside its default window_size.
            "window_size": feats.win_length / feats.sample_rate,
            "window_stride": feats.hop_length / feats.sample_rate,
            "window": "hann",
            "features": feats.n_mels,
            "n_fft": feats.n_fft,
            "log": True,
            "log_zero_guard_value": feats.log_zero_guard,
            "frame_splicing": 1,
            "dither": feats.dither,
            "preemph": feats.preemphasis or None,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": spec.freq_masks,
            "freq_width": spec.freq_width,
            "time_masks": spec.time_masks,
            "time_width": spec.time_width,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": feats.n_mels,
            "feat_out": -1,
            "n_layers": enc.n_layers,
            "d_model": enc.d_model,
            "subsampling": "dw_striding",
            "subsampling_factor": enc.subsampling_factor,
            "subsampling_conv_channels": enc.subsampling_channels,
            "causal_downsampling": False,
            "ff_expansion_factor": enc.ff_mult,
            "self_attention_model": "rel_pos",
            "n_heads": enc.n_heads,
            "att_context_size": [-1, -1],
            "xscaling": enc.xscaling,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": enc.conv_kernel,
            "conv_norm_type": "batch_norm",
            "conv_context_size": None,
            "dropout": enc.dropout,
            "dropout_pre_encoder": enc.dropout,
            "dropout_emb": 0.0,
            "dropout_att": enc.attn_dropout,
        },
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None,
            "pretrained": False,
            "encoder": None,
            "pre_ln_final_layer_norm": True,
            "config_dict": {
                "max_sequence_length": 512,
                "num_token_types": 0,
                "embedding_dropout": dec.dropout,
                "learn_positional_encodings": False,
                "hidden_size": dec.d_model,
                "inner_size": dec.ff_dim,
                "num_layers": dec.n_layers,
                "num_attention_heads": dec.n_heads,
                "ffn_dropout": dec.dropout,
                "attn_score_dropout": dec.attn_dropout,
                "attn_layer_dropout": dec.dropout,
                "hidden_act": "relu",
                "pre_ln": True,
                "vocab_size": None,
            },
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1,
            "activation": "relu",
            "log_softmax": True,
            "hidden_size": dec.d_model,
            "num_classes": config.vocab_size,
            "dropout": 0.0,
            "use_transformer_init": True,
        },
        "decoding": {
            "strategy": "beam",
            "return_best_hypothesis": True,
            "beam": {"beam_size": 1, "len_pen": 0.0, "max_generation_delta": -1},
        },
        "loss": {
            "_target_": (
                "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss"
            ),
            "label_smoothing": config.loss.label_smoothing,
            "pad_id": None,
        },
        "restore_timestamps_model": False,
        "target": MODEL_TARGET,
    }


def _check_exportable(config: ModelConfig) -> None:
    """What NeMo's Canary cannot express: padless's own conventions and the CTC head."""
    problems = []
    if config.features.count_last_frame:
        problems.append("features.count_last_frame = True (NeMo counts L // hop frames)")
    if config.decoder.embedding_scale != "positions":
        problems.append("decoder.embedding_scale = 'tokens' (NeMo scales the positions)")
    if config.loss.ctc_weight > 0:
        problems.append("loss.ctc_weight > 0 (NeMo's Canary has no CTC head)")
    if config.decoder.memory_positions:
        problems.append("decoder.memory_positions = True (NeMo's memory has no positions)")
    if problems:
        raise NemoConversionError(
            f"{config.name}: cannot be written as a NeMo Canary model: " + "; ".join(problems),
            "not exportable",
        )


def state_dict_to_nemo(model: AEDModel) -> dict[str, torch.Tensor]:
    """NeMo's weights for a padless model (inverse of `state_dict_from_nemo`)."""
    config = model.config
    ours = model.state_dict()
    theirs = {key: ours[mine].clone() for mine, key in key_map(config).items()}
    for i in range(config.encoder.n_layers):
        for mine, key in _POINTWISE:
            for param in ("weight", "bias"):
                value = ours[f"encoder.layers.{i}.conv.{mine}.{param}"]
                theirs[f"encoder.layers.{i}.conv.{key}.{param}"] = (
                    value[..., None].clone() if param == "weight" else value.clone()
                )
    for i in range(config.decoder.n_layers):
        for mine, key in _KV:
            base = f"transf_decoder._decoder.layers.{i}.{key}"
            for param in ("weight", "bias"):
                k, v = ours[f"decoder.layers.{i}.{mine}.kv_proj.{param}"].chunk(2)
                theirs[f"{base}.key_net.{param}"] = k.clone()
                theirs[f"{base}.value_net.{param}"] = v.clone()
    feats, d = config.features, config.decoder.d_model
    theirs["preprocessor.featurizer.window"] = torch.hann_window(feats.win_length, periodic=False)
    theirs["preprocessor.featurizer.fb"] = mel_filterbank(
        feats.sample_rate, feats.n_fft, feats.n_mels
    )[None]
    theirs["transf_decoder._embedding.position_embedding.pos_enc"] = sinusoids(
        torch.arange(512), d, torch.float32
    ) / math.sqrt(d)
    theirs["log_softmax.mlp.layer0.weight"] = theirs[
        "transf_decoder._embedding.token_embedding.weight"
    ]
    return theirs


def to_nemo(model: AEDModel, tok: CanaryTokenizer, out: str | os.PathLike[str]) -> Path:
    """Write ``model`` and ``tok`` as a ``.nemo`` archive NeMo's ``EncDecMultiTaskModel``
    restores (``restore_from``)."""
    if tok.vocab_size != model.config.vocab_size:
        raise NemoConversionError(
            f"tokenizer vocab_size {tok.vocab_size} != model vocab_size {model.config.vocab_size}"
        )
    used = tok.vocab_size - tok.reserved
    if model.config.vocab_size != 8 * math.ceil(used / 8):
        raise NemoConversionError(
            f"{model.config.name}: NeMo sizes the output layer to the tokenizer's {used} ids "
            f"rounded up to a multiple of 8 ({8 * math.ceil(used / 8)}), not "
            f"{model.config.vocab_size}",
            "not exportable",
        )
    blobs: dict[str, bytes] = {}
    models = {SPECIAL_BLOCK: _special_model(tok)}
    models.update({lang: tok.sentencepiece_model(lang) for lang in tok.block_order})
    for block, proto in models.items():
        sp = spm.SentencePieceProcessor(model_proto=proto)
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        scores = [sp.get_score(i) for i in range(sp.get_piece_size())]
        blobs[f"{block}_tokenizer.model"] = proto
        # The two vocabulary listings NeMo's tokenizer setup registers (it reads neither back
        # for SentencePiece BPE): pieces, and pieces with scores.
        blobs[f"{block}_vocab.txt"] = "".join(f"{p}\n" for p in pieces).encode()
        blobs[f"{block}_tokenizer.vocab"] = "".join(
            f"{p}\t{c}\n" for p, c in zip(pieces, scores, strict=True)
        ).encode()
    config = nemo_config(model.config, tok)
    weights = io.BytesIO()
    torch.save(state_dict_to_nemo(model), weights)
    blobs[CONFIG_FILE] = yaml.safe_dump(config, sort_keys=False).encode()
    blobs[WEIGHTS_FILE] = weights.getvalue()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w") as tar:
            for name, data in blobs.items():
                info = tarfile.TarInfo(f"./{name}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def _special_model(tok: CanaryTokenizer) -> bytes:
    """A SentencePiece model whose pieces are the tokenizer's special tokens, in id order (what
    NeMo's special block is): ``<unk>`` first, the others as user-defined symbols."""
    specials = [tok.id_to_piece(i) for i in range(tok.num_special)]
    if specials[0] != "<unk>":
        # padless's own layout starts with <pad>; NeMo's special block is a SentencePiece model,
        # whose piece 0 is always <unk>, so padless's ids cannot be kept.
        raise NemoConversionError(
            f"special token 0 is {specials[0]!r}; a NeMo special block starts with '<unk>' "
            "(only tokenizers converted from NeMo can be written back)",
            "not exportable",
        )
    return _user_symbol_model(specials[1:])


def _user_symbol_model(symbols: list[str]) -> bytes:
    """A SentencePiece model (serialized ``ModelProto``) of ``<unk>`` followed by exactly
    ``symbols`` as user-defined pieces, with identity normalisation.

    Written with the protobuf wire format by hand: the fields are few and fixed, and padless
    does not depend on the protobuf package."""
    unknown, user_defined, unigram = 2, 4, 1  # SentencePiece.Type, TrainerSpec.ModelType

    def piece(text: str, kind: int) -> bytes:
        # piece (1, string), score (2, float 0.0), type (3, enum)
        return _field(1, text.encode()) + _key(2, 5) + struct.pack("<f", 0.0) + _int(3, kind)

    trainer = (
        _int(3, unigram)
        + _int(4, len(symbols) + 1)
        + _int(40, 0)  # unk_id
        + _int(41, -1)  # bos_id
        + _int(42, -1)  # eos_id
        + _int(43, -1)  # pad_id
    )
    normalizer = _field(1, b"identity") + _int(3, 0) + _int(4, 0) + _int(5, 1)
    pieces = _field(1, piece("<unk>", unknown)) + b"".join(
        _field(1, piece(s, user_defined)) for s in symbols
    )
    return pieces + _field(2, trainer) + _field(3, normalizer)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 values are 10-byte two's complement varints
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _varint(value)


def _field(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _varint(len(payload)) + payload


def convert_to_nemo(checkpoint: str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """A padless checkpoint (with its tokenizer) as a ``.nemo`` archive."""
    from padless.model.checkpoint import load_checkpoint

    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"{checkpoint}: no such checkpoint")
    try:
        ckpt = load_checkpoint(checkpoint)
        tok = ckpt.tokenizer()
    except ValueError as err:
        raise NemoConversionError(str(err), "no tokenizer") from None
    return to_nemo(ckpt.model, tok, out)
