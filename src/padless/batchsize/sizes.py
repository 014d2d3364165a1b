"""Memory sizes in human units: ``parse_size("80GiB")`` and ``format_bytes(n)``."""

from __future__ import annotations

import re

# No bare numbers: "--memory-budget 2" meant 2 bytes; a unit (even "B") is required.
_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "k": 2**10,
    "kib": 2**10,
    "m": 2**20,
    "mib": 2**20,
    "g": 2**30,
    "gib": 2**30,
    "t": 2**40,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")


def parse_size(text: str) -> int:
    """``"80GiB"`` -> bytes. Binary units (KiB, MiB, GiB, TiB; bare K/M/G/T) are powers of 1024,
    decimal ones (kB, MB, GB, TB) powers of 1000, as GPU vendors and ``nvidia-smi`` differ here."""
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"cannot read memory size {text!r}: expected a number and a unit such as 80GiB, "
            "512MiB or 40GB (a bare number is not taken as bytes)"
        )
    value = float(match.group(1)) * _UNITS[unit]
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return int(value)


def format_bytes(n: float | None) -> str:
    """Bytes in binary units with three significant figures: ``1.50 GiB``; ``-`` for None."""
    if n is None:
        return "-"
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}" if n / scale < 100 else f"{n / scale:.0f} {unit}"
    return f"{int(n)} B"
