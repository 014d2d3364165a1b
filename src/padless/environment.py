"""Where a measurement ran: package versions and the machine, for benchmark records.

`padless bench-rtfx --json` and every script in ``bench/`` (through ``bench/record.py``)
describe their environment with these, so records say the same things in the same keys.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

#: The checkout this module runs from (an editable install); elsewhere git finds no commit.
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
#: Keys of `machine_info`; everything else in an `environment_info` dict is a version.
MACHINE_KEYS = ("uname", "cpu", "cores", "usable_cores", "load_average", "gpu", "gpu_memory")


def machine_info() -> dict[str, Any]:
    """``uname -a``, CPU model, cores visible and usable, load average (1/5/15 min) now, and
    the CUDA device when torch is imported and sees one."""
    try:
        uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, check=True)
        system = uname.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        system = " ".join(platform.uname())
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        cpuinfo = []
    models = (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    info: dict[str, Any] = {
        "uname": system,
        "cpu": next(models, platform.processor() or "unknown"),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    torch = sys.modules.get("torch")  # never imported here: a GPU is only there if torch is
    if torch is not None and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["gpu_memory"] = torch.cuda.get_device_properties(0).total_memory
    return info


def package_versions(*packages: str) -> dict[str, str]:
    """python, padless and its commit, then each package (distribution name) in order; a
    package that is not installed says so rather than failing the run at its very end."""
    out = {"python": platform.python_version()}
    for name in ("padless", *packages):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    try:
        command = ["git", "rev-parse", "--short", "HEAD"]
        git = subprocess.run(command, capture_output=True, text=True, cwd=_SOURCE_ROOT)
        out["padless_commit"] = git.stdout.strip() or "unknown"
    except OSError:  # no git on the machine
        out["padless_commit"] = "unknown"
    torch = sys.modules.get("torch")
    if torch is not None and torch.version.cuda:
        out["cuda"] = torch.version.cuda
    return out


def environment_info(*packages: str) -> dict[str, Any]:
    """`package_versions` and `machine_info` in one flat dict: a JSON record's ``machine``."""
    return package_versions(*packages) | machine_info()
