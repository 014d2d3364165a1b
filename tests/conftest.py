"""Shared pytest configuration: markers, one torch thread, and paths to optional real data."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Session fixtures shared by several test folders (utterances, tokenizer, small trained models).
pytest_plugins = ["helpers.speech"]

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real corpus metadata lives beside the checkout (never copied into it); tests that use it skip
# on a fresh clone without it. PADLESS_REAL_DATA overrides the location.
REAL_DATA = Path(os.environ.get("PADLESS_REAL_DATA", REPO_ROOT.parent / "shared" / "data" / "real"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        has_cuda = False
    if has_cuda:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One torch thread per test process: the suite runs as two xdist workers on two cores, so
    more threads per worker only add contention (multi-threaded training of the inference
    fixtures ran many times slower). Session-wide, so session fixtures get it too."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The shared real metadata folder, or skip when this clone has none beside it."""
    if not (REAL_DATA / "ami_meetings_segments.en.jsonl").exists():
        pytest.skip(f"real metadata not found at {REAL_DATA} (set PADLESS_REAL_DATA)")
    return REAL_DATA
