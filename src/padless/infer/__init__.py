"""Fast batched inference: greedy and beam search over an explicit KV cache (plus a NeMo-like
recompute reference), transcription of arrays and manifests, and the RTFx harness.

The names below are loaded on first use (PEP 562): ``from padless.infer import decode_batch``
imports torch then, while ``padless.infer.options`` (which the command line reads its defaults
from) stays free of it, so ``padless --help`` does not pay torch's import (~1.3 s).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from padless.infer.cache import CACHES, KVCache, RecomputeCache
    from padless.infer.decode import decode_batch, decode_memory, left_pad_prompts, output_limits
    from padless.infer.options import DecodingOptions
    from padless.infer.search import STRATEGIES, Hypothesis, beam_search, greedy_search

#: Public name -> the submodule that defines it.
_EXPORTS = {
    "CACHES": "cache",
    "KVCache": "cache",
    "RecomputeCache": "cache",
    "decode_batch": "decode",
    "decode_memory": "decode",
    "left_pad_prompts": "decode",
    "output_limits": "decode",
    "DecodingOptions": "options",
    "STRATEGIES": "search",
    "Hypothesis": "search",
    "beam_search": "search",
    "greedy_search": "search",
}

__all__ = [
    "CACHES",
    "STRATEGIES",
    "DecodingOptions",
    "Hypothesis",
    "KVCache",
    "RecomputeCache",
    "beam_search",
    "decode_batch",
    "decode_memory",
    "greedy_search",
    "left_pad_prompts",
    "output_limits",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
