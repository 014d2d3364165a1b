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

Versions and machine are collected by `padless.environment` (``padless bench-rtfx --json``
reports the same keys); this module renders and writes them.

Scripts import it as a sibling module: run as ``python bench/<script>.py`` Python already puts
``bench/`` first on ``sys.path``; loaded by file path (as tests load ``bench/datasets.py``) the
script inserts ``bench/`` itself before ``from record import ...``.
"""

from __future__ import annotations

import datetime as dt
import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from padless.environment import MACHINE_KEYS, environment_info, machine_info, package_versions

REPO = Path(__file__).resolve().parents[1]
#: Where records go unless a script is told otherwise (``--out-dir``).
RESULTS = REPO / "bench" / "results"


def today() -> str:
    """The date that names records and titles them: ``YYYY-MM-DD``."""
    return dt.date.today().isoformat()


def command() -> str:
    """This process's command line as it would be typed from the repo root, shell-quoted."""
    script = Path(sys.argv[0]).resolve()
    if script.is_relative_to(REPO):
        script = script.relative_to(REPO)
    return "python " + shlex.join([script.as_posix(), *sys.argv[1:]])


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
