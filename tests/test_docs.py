"""The examples in README.md and docs/*.md still match the code: every import of a Python
block runs (the modules and public names exist), and every `padless` command line names an
existing command with existing options."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest
import typer

from padless.cli import app

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _blocks(language: str | None) -> list[tuple[str, int, str]]:
    """(file, line, code) of each fenced block in that language (None: bash or unlabelled)."""
    out = []
    for path in DOCS:
        text = path.read_text()
        for match in FENCE.finditer(text):
            lang, code = match.group(1), match.group(2)
            if (lang == language) if language else lang in ("", "bash"):
                line = text.count("\n", 0, match.start()) + 1
                out.append((path.name, line, code))
    return out


PYTHON = _blocks("python")
SHELL = _blocks(None)


@pytest.mark.parametrize(("doc", "line", "code"), PYTHON, ids=[f"{d}:{n}" for d, n, _ in PYTHON])
def test_python_examples_import(doc: str, line: int, code: str) -> None:
    tree = ast.parse(code, filename=f"{doc}:{line}")
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)]
    assert imports or "padless" not in code, f"{doc}:{line}: padless names used, none imported"
    module = ast.Module(body=imports, type_ignores=[])  # type: ignore[arg-type]
    exec(compile(module, f"{doc}:{line}", "exec"), {})  # ImportError names what is gone


def _command_lines() -> list[tuple[str, str]]:
    """("file:line", command line) of each `padless ...` line, continuations joined."""
    out = []
    for doc, start, code in SHELL:
        lines = code.split("\n")
        i = 0
        while i < len(lines):
            first, text = i, lines[i]
            while text.rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text.rstrip()[:-1] + " " + lines[i]
            text = text.split(" # ")[0].split("   #")[0]  # trailing comments
            if text.strip().startswith("padless "):
                out.append((f"{doc}:{start + 1 + first}", text.strip()))
            i += 1
    return out


COMMAND_LINES = _command_lines()


def _resolve(words: list[str]) -> tuple[str, Any]:
    command: Any = typer.main.get_command(app)
    path = []
    for word in words:
        sub = getattr(command, "commands", {}).get(word)
        if sub is None:
            break
        command, path = sub, [*path, word]
    return " ".join(path), command


def test_docs_show_command_lines() -> None:
    assert len(COMMAND_LINES) > 10 and len(PYTHON) > 5


@pytest.mark.parametrize(("where", "line"), COMMAND_LINES, ids=[w for w, _ in COMMAND_LINES])
def test_command_lines_use_existing_commands_and_options(where: str, line: str) -> None:
    words = line.split()[1:]
    name, command = _resolve(words)
    assert name and not hasattr(command, "commands"), f"{where}: no command in {line!r}"
    known = {"--help"}
    for param in command.params:
        known.update(param.opts, param.secondary_opts)
    used = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", line))
    assert used <= known, f"{where}: padless {name} has no {sorted(used - known)}"
