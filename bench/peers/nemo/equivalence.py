"""padless against NeMo itself: converted random-weight Canary models compute the same features,
encoder states, teacher-forced log-probabilities and greedy/beam transcripts as NeMo.

Run in the NeMo peer environment, from the repo root::

    make -C bench/peers/nemo
    bench/peers/nemo/.venv/bin/padless corpus synth --out data/nemo-corpus --hours 0.3
    bench/peers/nemo/.venv/bin/python bench/peers/nemo/equivalence.py --corpus data/nemo-corpus

For each shape of `canary.SHAPES` it builds an ``EncDecMultiTaskModel`` with NeMo's code and
random weights, saves it as ``.nemo``, converts it with ``padless.interop.nemo`` (no NeMo code
involved) and compares on the corpus's test split. NeMo decodes each utterance alone (batch size
1: NeMo's output limit depends on the batch's longest utterance), padless decodes them batched.
Transcripts are compared as token ids (prompt removed, cut at the first EOS). It also writes the
converted model back with ``to_nemo``, restores it in NeMo and checks NeMo's outputs are
unchanged, after a few padless training steps (a padless-trained model that NeMo runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
# canary.py beside this file; bench/record.py last, as bench/datasets.py would shadow the
# `datasets` package NeMo imports.
sys.path.insert(0, str(HERE))
sys.path.append(str(HERE.parents[1]))

import canary  # noqa: E402

from padless.data.audio import load_audio  # noqa: E402
from padless.data.stream import read_manifest  # noqa: E402
from padless.infer import DecodingOptions, decode_batch  # noqa: E402
from padless.infer.transcribe import pad_audio  # noqa: E402
from padless.interop.nemo import from_nemo, to_nemo  # noqa: E402
from record import command, environment, write_record  # noqa: E402

#: fp32 tolerances the comparison must meet (largest absolute difference): log-mel features
#: (NeMo takes |X| with a square root and squares it again), encoder states relative to their
#: largest value, decoder log-probabilities.
TOLERANCE = {"features_max_abs": 1e-4, "encoder_max_rel": 1e-5, "logprob_max_abs": 1e-5}
#: NeMo's decoding settings used on both sides (max_generation_delta bounds random models, which
#: rarely emit EOS; length penalty 0 is what NeMo's Canary decoding applies).
DELTA = 10
BEAM = 4


def nemo_model(path: Path) -> Any:
    from nemo.collections.asr.models import EncDecMultiTaskModel

    model = EncDecMultiTaskModel.restore_from(str(path), map_location="cpu")
    return model.eval()


def nemo_features(model: Any, audio: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    feats, feat_lens = model.preprocessor(input_signal=audio, length=lens)
    states, enc_lens = model.encoder(audio_signal=feats, length=feat_lens)
    memory = model.encoder_decoder_proj(states.transpose(1, 2))
    return feats.transpose(1, 2), feat_lens, memory, enc_lens


def nemo_logprobs(model: Any, memory: torch.Tensor, enc_lens: torch.Tensor, tokens: torch.Tensor):
    enc_mask = (torch.arange(memory.shape[1])[None] < enc_lens[:, None]).float()
    dec_mask = torch.ones_like(tokens, dtype=torch.float)
    hidden = model.transf_decoder(
        input_ids=tokens, decoder_mask=dec_mask, encoder_embeddings=memory, encoder_mask=enc_mask
    )
    return model.log_softmax(hidden_states=hidden)


def nemo_search(model: Any, strategy: str, memory, enc_lens, prompt: list[int]) -> list[int]:
    """NeMo's own generator (what ``transcribe`` runs) on one utterance; raw ids after the
    prompt, cut at the first EOS."""
    from omegaconf import OmegaConf

    decoding = OmegaConf.create(
        {
            "strategy": strategy,
            "greedy": {"max_generation_delta": DELTA},
            "beam": {"beam_size": BEAM, "length_penalty": 0.0, "max_generation_delta": DELTA},
        }
    )
    model.change_decoding_strategy(decoding, verbose=False) if _takes_verbose(model) else (
        model.change_decoding_strategy(decoding)
    )
    inner = model.decoding.decoding
    mask = (torch.arange(memory.shape[1])[None] < enc_lens[:, None]).float()
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        if strategy == "greedy":
            out = inner.greedy_search(
                decoder_input_ids=ids, encoder_hidden_states=memory, encoder_input_mask=mask
            )[0]
        else:
            out = inner.beam_search(
                decoder_input_ids=ids, encoder_hidden_states=memory, encoder_input_mask=mask
            )
    row = out[0, len(prompt) :].tolist()
    eos = model.tokenizer.eos_id
    return row[: row.index(eos)] if eos in row else row


def _takes_verbose(model: Any) -> bool:
    import inspect

    return "verbose" in inspect.signature(model.change_decoding_strategy).parameters


def compare(path: Path, corpus: Path, batch_size: int) -> dict[str, Any]:
    nemo = nemo_model(path)
    conv = from_nemo(path)
    model, tok = conv.model, conv.tokenizer
    examples = list(read_manifest(str(corpus / "test.jsonl"), require_text=True))
    waves = [load_audio(ex) for ex in examples]
    prompts = [tok.prompt_ids_for(ex) for ex in examples]
    audio, lens = pad_audio(waves)
    out: dict[str, Any] = {"utterances": len(examples), "audio_s": float(lens.sum()) / 16000}
    with torch.inference_mode():
        # Features, encoder states and teacher-forced log-probs: the whole split as one padded
        # batch on both sides.
        feats, feat_lens, memory, enc_lens = nemo_features(nemo, audio, lens)
        ours_feats, ours_feat_lens = model.features(audio, lens)
        ours_memory, ours_enc_lens = model.encode(audio, lens)
        assert torch.equal(feat_lens, ours_feat_lens) and torch.equal(enc_lens, ours_enc_lens)
        out["features_max_abs"] = _max_valid(feats, ours_feats, feat_lens)
        out["encoder_max_abs"] = _max_valid(memory, ours_memory, enc_lens)
        out["encoder_max_rel"] = out["encoder_max_abs"] / float(memory.abs().max())
        seqs = tok.encode_examples(examples)
        width = max(len(s) for s, _ in seqs)
        ref_worst, lp_worst = 0.0, 0.0
        for i, (seq, _) in enumerate(seqs):
            tokens = torch.tensor([seq])
            theirs = nemo_logprobs(nemo, memory[i : i + 1], enc_lens[i : i + 1], tokens)
            mine = model.decoder(
                tokens, ours_memory[i : i + 1], torch.arange(memory.shape[1])[None] < enc_lens[i]
            ).log_softmax(-1)
            lp_worst = max(lp_worst, float((theirs - mine).abs().max()))
            ref_worst = max(ref_worst, float(theirs.abs().max()))
        out["logprob_max_abs"] = lp_worst
        out["decoder_input_tokens_max"] = width
    for strategy in ("greedy", "beam"):
        options = DecodingOptions(
            strategy=strategy, beam_size=BEAM, length_penalty=0.0, max_generation_delta=DELTA
        )
        mine: list[list[int]] = [[] for _ in examples]
        order = sorted(range(len(examples)), key=lambda i: -len(waves[i]))
        for b in range(0, len(order), batch_size):
            rows = order[b : b + batch_size]
            a, n = pad_audio([waves[i] for i in rows])
            hyps = decode_batch(model, a, n, [prompts[i] for i in rows], options)
            for i, hyp in zip(rows, hyps, strict=True):
                mine[i] = hyp.tokens
        theirs_all = []
        with torch.inference_mode():
            for i in range(len(examples)):
                _, _, mem, el = nemo_features(nemo, audio[i : i + 1, : lens[i]], lens[i : i + 1])
                theirs_all.append(nemo_search(nemo, strategy, mem, el, prompts[i]))
        same = sum(a == b for a, b in zip(mine, theirs_all, strict=True))
        out[f"{strategy}_identical"] = f"{same}/{len(examples)}"
        out[f"{strategy}_tokens"] = sum(len(t) for t in theirs_all)
        if same != len(examples):
            first = next(i for i in range(len(examples)) if mine[i] != theirs_all[i])
            out[f"{strategy}_first_difference"] = {
                "utterance": examples[first].id,
                "padless": mine[first][:20],
                "nemo": theirs_all[first][:20],
            }
    out["roundtrip"] = roundtrip(path, nemo, conv, audio, lens)
    return out


def _max_valid(a: torch.Tensor, b: torch.Tensor, lens: torch.Tensor) -> float:
    valid = torch.arange(a.shape[1])[None] < lens[:, None]
    return float((a - b).abs()[valid].max())


def roundtrip(path: Path, nemo: Any, conv: Any, audio: torch.Tensor, lens: torch.Tensor) -> dict:
    """to_nemo of the converted model restores in NeMo with the same outputs; so does the model
    after a few padless training steps, whose NeMo outputs match padless's."""
    out: dict[str, Any] = {}
    back = path.with_suffix(".roundtrip.nemo")
    to_nemo(conv.model, conv.tokenizer, back)
    again = from_nemo(back)
    same = all(
        torch.equal(t, again.model.state_dict()[k]) for k, t in conv.model.state_dict().items()
    )
    out["to_nemo_from_nemo_bit_exact"] = same
    restored = nemo_model(back)
    with torch.inference_mode():
        a = nemo_features(nemo, audio, lens)[2]
        b = nemo_features(restored, audio, lens)[2]
    out["nemo_restored_encoder_max_abs"] = float((a - b).abs().max())
    # A padless-trained model: a few Adam steps on the converted one, then exported.
    model = conv.model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    torch.manual_seed(0)
    for _ in range(3):
        tokens = torch.randint(conv.tokenizer.num_special, model.config.vocab_size - 8, (2, 12))
        logits = model(audio[:2], lens[:2], tokens[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    trained = path.with_suffix(".trained.nemo")
    to_nemo(model, conv.tokenizer, trained)
    nemo_trained = nemo_model(trained)
    prompt = conv.tokenizer.prompt_ids("en", "en", "asr", True)
    options = DecodingOptions(strategy="greedy", max_generation_delta=DELTA)
    agree = 0
    for i in range(audio.shape[0]):
        a, n = audio[i : i + 1, : lens[i]], lens[i : i + 1]
        ours = decode_batch(model, a, n, [prompt], options)[0].tokens
        with torch.inference_mode():
            _, _, mem, el = nemo_features(nemo_trained, a, n)
        agree += ours == nemo_search(nemo_trained, "greedy", mem, el, prompt)
    out["trained_exported_greedy_identical"] = f"{agree}/{audio.shape[0]}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="padless corpus synth folder")
    parser.add_argument("--work", type=Path, default=Path("data/nemo-equivalence"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = canary.corpus_texts(args.corpus / "train.jsonl")
    results = {}
    for name, shape in canary.SHAPES.items():
        path = canary.build(shape, texts, args.work / f"{name}.nemo")
        results[name] = compare(path, args.corpus, args.batch_size)
        print(name, results[name], flush=True)
    if not args.no_record:
        write_record("nemo-equivalence", render(results, args))
    failed = [
        f"{name}: {key}"
        for name, r in results.items()
        for key in r
        if (key in TOLERANCE and r[key] > TOLERANCE[key])
        or (key.endswith("_identical") and r[key] != f"{r['utterances']}/{r['utterances']}")
    ]
    failed += [
        f"{name}: roundtrip {key}"
        for name, r in results.items()
        for key, value in r["roundtrip"].items()
        if value is False or (isinstance(value, str) and value.split("/")[0] != value.split("/")[1])
    ]
    if failed:
        raise SystemExit("not equivalent: " + ", ".join(failed))
    print("equivalent: every comparison within tolerance, every transcript identical")


def render(results: dict[str, dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        "# padless against NeMo: converted Canary models",
        "",
        f"`{command()}`",
        "",
        "Random-weight `EncDecMultiTaskModel`s built with NeMo's own code (shapes in "
        "`bench/peers/nemo/canary.py`), saved as .nemo, converted by `padless.interop.nemo`, "
        f"compared on the corpus's test split. NeMo decodes one utterance at a time, padless in "
        f"batches of {args.batch_size}; max_generation_delta {DELTA}, beam {BEAM}, length "
        "penalty 0. Features, encoder states and log-probabilities: one padded batch of the "
        "whole split on both sides, largest absolute difference over valid frames/positions "
        f"(tolerances the script enforces: {TOLERANCE}). Transcripts: token ids after the prompt "
        "up to the first EOS, identical utterances / all. `roundtrip`: the converted model "
        "written back with `to_nemo` and converted again (bit-exact weights), restored in NeMo "
        "(encoder difference to the original), and after 3 padless training steps exported and "
        "decoded greedily by NeMo and padless (identical / all).",
        "",
    ]
    keys = sorted({k for r in results.values() for k in r})
    lines += ["| | " + " | ".join(results) + " |", "|---|" + "---|" * len(results)]
    for key in keys:
        cells = [_cell(r.get(key)) for r in results.values()]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", environment("torch", "nemo_toolkit")]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items())
    return str(value)


if __name__ == "__main__":
    main()
