"""bench/paper.py: the our-figure-next-to-the-paper's table every paper_e*.py script prints."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load(name: str):  # bench/ is a folder of scripts, not a package
    if name in sys.modules:
        return sys.modules[name]
    sys.path.insert(0, str(REPO_ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


paper = _load("paper")


def test_rows_flag_only_more_than_a_third_away() -> None:
    rows = [
        paper.PaperRow("close", ours=4.0, paper=3.4, unit="x"),  # 1.18
        paper.PaperRow("low", ours=2.0, paper=3.4, unit="x", note="shorter utterances"),  # 0.59
        paper.PaperRow("high", ours=0.10, paper=0.07, unit="%"),  # 1.43
        paper.PaperRow("no paper figure", ours=1.0, paper=None),
        paper.PaperRow("not measured", ours=None, paper=5.0),
    ]
    assert [r.differs for r in rows] == [False, True, True, False, False]
    assert paper.unexplained(rows) == ["high"]
    text = paper.paper_table(rows, title="E2")
    parsed = paper.parse_paper_table(text)
    assert [p["measure"] for p in parsed] == [r.label for r in rows]
    assert parsed[0] == {
        "measure": "close",
        "ours": "4.00x",
        "paper": "3.40x",
        "ratio": "1.18",
        "flag": "",
    }
    assert parsed[2]["ours"] == "10.00%" and parsed[2]["flag"] == "DIFFERS"
    assert parsed[3]["paper"] == "-" and parsed[3]["ratio"] == "-"
    assert "- low: shorter utterances" in text and "- high: (unexplained)" in text
    js = paper.rows_json(rows)
    assert js[1]["differs"] is True and abs(js[1]["ratio"] - 2.0 / 3.4) < 1e-12


def test_boundary_of_a_third() -> None:
    assert not paper.PaperRow("edge", ours=4.0, paper=3.0).differs  # exactly a third: kept
    assert paper.PaperRow("past", ours=4.01, paper=3.0).differs
    assert paper.PaperRow("zero paper", ours=1.0, paper=0.0).ratio is None
