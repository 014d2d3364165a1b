"""Dated benchmark records: what every script in bench/ writes to ``bench/results/``.

A record is ``bench/results/<YYYY-MM-DD>-<name>.md`` (or ``.json``) holding, besides the
measurements, what it takes to read them later and to reproduce them:

- the command line (`command`), so the run can be repeated exactly;
- the configuration, written by each script next to its numbers (this module cannot know it);
- package versions (`versions`): python, padless with its git commit, and the packages the
  measured code leans on, because a faster numpy or torch moves the numbers as much as our code;
- the machine (`machine`): ``uname -a``, CPU model, cores visible and usable, the load average
  (the team's machines are shared, so timings are only comparable within one record), and the
  GPU when the script runs on one.

Scripts import it as a sibling module: run as ``python bench/<script>.py`` Python already puts
``bench/`` first on ``sys.path``; loaded by file path (as tests load ``bench/datasets.py``) the
script inserts ``bench/`` itself before ``from record import ...``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
#: Where records go unless a script is told otherwise (``--out-dir``).
RESULTS = REPO / "bench" / "results"
#: Keys of `machine_info`; everything else in an `environment_info` dict is a version.
MACHINE_KEYS = ("uname", "cpu", "cores", "usable_cores", "load_average", "gpu", "gpu_memory")


def today() -> str:
    """The date that names records and titles them: ``YYYY-MM-DD``."""
    return dt.date.today().isoformat()


def command() -> str:
    """This process's command line as it would be typed from the repo root, shell-quoted."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(REPO):
        script = script.relative_to(REPO)
    return "python " + shlex.join([script.as_posix(), *sys.argv[1:]])


def machine_info() -> dict[str, Any]:
    """``uname -a``, CPU model, cores visible and usable, load average (1/5/15 min) now, and
    the CUDA device when the script has imported torch and one is available."""
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
        git = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO
        )
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


def _format_versions(info: Mapping[str, Any]) -> str:
    parts = [
        f"padless commit {value}" if key == "padless_commit" else f"{key} {value}"
        for key, value in info.items()
        if key not in MACHINE_KEYS
    ]
    return ", ".join(parts)


def _format_machine(info: Mapping[str, Any]) -> str:
    load = " ".join(f"{x:.2f}" for x in info["load_average"])
    lines = [
        info["uname"],
        f"CPU: {info['cpu']}; {info['cores']} cores visible, {info['usable_cores']} usable",
        f"Load average when recorded (1/5/15 min): {load} (shared machine)",
    ]
    if "gpu" in info:
        lines.append(f"GPU: {info['gpu']}, {info['gpu_memory'] / 2**30:.1f} GiB")
    return "\n".join(lines)


def versions(*packages: str) -> str:
    """``python 3.12.3, padless 0.1.0, numpy 2.3.1, padless commit 1a2b3c4``: one line."""
    return _format_versions(package_versions(*packages))


def machine() -> str:
    """`machine_info` as lines for a fenced block: uname, CPU and cores, load, GPU."""
    return _format_machine(machine_info())


def environment(
    *packages: str,
    load_before: Sequence[float] | None = None,
    info: Mapping[str, Any] | None = None,
) -> str:
    """The closing section of a Markdown record: the load average before the run (when the
    script took it), `versions` of ``packages`` and `machine`. ``info`` renders a dict stored
    earlier by `environment_info` instead, so a record's .md and .json say the same thing."""
    info = info if info is not None else environment_info(*packages)
    lines = ["## Environment", ""]
    if load_before is not None:
        load = " ".join(f"{x:.2f}" for x in load_before)
        lines += [f"Load average before the run (1/5/15 min): {load}", ""]
    lines += [f"Versions: {_format_versions(info)}", "", "Machine:", "", "```"]
    lines += [_format_machine(info), "```", ""]
    return "\n".join(lines)


def record_path(name: str, suffix: str = ".md", results_dir: Path = RESULTS) -> Path:
    """``results_dir/<today>-<name><suffix>``, the folder created; also for a record's plots."""
    results_dir.mkdir(parents=True, exist_ok=True)
    return results_dir / f"{today()}-{name}{suffix}"


def write_record(name: str, text: str, results_dir: Path = RESULTS, suffix: str = ".md") -> Path:
    """Write ``text`` as today's record ``name``, print it and ``-> path``; return the path."""
    path = record_path(name, suffix, results_dir)
    text = text.rstrip("\n") + "\n"
    path.write_text(text)
    print(text, end="")
    print(f"-> {path}", flush=True)
    return path


def write_json_record(name: str, data: Mapping[str, Any], results_dir: Path = RESULTS) -> Path:
    """Write ``data`` as today's ``name.json`` (indented, for diffs) and print ``-> path``."""
    path = record_path(name, ".json", results_dir)
    path.write_text(json.dumps(data, indent=1) + "\n")
    print(f"-> {path}", flush=True)
    return path
