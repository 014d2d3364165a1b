"""CPU inference settings: glibc's allocator and torch threads.

glibc serves every allocation above its mmap threshold (128 kB, adaptive up to 32 MB) with a
fresh ``mmap`` and returns it to the OS on free, so each new large tensor (the encoder's 20 ms
feature maps are tens of MB) page-faults its memory in again. Keeping freed memory in the heap
(no mmap, no trimming) removes that cost: measured on the tiny presets it roughly halves the
encoder time (docs/model.md). The cost is a process that keeps its peak memory until it exits,
which suits a transcription or benchmark process; libraries embedding padless decide for
themselves (the CLI commands call it for ``--device cpu``).
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Tell glibc malloc to reuse freed memory instead of unmapping it. False if not glibc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        return False
    ok = mallopt(_M_MMAP_MAX, 0) == 1
    return bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1 and ok)
