"""The batch-size search ("OOMptimizer"): the largest batch per bucket that fits in memory.

    padless oomptimize --model canary-1b --plan plan.json --probe simulate \\
        --memory-budget 80GiB --dtype bf16 --out batch_sizes.json

Modules, in the order data flows:

- config.py          StepConfig, SimulateConfig, OomptimizeConfig (torch-free: the CLI reads them)
- search.py          the search over batch sizes (model-agnostic; a probe answers "does it fit?")
- workload.py        the trial step (forward, loss, backward, AdamW, zero_grad) of an AEDModel
- simulate.py        ``simulate`` probe: fake tensors, no memory; CUDA emulated on request
    tracker.py         records tensor-storage allocations and frees op by op
    trace.py           replays a recorded step at any batch size
    cuda_emulation.py  CUDA autocast policy, attention kernels and dropout on fake CPU tensors
    allocator.py       model of PyTorch's CUDA caching allocator
- cpu.py             ``cpu`` probe: real steps in a fresh subprocess each, peak RSS measured
- cuda.py            ``cuda`` probe: real steps on a GPU, out-of-memory caught
- table.py           plan in, per-bucket batch-size table out (the sampler's input)
- report.py          comparison with the 360 s batch-duration heuristic
"""

from padless.batchsize.search import (
    BucketResult,
    BucketShape,
    Measurement,
    MemoryProbe,
    NoBatchFitsError,
    SearchConfig,
    SearchResult,
    search,
)
from padless.batchsize.sizes import format_bytes, parse_size

__all__ = [
    "BucketResult",
    "BucketShape",
    "Measurement",
    "MemoryProbe",
    "NoBatchFitsError",
    "SearchConfig",
    "SearchResult",
    "format_bytes",
    "parse_size",
    "search",
]
