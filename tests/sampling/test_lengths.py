"""Length functions: num_tokens from the manifest or counted by the Canary tokenizer."""

from __future__ import annotations

import random

import numpy as np
import orjson
import pytest
from typer.testing import CliRunner

from padless.cli import app
from padless.data.example import Example
from padless.data.tokenizer import CanaryTokenizer, TokenizerTrainConfig, train_tokenizer
from padless.sampling.lengths import ExampleLengths, MissingTokensError, tokens_per_second
from padless.sampling.plan import BucketPlan

WORDS = [
    "the",
    "a",
    "speech",
    "model",
    "reads",
    "long",
    "and",
    "short",
    "sentences",
    "about",
    "weather",
    "music",
    "cities",
    "numbers",
]


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 25)))


@pytest.fixture(scope="module")
def manifest_and_tokenizer(tmp_path_factory):
    root = tmp_path_factory.mktemp("lengths")
    rng = random.Random(0)
    manifest = root / "m.jsonl"
    with manifest.open("wb") as f:
        for i in range(600):
            text = _text(rng)
            row = {
                "id": f"t{i}",
                "duration": round(0.6 + 0.35 * len(text.split()), 2),
                "text": text,
                "lang": "en",
            }
            f.write(orjson.dumps(row) + b"\n")
    train_tokenizer([str(manifest)], root / "tok", TokenizerTrainConfig(vocab_per_lang=64))
    return manifest, CanaryTokenizer.load(root / "tok"), root


def test_tokens_are_counted_and_cached_when_missing(manifest_and_tokenizer) -> None:
    _, tok, _ = manifest_and_tokenizer
    examples = [
        Example(
            id="a",
            duration=2.0,
            audio=None,
            text="the speech model",
            source_lang="en",
            target_lang="en",
        ),
        Example(id="b", duration=1.0, audio=None, num_tokens=9),
    ]
    dur, counts = ExampleLengths(tok)(examples)
    assert dur.tolist() == [2.0, 1.0]
    assert counts[1] == 9 and counts[0] == tok.num_tokens(examples[0]) == examples[0].num_tokens
    assert counts[0] == 5 + len(tok.encode("the speech model", "en")) + 1  # prompt + text + EOS
    with pytest.raises(MissingTokensError, match="'c' has no num_tokens"):
        ExampleLengths()([Example(id="c", duration=1.0, audio=None, text="x")])


def test_tokens_per_second() -> None:
    tps = tokens_per_second(np.array([2.0, 0.0]), np.array([50, 3]))
    assert tps[0] == 25.0 and np.isinf(tps[1])


def test_plan_counts_tokens_with_the_tokenizer(manifest_and_tokenizer) -> None:
    manifest, _, root = manifest_and_tokenizer
    out = root / "plan.json"
    result = CliRunner().invoke(
        app,
        [
            "plan",
            str(manifest),
            "--tokenizer",
            str(root / "tok"),
            "--num-buckets",
            "4",
            "--num-subbuckets",
            "2",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    plan = BucketPlan.load(out)
    assert plan.sample["size"] == 600 and all(
        b.max_tokens and b.max_tokens > 6 for b in plan.buckets
    )
    missing = CliRunner().invoke(app, ["plan", str(manifest), "--out", str(root / "p2.json")])
    assert missing.exit_code == 2
    assert "has no num_tokens" in missing.output.splitlines()[-1]
