"""`evaluate_examples` end to end on corpus utterances with a random-weight tiny-preset model,
and `padless evaluate` on a checkpoint and a manifest written from the same utterances."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from padless.cli import app
from padless.data.errors import PadlessInputError
from padless.data.tokenizer import CanaryTokenizer
from padless.eval.config import EvalConfig
from padless.eval.evaluate import (
    HYPOTHESES_FILE,
    SCORES_FILE,
    evaluate_examples,
    score_hypotheses,
)
from padless.eval.scores import pooled, word_errors
from padless.model import AEDModel
from padless.model.checkpoint import save_checkpoint


def test_evaluate_examples(
    utterances: Any, tokenizer: CanaryTokenizer, random_model: AEDModel, tmp_path: Path
):
    examples = utterances.examples
    random_model.train()  # as during training: evaluation must not leave it in eval mode
    rng = torch.get_rng_state()
    batches: list[int] = []
    result = evaluate_examples(
        random_model,
        tokenizer,
        examples,
        config=EvalConfig(beam_size=1, batch_size=3),
        device="cpu",
        out_dir=tmp_path / "val",
        on_batch=batches.append,
    )
    assert random_model.training
    # no random numbers drawn (eval mode: no dropout, dither or SpecAugment), so validation
    # inside training leaves an exact resume exact
    assert torch.equal(torch.get_rng_state(), rng)
    assert sum(batches) == len(examples) and max(batches) <= 3

    asr = {ex.source_lang for ex in examples if ex.task == "asr"}
    ast = {f"{ex.source_lang}->{ex.target_lang}" for ex in examples if ex.task == "ast"}
    assert set(result.wer) == asr and set(result.bleu) == ast
    assert [h.id for h in result.hypotheses] == [ex.id for ex in examples]  # input order
    for hyp, ex in zip(result.hypotheses, examples, strict=True):
        assert (hyp.task, hyp.source_lang, hyp.reference) == (ex.task, ex.source_lang, ex.text)
    assert sum(s.utterances for s in result.wer_scores.values()) + sum(
        s.utterances for s in result.bleu_scores.values()
    ) == len(examples)
    assert all(v >= 0 for v in result.wer.values()) and all(
        0 <= v <= 100 for v in result.bleu.values()
    )

    # the files beside each other: one JSONL line per example, scores equal to the result's
    rows = [
        orjson.loads(line)
        for line in (tmp_path / "val" / HYPOTHESES_FILE).read_bytes().splitlines()
    ]
    assert [r["id"] for r in rows] == [ex.id for ex in examples]
    assert all(("reference_normalized" in r) == (r["task"] == "asr") for r in rows)
    scores = orjson.loads((tmp_path / "val" / SCORES_FILE).read_bytes())
    assert scores["wer"] == result.wer and scores["bleu"] == result.bleu
    assert scores["utterances"] == len(examples)

    # the same hypotheses with the references as output: the scoring path gives 0 WER, and
    # BLEU 100 wherever the direction has a 4-gram to match
    exact = score_hypotheses(
        [dataclasses.replace(h, hypothesis=h.reference) for h in result.hypotheses]
    )
    assert exact.wer == dict.fromkeys(result.wer, 0.0) and exact.wer_total == 0.0
    for key, score in exact.bleu_scores.items():
        longest = max(len(h.reference.split()) for h in result.hypotheses if h.group == key)
        assert score.bleu == (pytest.approx(100.0) if longest >= 4 else 0.0)


def test_beam_and_greedy_agree_on_structure(
    utterances: Any, tokenizer: CanaryTokenizer, random_model: AEDModel
):
    examples = utterances.examples[:3]
    beam = evaluate_examples(
        random_model, tokenizer, examples, config=EvalConfig(beam_size=2, batch_size=2)
    )
    assert [h.id for h in beam.hypotheses] == [ex.id for ex in examples]
    assert EvalConfig(beam_size=2).decoding_options().strategy == "beam"
    assert EvalConfig().decoding_options().strategy == "greedy"
    joint = EvalConfig(beam_size=4, ctc_weight=0.3)
    assert joint.decoding_options().ctc_weight == 0.3 and joint.describe() == "beam 4 + CTC 0.3"
    assert EvalConfig().describe() == "greedy"


def test_bad_input(utterances: Any, tokenizer: CanaryTokenizer, random_model: AEDModel):
    no_text = dataclasses.replace(utterances.examples[0], text=None)
    with pytest.raises(PadlessInputError, match="no reference text"):
        evaluate_examples(random_model, tokenizer, [no_text])
    with pytest.raises(PadlessInputError, match="no examples"):
        evaluate_examples(random_model, tokenizer, [])
    with pytest.raises(ValueError, match="model is on cpu"):
        evaluate_examples(random_model, tokenizer, utterances.examples, device="meta")
    with pytest.raises(ValueError, match="beam_size"):
        EvalConfig(beam_size=0)


@pytest.fixture(scope="module")
def checkpoint_and_manifest(
    utterances: Any,
    tokenizer: CanaryTokenizer,
    random_model: AEDModel,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("eval-cli")
    rows = []
    for ex, wave in zip(utterances.examples, utterances.waves, strict=True):
        sf.write(root / f"{ex.id}.flac", wave, 16_000)
        rows.append(
            {
                "audio_filepath": f"{ex.id}.flac",
                "id": ex.id,
                "duration": ex.duration,
                "text": ex.text,
                "source_lang": ex.source_lang,
                "target_lang": ex.target_lang,
                "taskname": ex.task,
                "pnc": "yes" if ex.pnc else "no",
            }
        )
    manifest = root / "dev.jsonl"
    manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    checkpoint = root / "model.pt"
    save_checkpoint(checkpoint, random_model, tokenizer=tokenizer)
    return checkpoint, manifest


def test_cli_evaluate(checkpoint_and_manifest: tuple[Path, Path], tmp_path: Path):
    checkpoint, manifest = checkpoint_and_manifest
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        app, ["evaluate", str(checkpoint), str(manifest), "--json", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    [entry] = report["evaluations"]
    assert report["decoding"]["beam_size"] == EvalConfig().beam_size
    lines = (out / HYPOTHESES_FILE).read_bytes().splitlines()
    assert len(lines) == sum(1 for _ in manifest.open()) == entry["scores"]["utterances"]
    assert orjson.loads((out / SCORES_FILE).read_bytes()) == entry["scores"]

    table = CliRunner().invoke(app, ["evaluate", str(checkpoint), str(manifest)])
    assert table.exit_code == 0, table.output
    for key in entry["scores"]["wer"]:
        assert f"WER {key}" in table.stdout
    for key in entry["scores"]["bleu"]:
        assert f"BLEU {key}" in table.stdout

    # --compare: two columns and the change; outputs per checkpoint label
    other = tmp_path / "other" / "model.pt"
    other.parent.mkdir()
    other.write_bytes(checkpoint.read_bytes())
    both = CliRunner().invoke(
        app,
        [
            "evaluate",
            str(checkpoint),
            str(manifest),
            "--compare",
            str(other),
            "--json",
            "--out",
            str(tmp_path / "cmp"),
        ],
    )
    assert both.exit_code == 0, both.output
    first, second = orjson.loads(both.stdout)["evaluations"]
    assert first["label"] != second["label"]
    assert first["scores"] == second["scores"]  # same weights, same decoding
    assert (tmp_path / "cmp" / second["label"] / HYPOTHESES_FILE).is_file()
    side = CliRunner().invoke(
        app, ["evaluate", str(checkpoint), str(manifest), "--compare", str(other)]
    )
    assert side.exit_code == 0 and "change" in side.stdout and "+0.00" in side.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}", "{manifest}"], "not a readable padless checkpoint"),
        (["{checkpoint}", "{missing}"], "missing"),
        (["{checkpoint}", "{manifest}", "--beam", "0"], "--beam"),
        (["{checkpoint}", "{bad}"], ":2: bad JSON"),
        (["{checkpoint}", "{no_text}"], "text"),
        (["{checkpoint}", "{klingon}"], "tlh"),
        pytest.param(
            ["{checkpoint}", "{manifest}", "--beam", "2", "--ctc-weight", "0.3"],
            "needs a model trained with a CTC head",
            id="ctc-without-head",
        ),
        pytest.param(
            ["{checkpoint}", "{manifest}", "--ctc-weight", "0.3"],
            "needs a beam",
            id="ctc-greedy",
        ),
        pytest.param(
            ["{checkpoint}", "{manifest}", "--device", "cuda"],
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available"),
        ),
    ],
)
def test_cli_bad_input(
    checkpoint_and_manifest: tuple[Path, Path], tmp_path: Path, args: list[str], message: str
):
    checkpoint, manifest = checkpoint_and_manifest
    first = manifest.read_bytes().splitlines()[0]
    row = orjson.loads(first)
    paths = {
        "checkpoint": checkpoint,
        "manifest": manifest,
        "missing": tmp_path / "missing.jsonl",
        "bad": tmp_path / "bad.jsonl",
        "no_text": tmp_path / "no_text.jsonl",
        "klingon": tmp_path / "klingon.jsonl",
    }
    paths["bad"].write_bytes(first + b"\n{oops\n")
    row["audio_filepath"] = str(manifest.parent / row["audio_filepath"])
    paths["no_text"].write_bytes(orjson.dumps({k: v for k, v in row.items() if k != "text"}))
    paths["klingon"].write_bytes(orjson.dumps({**row, "source_lang": "tlh", "target_lang": "tlh"}))
    result = CliRunner().invoke(app, ["evaluate", *(a.format(**paths) for a in args)])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow  # trains the inference tests' small model (~10 s) in this process
def test_scores_of_a_trained_model_add_up(
    utterances: Any, tokenizer: CanaryTokenizer, partly_trained: AEDModel
):
    """With varied, partly right outputs: each language's WER is the pooled per-utterance edit
    counts, and an exact hypothesis costs nothing."""
    result = evaluate_examples(
        partly_trained, tokenizer, utterances.examples, config=EvalConfig(batch_size=4)
    )
    assert any(h.hypothesis for h in result.hypotheses)
    for lang, wer in result.wer.items():
        members = [h for h in result.hypotheses if h.group == lang]
        each = [word_errors([h.reference], [h.hypothesis], lang) for h in members]
        assert wer == pytest.approx(pooled(each).wer)
        for h, score in zip(members, each, strict=True):
            if h.hypothesis == h.reference:
                assert score.errors == 0


def test_cli_help_imports_no_torch():
    """The evaluate command reads its defaults from `EvalConfig` without importing torch, so
    ``padless --help`` stays fast (the convention of padless.cli)."""
    import subprocess
    import sys

    code = "import sys, padless.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
