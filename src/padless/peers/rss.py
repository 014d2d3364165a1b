"""A process's resident memory, read the same way by every measurement that reports it.

Linux: ``/proc/self/status`` (``VmRSS`` now, ``VmHWM`` the peak), the figures of this program's
own address space. ``getrusage``'s max RSS is the fallback elsewhere only: Linux carries it over
from the parent across fork and exec, so a child of a big process would report its parent's peak.
"""

from __future__ import annotations

import resource


def status_mb(field: str) -> float | None:
    """A ``kB`` field of /proc/self/status (VmRSS, VmHWM) in MiB, None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident memory (MiB): ``VmHWM``, else ``getrusage``'s max RSS."""
    peak = status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark to the current RSS (Linux >= 4.0); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True
