"""`padless model info` on presets and checkpoints."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import orjson
from typer.testing import CliRunner

from padless.cli import app
from padless.model import PRESETS, AEDModel, save_checkpoint

runner = CliRunner()


def test_info_json_on_a_preset() -> None:
    result = runner.invoke(app, ["model", "info", "canary-1b-flash", "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    params = report["params"]
    assert params["total"] == params["encoder"] + params["projection"] + params["decoder"]
    assert abs(params["total"] - 882e6) / 882e6 < 0.01
    assert report["encoder"]["layers"] == 32 and report["decoder"]["layers"] == 4


def test_info_on_a_checkpoint_and_a_bad_name(tmp_path: Path) -> None:
    cfg = dataclasses.replace(PRESETS["tiny-canary-1b-flash"], vocab_size=40)
    save_checkpoint(tmp_path / "m.pt", AEDModel(cfg))
    result = runner.invoke(app, ["model", "info", str(tmp_path / "m.pt"), "--json"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.output)
    assert report["source"] == "checkpoint" and report["vocab_size"] == 40
    text = runner.invoke(app, ["model", "info", "tiny-canary-1b"])
    assert text.exit_code == 0 and "parameters" in text.output
    bad = runner.invoke(app, ["model", "info", "canary-2b"])
    assert bad.exit_code != 0 and "neither a preset" in bad.output
