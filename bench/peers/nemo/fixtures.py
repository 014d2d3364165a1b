"""The NeMo-made test fixtures: tiny random-weight Canary models and NeMo's outputs on them.

Run in the NeMo peer environment, from the repo root (writes ``tests/interop/fixtures/``)::

    bench/peers/nemo/.venv/bin/python bench/peers/nemo/fixtures.py --corpus data/nemo-corpus

For each shape of `FIXTURES` it builds the model with NeMo (``canary.build``), then runs NeMo on
two fixed waveforms (one padded batch) and saves what ``tests/interop/test_nemo.py`` compares a
converted model against, without NeMo installed: log-mel features, encoder states (after the
encoder-decoder projection), teacher-forced log-probabilities, and NeMo's greedy and beam
transcripts of each utterance decoded alone.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import canary  # noqa: E402
from equivalence import (  # noqa: E402
    BEAM,
    DELTA,
    nemo_features,
    nemo_logprobs,
    nemo_model,
    nemo_search,
)

OUT = HERE.parents[2] / "tests" / "interop" / "fixtures"

FIXTURES = {
    "canary-fixture": canary.Shape(
        "canary-fixture", "canary", 32, 32, 1, 2, 32, 1, 2, 8, 5, 72, 10, ("en", "de"), True
    ),
    "canary2-fixture": canary.Shape(
        "canary2-fixture", "canary2", 32, 24, 1, 2, 32, 1, 2, 8, 5, 72, 11, ("en", "es"), True
    ),
}


def waveforms() -> tuple[torch.Tensor, torch.Tensor]:
    """Two fixed utterances (1.3 s and 2.05 s of chirps), int16 as audio files hold them."""
    out = []
    for seconds, base in ((1.3, 180.0), (2.05, 260.0)):
        t = torch.arange(int(seconds * 16000), dtype=torch.float64) / 16000
        wave = 0.3 * torch.sin(2 * math.pi * (base + 120 * t) * t) + 0.1 * torch.sin(
            2 * math.pi * 1700 * t
        )
        out.append((wave * 32767).round().to(torch.int16))
    lens = torch.tensor([len(w) for w in out])
    audio = torch.zeros(len(out), int(lens.max()), dtype=torch.int16)
    for i, wave in enumerate(out):
        audio[i, : len(wave)] = wave
    return audio, lens


def reference(path: Path) -> dict[str, object]:
    from padless.interop.nemo import from_nemo

    nemo = nemo_model(path)
    tok = from_nemo(path).tokenizer  # only for prompt ids and a text to teacher-force
    pcm, lens = waveforms()
    audio = pcm.float() / 32768
    langs = tok.block_order
    prompts = [
        tok.prompt_ids(langs[0], langs[0], "asr", True),
        tok.prompt_ids(*langs, "ast", False),
    ]
    with torch.inference_mode():
        feats, feat_lens, memory, enc_lens = nemo_features(nemo, audio, lens)
        texts = [tok.encode("the train leaves at five", langs[0]), tok.encode("hola", langs[1])]
        seqs = [p + t + [tok.eos_id] for p, t in zip(prompts, texts, strict=True)]
        width = max(len(s) for s in seqs)
        tokens = torch.tensor([s + [tok.pad_id] * (width - len(s)) for s in seqs])
        logprobs = torch.cat(
            [
                nemo_logprobs(nemo, memory[i : i + 1], enc_lens[i : i + 1], tokens[i : i + 1])
                for i in range(2)
            ]
        )
        decoded: dict[str, list[list[int]]] = {"greedy": [], "beam": []}
        for i in range(2):
            _, _, mem, el = nemo_features(nemo, audio[i : i + 1, : lens[i]], lens[i : i + 1])
            for strategy in decoded:
                decoded[strategy].append(nemo_search(nemo, strategy, mem, el, prompts[i]))
    out = {
        "audio_int16": pcm,
        "audio_lens": lens,
        "features": feats,
        "feature_lens": feat_lens,
        "memory": memory,
        "memory_lens": enc_lens,
        "prompts": prompts,
        "tokens": tokens,
        "token_lens": torch.tensor([len(s) for s in seqs]),
        "logprobs": logprobs,
        "greedy": decoded["greedy"],
        "beam": decoded["beam"],
        "max_generation_delta": DELTA,
        "beam_size": BEAM,
    }
    # Fresh plain tensors: NeMo's outputs carry its neural-type annotations, which a
    # weights-only load (the tests') refuses.
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else v for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="padless corpus synth folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    texts = canary.corpus_texts(args.corpus / "train.jsonl")
    for name, shape in FIXTURES.items():
        path = canary.build(shape, texts, args.out / f"{name}.nemo")
        torch.save(reference(path), args.out / f"{name}.reference.pt")
        sizes = {p.name: p.stat().st_size for p in sorted(args.out.glob(f"{name}.*"))}
        print(name, sizes, flush=True)


if __name__ == "__main__":
    main()
