"""Fast batched inference: greedy and beam search over an explicit KV cache (plus a NeMo-like
recompute reference), transcription of arrays and manifests, and the RTFx harness."""

from padless.infer.cache import CACHES, KVCache, RecomputeCache
from padless.infer.decode import decode_batch, decode_memory, left_pad_prompts, output_limits
from padless.infer.options import DecodingOptions
from padless.infer.search import STRATEGIES, Hypothesis, beam_search, greedy_search

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
