"""Tables that put our measurement next to the paper's: the shared renderer of ``paper_e*.py``.

Each experiment script (``bench/paper_e1_sync.py`` ...) ends in one table with a row per claim:
our figure, the paper's figure, their ratio, and a flag on the rows where the two differ by more
than a third. A flagged row is a promise: the record must explain it with a measurement, so
`paper_table` lists the flagged rows under the table and `unexplained` names those that no
``note`` explains yet (scripts pass the explanation as the row's ``note``).

Usage::

    from paper import PaperRow, paper_table
    rows = [
        PaperRow("C mean batch size / A", ours=2.9, paper=3.4, unit="x"),
        PaperRow("D audio padding", ours=0.031, paper=0.045, unit="%", note="see 'Why'"),
        PaperRow("B mean batch size / A", ours=1.02, paper=None),  # the paper gives no figure
    ]
    print(paper_table(rows))

Scripts import it as a sibling module, like `record` (see that module's docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: A row is flagged when ours/paper falls outside [1 - TOLERANCE, 1 + TOLERANCE]: ours "differs
#: by more than a third" of the paper's figure.
TOLERANCE = 1 / 3


@dataclass(frozen=True)
class PaperRow:
    """One claim of the paper and our measurement of it."""

    #: What is measured, e.g. ``"C mean batch size / A"``; the table's first column.
    label: str
    #: Our figure; None when we could not measure it (the row then says so, unflagged).
    ours: float | None
    #: The paper's figure; None when the paper gives none (the row is context, never flagged).
    paper: float | None
    #: How figures print: ``"x"`` (a ratio, ``3.40x``), ``"%"`` (a fraction shown as percent),
    #: ``""`` (a plain number), or any other suffix (``"M"``, ``" s"``) appended to the number.
    unit: str = ""
    #: Decimal places of both figures (percent: of the percentage).
    digits: int = 2
    #: Why ours differs, with the measurement behind it; printed under the table when flagged.
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """ours / paper, or None when either is missing or the paper's figure is 0."""
        if self.ours is None or self.paper is None or self.paper == 0:
            return None
        return self.ours / self.paper

    @property
    def differs(self) -> bool:
        """True when ours is more than a third away from the paper's figure (relative to it)."""
        r = self.ratio
        return r is not None and (math.isnan(r) or abs(r - 1) > TOLERANCE)

    def format(self, value: float | None) -> str:
        """``value`` in this row's unit, ``-`` when missing."""
        if value is None:
            return "-"
        if self.unit == "%":
            return f"{100 * value:.{self.digits}f}%"
        return f"{value:.{self.digits}f}{self.unit}"


def fill_defaults(args: Any, preset: dict[str, Any]) -> None:
    """Give every option the command line left unset (None) its value in ``preset`` (a
    script's QUICK or FULL settings), so an explicit option always wins over ``--quick``."""
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)


def paper_table(rows: Sequence[PaperRow], title: str = "") -> str:
    """A Markdown table ``| measure | ours | paper | ours/paper | |``, the last column ``DIFFERS``
    on rows more than a third away from the paper, then one bullet per flagged row with its note
    (``(unexplained)`` when the row has none). ``title`` becomes a leading bold line."""
    lines = [f"**{title}**", ""] if title else []
    lines += [
        "| measure | ours | paper | ours/paper | |",
        "|---|---:|---:|---:|---|",
    ]
    for row in rows:
        ratio = row.ratio
        shown = "-" if ratio is None else f"{ratio:.2f}"
        flag = "DIFFERS" if row.differs else ""
        lines.append(
            f"| {row.label} | {row.format(row.ours)} | {row.format(row.paper)} | {shown} | {flag} |"
        )
    flagged = [row for row in rows if row.differs]
    if flagged:
        lines += ["", "Rows more than a third away from the paper:", ""]
        lines += [f"- {row.label}: {row.note or '(unexplained)'}" for row in flagged]
    return "\n".join(lines) + "\n"


def print_paper_table(rows: Sequence[PaperRow], title: str = "") -> str:
    """Print `paper_table` (flushed, for scripts whose stdout is a pipe) and return it."""
    text = paper_table(rows, title)
    print(text, end="", flush=True)
    return text


def unexplained(rows: Iterable[PaperRow]) -> list[str]:
    """Labels of the rows that differ from the paper by more than a third and carry no note."""
    return [row.label for row in rows if row.differs and not row.note]


def rows_json(rows: Iterable[PaperRow]) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts (fields plus ``ratio`` and ``differs``), for a .json record."""
    return [{**asdict(row), "ratio": row.ratio, "differs": row.differs} for row in rows]


def parse_paper_table(markdown: str) -> list[dict[str, str]]:
    """The rows of the first `paper_table` in ``markdown`` as ``{measure, ours, paper, ratio,
    flag}`` strings: what tests read back from a written record."""
    out: list[dict[str, str]] = []
    lines = markdown.splitlines()
    try:
        start = lines.index("| measure | ours | paper | ours/paper | |")
    except ValueError:
        return out
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        measure, ours, paper, ratio, flag = cells
        out.append({"measure": measure, "ours": ours, "paper": paper, "ratio": ratio, "flag": flag})
    return out
