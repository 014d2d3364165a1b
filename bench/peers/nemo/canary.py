"""Small random-weight NeMo Canary models (`EncDecMultiTaskModel`), built with NeMo's own code.

Run in the NeMo peer environment (``make -C bench/peers/nemo``). The model configuration is
NeMo's Canary recipe (FastConformer encoder, pre-LN Transformer decoder with a final layer norm,
a log-softmax head tied to the decoder embedding, the aggregate tokenizer with a special-token
block) shrunk to a few layers of width 32-64, so a model is a few hundred kB and decodes fast.

The tokenizers are NeMo's too: the special-token model from ``CanaryTokenizer.
build_special_tokenizer`` and one SentencePiece BPE model per language from NeMo's
``create_spt_model``, trained on the corpus texts.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

LANGS = ("en", "de", "es", "fr")


@dataclass(frozen=True)
class Shape:
    """One shrunk Canary shape."""

    name: str
    prompt_format: str  # "canary" (Canary-1B) or "canary2" (canary-1b-flash, 180m-flash)
    n_mels: int
    enc_d: int
    enc_layers: int
    enc_heads: int
    dec_d: int
    dec_layers: int
    dec_heads: int
    sub_channels: int
    conv_kernel: int
    pieces_per_lang: int
    seed: int
    langs: tuple[str, ...] = LANGS
    #: Strip each SentencePiece model's normalisation table (identity normalisation): a model
    #: file shrinks from ~240 kB to a few kB, for the fixtures committed to the tests.
    small_tokenizers: bool = False


SHAPES = {
    # Canary-1B's layout: equal encoder/decoder widths, the 5-token prompt.
    "canary-tiny": Shape("canary-tiny", "canary", 64, 64, 2, 4, 64, 2, 4, 32, 9, 96, 0),
    # canary-180m-flash's layout: a narrower encoder projected into the decoder, a one-layer
    # decoder, the Canary-2 prompt and special tokens.
    "canary2-tiny": Shape("canary2-tiny", "canary2", 80, 48, 3, 4, 64, 1, 2, 16, 5, 80, 1),
}

# Special tokens of the Canary-2 prompt (canary-1b-flash) beyond the Canary-1 defaults.
CANARY2_TOKENS = (
    "<|startofcontext|>",
    "<|transcribe|>",
    "<|translate|>",
    "<|itn|>",
    "<|noitn|>",
    "<|timestamp|>",
    "<|notimestamp|>",
    "<|diarize|>",
    "<|nodiarize|>",
    "<|emo:undefined|>",
    "<|emo:neutral|>",
    "<|spkchange|>",
)
CANARY1_TOKENS = ("<|transcribe|>", "<|translate|>")


def _tokenizers(root: Path, shape: Shape, texts: dict[str, list[str]]) -> dict[str, Any]:
    """Train the special-token and per-language tokenizers; return the `tokenizer` config."""
    from nemo.collections.common.tokenizers.canary_tokenizer import CanaryTokenizer
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    extra = CANARY2_TOKENS if shape.prompt_format == "canary2" else CANARY1_TOKENS
    spl_dir = root / "spl_tokens"
    CanaryTokenizer.build_special_tokenizer([*extra, *shape.langs], spl_dir, force_rebuild=True)
    langs: dict[str, Any] = {"spl_tokens": {"dir": str(spl_dir), "type": "bpe"}}
    for lang in shape.langs:
        text_file = root / f"{lang}.txt"
        text_file.write_text("\n".join(texts[lang]) + "\n")
        create_spt_model(
            str(text_file),
            vocab_size=shape.pieces_per_lang,
            sample_size=-1,
            do_lower_case=False,
            tokenizer_type="bpe",
            output_dir=str(root / lang),
        )
        langs[lang] = {"dir": str(root / lang), "type": "bpe"}
    if shape.small_tokenizers:
        for spec in langs.values():
            _strip_normalizer(Path(spec["dir"]) / "tokenizer.model")
    return {
        "dir": None,
        "type": "agg",
        "langs": langs,
        "custom_tokenizer": {
            "_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryTokenizer"
        },
    }


def _strip_normalizer(path: Path) -> None:
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(path.read_bytes())
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.precompiled_charsmap = b""
    proto.denormalizer_spec.precompiled_charsmap = b""
    path.write_bytes(proto.SerializeToString())


def model_config(shape: Shape, tokenizer: dict[str, Any]) -> dict[str, Any]:
    """NeMo's Canary AED config (fast-conformer_aed.yaml) with ``shape``'s sizes."""
    return {
        "sample_rate": 16000,
        "prompt_format": shape.prompt_format,
        "model_defaults": {
            "asr_enc_hidden": shape.enc_d,
            "lm_enc_hidden": shape.dec_d,
            "lm_dec_hidden": shape.dec_d,
        },
        "tokenizer": tokenizer,
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": 16000,
            "normalize": "per_feature",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": shape.n_mels,
            "n_fft": 512,
            "log": True,
            "frame_splicing": 1,
            "dither": 1e-5,
            "pad_to": 0,
            "pad_value": 0.0,
        },
        "spec_augment": {
            "_target_": "nemo.collections.asr.modules.SpectrogramAugmentation",
            "freq_masks": 2,
            "freq_width": 27,
            "time_masks": 10,
            "time_width": 0.05,
        },
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": shape.n_mels,
            "feat_out": -1,
            "n_layers": shape.enc_layers,
            "d_model": shape.enc_d,
            "subsampling": "dw_striding",
            "subsampling_factor": 8,
            "subsampling_conv_channels": shape.sub_channels,
            "causal_downsampling": False,
            "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos",
            "n_heads": shape.enc_heads,
            "att_context_size": [-1, -1],
            "xscaling": True,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": shape.conv_kernel,
            "conv_norm_type": "batch_norm",
            "conv_context_size": None,
            "dropout": 0.1,
            "dropout_pre_encoder": 0.1,
            "dropout_emb": 0.0,
            "dropout_att": 0.1,
        },
        "transf_encoder": {
            "_target_": (
                "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder"
            ),
            "num_layers": 0,
            "hidden_size": shape.dec_d,
            "inner_size": 4 * shape.dec_d,
            "num_attention_heads": shape.dec_heads,
            "ffn_dropout": 0.1,
            "attn_score_dropout": 0.1,
            "attn_layer_dropout": 0.1,
            "mask_future": False,
            "pre_ln": True,
            "pre_ln_final_layer_norm": True,
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
                "embedding_dropout": 0.1,
                "learn_positional_encodings": False,
                "hidden_size": shape.dec_d,
                "inner_size": 4 * shape.dec_d,
                "num_layers": shape.dec_layers,
                "num_attention_heads": shape.dec_heads,
                "ffn_dropout": 0.1,
                "attn_score_dropout": 0.1,
                "attn_layer_dropout": 0.1,
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
            "hidden_size": shape.dec_d,
            "num_classes": None,
            "dropout": 0.0,
            "use_transformer_init": True,
        },
        "decoding": {
            "strategy": "beam",
            "return_best_hypothesis": True,
            "beam": {"beam_size": 1, "len_pen": 0.0, "max_generation_delta": 50},
        },
        "loss": {
            "_target_": (
                "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss"
            ),
            "label_smoothing": 0.0,
            "pad_id": None,
        },
        "restore_timestamps_model": False,
    }


def build(shape: Shape, texts: dict[str, list[str]], out: Path) -> Path:
    """Build ``shape`` with random weights (seeded), save it as ``out`` (.nemo), return it.

    Random weights that are not all the same kind: batch-norm statistics and the relative
    position biases (zero after NeMo's init) get random values too, so a mapping that drops or
    swaps them shows in the outputs.
    """
    from nemo.collections.asr.models import EncDecMultiTaskModel
    from omegaconf import OmegaConf

    torch.manual_seed(shape.seed)
    with tempfile.TemporaryDirectory(prefix="nemo-tok-") as tmp:
        tokenizer = _tokenizers(Path(tmp), shape, texts)
        model = EncDecMultiTaskModel(cfg=OmegaConf.create(model_config(shape, tokenizer)))
        with torch.no_grad():
            for name, tensor in model.state_dict().items():
                if name.endswith(("running_mean", "pos_bias_u", "pos_bias_v")):
                    tensor.normal_(0.0, 0.1)
                elif name.endswith("running_var"):
                    tensor.uniform_(0.5, 1.5)
                elif name.endswith("batch_norm.weight") or name.endswith("batch_norm.bias"):
                    tensor.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)
        model.eval()
        out.parent.mkdir(parents=True, exist_ok=True)
        model.save_to(str(out))
    return out


def corpus_texts(manifest: Path, per_lang: int = 400) -> dict[str, list[str]]:
    """Texts by language from a padless corpus manifest (the target language of each line)."""
    texts: dict[str, list[str]] = {lang: [] for lang in LANGS}
    for line in manifest.read_text().splitlines():
        row = json.loads(line)
        lang = row.get("target_lang") or row.get("lang")
        if lang in texts and len(texts[lang]) < per_lang:
            texts[lang].append(row["text"])
    return texts
