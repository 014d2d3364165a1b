"""Shared helpers for the sampling tests: small, realistic length mixes as `Example`s."""

from __future__ import annotations

import numpy as np
import pytest

from padless.data.example import Example


def length_mix(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Durations (s) and decoder tokens of a Canary-like mix: short commands, ~5 s read
    prompts, ~15 s segments, long 20-40 s recordings of which some carry little speech."""
    rng = np.random.default_rng(seed)
    kind = rng.choice(4, size=n, p=[0.1, 0.3, 0.45, 0.15])
    dur = np.select(
        [kind == 0, kind == 1, kind == 2],
        [rng.uniform(0.5, 2.0, n), rng.lognormal(np.log(5.0), 0.35, n), rng.normal(15.0, 4.0, n)],
        rng.uniform(20.0, 40.0, n),
    )
    dur = np.round(np.clip(dur, 0.5, 40.0), 3)
    speech = np.where((kind == 3) & (rng.random(n) < 0.3), rng.uniform(0.05, 0.3, n), 1.0)
    tps = rng.lognormal(np.log(4.0), 0.25, n)
    tokens = 6 + np.round(dur * speech * tps).astype(np.int64)
    return dur, tokens


def make_examples(n: int, seed: int = 0, prefix: str = "ex") -> list[Example]:
    dur, tok = length_mix(n, seed)
    return [
        Example(
            id=f"{prefix}-{i:06d}",
            duration=float(d),
            audio=None,
            num_tokens=int(t),
            source_lang="en",
            target_lang="en",
        )
        for i, (d, t) in enumerate(zip(dur, tok, strict=True))
    ]


@pytest.fixture(scope="session")
def mix_5k() -> tuple[np.ndarray, np.ndarray]:
    """5000 (duration, tokens) pairs of the mix."""
    return length_mix(5000, seed=1)


@pytest.fixture(scope="session")
def lengths_of():
    """``lengths_of(n, seed)``: (durations, tokens) of the mix."""
    return length_mix


@pytest.fixture(scope="session")
def examples_of():
    """``examples_of(n, seed, prefix)``: metadata-only Examples of the mix with num_tokens."""
    return make_examples
