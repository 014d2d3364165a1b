"""Tensor-storage allocations and frees, recorded op by op under a `TorchDispatchMode`.

Every op's outputs are inspected; a storage not seen before is an allocation of its byte size,
and a weak reference to it reports the free when PyTorch releases it (the moment the real
allocator would get the block back: saved activations when autograd frees a graph node,
temporaries when their last reference dies). This counts everything that is a tensor:
parameters, buffers, gradients, optimizer state, the batch, activations saved for backward,
temporaries of forward, backward and the optimizer update, autocast's bf16 weight copies. It
does not see memory a kernel allocates internally without returning it (cuBLAS workspaces,
im2col buffers inside a CPU convolution); the ``cpu`` probe measures those.

The tracker works the same on real and fake tensors; the simulator uses fake ones (no memory at
all) and keeps the event sequence, which `padless.batchsize.trace` replays.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

#: Size recorded for a free event.
FREE = -1


class MemoryTracker(TorchDispatchMode):
    """Live bytes of the tensor storages created while active, their peak, and the events.

    ``events`` holds ``(slot, size)`` for an allocation (slots count allocations from 0) and
    ``(slot, FREE)`` for a free; ``marks`` holds ``(event index, phase)`` at phase changes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live_bytes = 0
        self.peak_bytes = 0
        self.peak_phase = ""
        self.phase = ""
        self.events: list[tuple[int, int]] = []
        self.marks: list[tuple[int, str]] = []
        self._slots: dict[int, tuple[int, int]] = {}  # id(storage) -> (slot, bytes)
        self._refs: dict[int, weakref.ref[Any]] = {}

    def set_phase(self, phase: str) -> None:
        """Label the events that follow (and a peak reached during them)."""
        self.phase = phase
        self.marks.append((len(self.events), phase))

    def reset_peak(self) -> None:
        self.peak_bytes = self.live_bytes
        self.peak_phase = self.phase

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        out = func(*args, **(kwargs or {}))
        for value in tree_flatten(out)[0]:
            if isinstance(value, torch.Tensor):
                self.track(value)
        return out

    def track(self, tensor: torch.Tensor) -> None:
        """Count ``tensor``'s storage if it is new (or resized); called for every op output."""
        storage = tensor.untyped_storage()
        key = id(storage)
        size = storage.nbytes()
        known = self._slots.get(key)
        if known is not None and known[1] == size:
            return
        if known is None:
            self._refs[key] = weakref.ref(storage, functools.partial(self._on_free, key))
        else:  # resized in place (resize_, out= ops): the allocator frees and reallocates
            self._free(key)
        slot = len(self.events)  # unique: one event per index
        self._slots[key] = (slot, size)
        self.events.append((slot, size))
        self.live_bytes += size
        if self.live_bytes > self.peak_bytes:
            self.peak_bytes = self.live_bytes
            self.peak_phase = self.phase

    def _free(self, key: int) -> None:
        slot, size = self._slots.pop(key)
        self.events.append((slot, FREE))
        self.live_bytes -= size

    def _on_free(self, key: int, _ref: object) -> None:
        del self._refs[key]
        self._free(key)
