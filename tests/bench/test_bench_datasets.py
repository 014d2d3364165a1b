"""The benchmark dataset generators in bench/datasets.py: shape, determinism, file format."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import orjson
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_bench_datasets():  # bench/ is a folder of scripts, not a package
    name = "padless_bench_datasets"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "bench" / "datasets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


bd = _load_bench_datasets()


@pytest.fixture(scope="module")
def mix20k():
    return bd.sample_canary_mix(20_000, seed=3)


def test_canary_mix_matches_its_description(mix20k) -> None:
    stats = bd.length_statistics(mix20k.duration, mix20k.num_tokens)
    assert 15.5 <= stats["duration_mean"] <= 18.5  # "mean ~17 s"
    assert stats["duration_min"] >= bd.MIN_DURATION and stats["duration_max"] <= bd.MAX_DURATION
    assert stats["duration_p10"] < 6 and stats["duration_p90"] > 28  # wide: short and long
    # A few high-TPS outliers for the TPS <= 25 filter, not a large share of the data.
    assert 0.002 <= stats["share_tps_over_25"] <= 0.015
    # Long recordings with little speech: low TPS at long durations.
    long_low = (mix20k.duration > 10) & (mix20k.num_tokens / mix20k.duration < 2)
    assert long_low.mean() > 0.02
    assert (mix20k.num_tokens >= bd.PROMPT_TOKENS + bd.EOS_TOKENS).all()


def test_canary_mix_languages_and_tasks(mix20k) -> None:
    cfg = mix20k.config
    asr = mix20k.task == 0
    assert (mix20k.source_lang[asr] == mix20k.target_lang[asr]).all()
    ast = ~asr
    assert (mix20k.source_lang[ast] != mix20k.target_lang[ast]).all()
    # Every AST pair involves English (Canary-1B's directions).
    assert ((mix20k.source_lang[ast] == 0) | (mix20k.target_lang[ast] == 0)).all()
    assert 0.2 < ast.mean() < 0.3
    shares = np.bincount(mix20k.source_lang, minlength=len(cfg.languages)) / len(mix20k)
    np.testing.assert_allclose(shares, cfg.source_weights, atol=0.02)
    # Slower-tokenizing English has fewer tokens per second than German at equal duration.
    tps = mix20k.num_tokens / mix20k.duration
    speechy = (mix20k.component == 2) & asr  # audiobook ASR
    en, de = cfg.languages.index("en"), cfg.languages.index("de")
    assert np.median(tps[speechy & (mix20k.target_lang == en)]) < np.median(
        tps[speechy & (mix20k.target_lang == de)]
    )


def test_canary_mix_is_deterministic_from_the_seed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    bd.write_canary_mix(bd.sample_canary_mix(3000, seed=7), a)
    bd.write_canary_mix(bd.sample_canary_mix(3000, seed=7), b)
    assert a.read_bytes() == b.read_bytes()
    other = bd.sample_canary_mix(3000, seed=8)
    assert not np.array_equal(other.duration, bd.sample_canary_mix(3000, seed=7).duration)


def test_generated_data_is_independent_of_default_rng_streams(tmp_path: Path) -> None:
    # Samplers draw their random samples with np.random.default_rng(seed): the data must not
    # share that stream, or the "random" sample of it is biased (seed 0 vs seed 0 was).
    for seed in (0, 1):
        sample = bd.sample_canary_mix(20_000, seed=seed)
        keys = np.random.default_rng(seed).random(len(sample))
        lowest = np.argsort(keys)[: len(sample) // 4]  # a bottom-k sample by those keys
        assert abs(sample.duration[lowest].mean() - sample.duration.mean()) < 0.5
    src = tmp_path / "src.jsonl"
    bd.write_canary_mix(bd.sample_canary_mix(1000, seed=0), src)
    out = tmp_path / "big.jsonl"
    bd.bootstrap_manifest(src, out, 20_000, seed=0)
    durations, _ = bd.read_lengths(out)
    lowest = np.argsort(np.random.default_rng(0).random(20_000))[:5000]
    assert abs(durations[lowest].mean() - durations.mean()) < 0.5


def test_canary_mix_file_round_trips(tmp_path: Path) -> None:
    sample = bd.sample_canary_mix(2000, seed=1)
    out = tmp_path / "sub" / "mix.jsonl"
    bd.write_canary_mix(sample, out)
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 2000
    assert len({r["id"] for r in rows}) == 2000
    assert all("audio_filepath" not in r for r in rows)
    assert {r["taskname"] for r in rows} == {"asr", "ast"}
    durations, tokens = bd.read_lengths(out)
    np.testing.assert_array_equal(durations, sample.duration)
    np.testing.assert_array_equal(tokens, sample.num_tokens)


def test_bootstrap_resamples_with_fresh_ids(tmp_path: Path) -> None:
    src = tmp_path / "src.jsonl"
    src_rows = [
        {"id": "a", "duration": 1.5, "num_tokens": 9, "lang": "en"},
        {"duration": 2.0, "num_tokens": 12, "text": 'quote " and ü'},
        {"id": "only-id"},
    ]
    src.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in src_rows) + b"\n")
    out = tmp_path / "big.jsonl"
    assert bd.bootstrap_manifest(src, out, 500, seed=2) == 3
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == 500
    assert len({r["id"] for r in rows}) == 500
    bodies = [{k: v for k, v in r.items() if k != "id"} for r in src_rows]
    assert all({k: v for k, v in r.items() if k != "id"} in bodies for r in rows)
    # Bootstrap draws every source line at this size, each roughly a third of the time.
    counts = [sum({k: v for k, v in r.items() if k != "id"} == b for r in rows) for b in bodies]
    assert min(counts) > 100
    again = tmp_path / "again.jsonl"
    bd.bootstrap_manifest(src, again, 500, seed=2)
    assert again.read_bytes() == out.read_bytes()


def test_bootstrap_reports_bad_lines(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"id": "a", "duration": 1.0}\n{"id": "b", "duration": \n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: bad JSON"):
        bd.bootstrap_manifest(src, tmp_path / "out.jsonl", 10)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="no lines"):
        bd.bootstrap_manifest(empty, tmp_path / "out.jsonl", 10)


def test_real_manifest_tokenizes_the_transcribed_files(real_data_dir: Path, tmp_path: Path) -> None:
    out, work = tmp_path / "real.jsonl", tmp_path / "work"
    report = bd.real_manifest(real_data_dir, out, work)
    assert report.tokenizer_trained
    assert "librispeech_train_clean_100.durations_only.en.jsonl" in report.skipped_files
    expected = sum(
        1
        for f in report.files
        for line in (real_data_dir / f).read_bytes().splitlines()
        if isinstance(orjson.loads(line).get("text"), str)
    )
    rows = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(rows) == expected == len(report.duration)
    assert set(report.languages) == {r["target_lang"] for r in rows} >= {"en", "fr"}
    # Prompt (5) + at least one text or <|nospeech|> token + EOS.
    assert min(r["num_tokens"] for r in rows) >= bd.PROMPT_TOKENS + 1 + bd.EOS_TOKENS
    # The count is the tokenizer's: prompt + encode(text) + EOS.
    from padless.data.tokenizer import CanaryTokenizer

    tok = CanaryTokenizer.load(report.tokenizer_dir)
    assert tok.languages == tuple(sorted(report.languages))
    texts = {}
    for f in report.files:
        for line in (real_data_dir / f).read_bytes().splitlines()[:50]:
            row = orjson.loads(line)
            texts[row["id"]] = (row["text"], row["lang"])
    by_id = {r["id"]: r for r in rows}
    for ex_id, (text, lang) in texts.items():
        n_text = max(len(tok.encode(text, lang)), 1)
        assert by_id[ex_id]["num_tokens"] == bd.PROMPT_TOKENS + n_text + bd.EOS_TOKENS
    # A second run loads the cached tokenizer and writes the same file.
    again = tmp_path / "again.jsonl"
    report2 = bd.real_manifest(real_data_dir, again, work)
    assert not report2.tokenizer_trained and report2.tokenizer_dir == report.tokenizer_dir
    assert again.read_bytes() == out.read_bytes()


def test_padless_reads_the_generated_manifests(tmp_path: Path) -> None:
    from padless.data.stream import read_manifest

    sample = bd.sample_canary_mix(1000, seed=4)
    mix = tmp_path / "mix.jsonl"
    bd.write_canary_mix(sample, mix)
    big = tmp_path / "big.jsonl"
    bd.bootstrap_manifest(mix, big, 1500, seed=1)
    for path, n in ((mix, 1000), (big, 1500)):
        examples = list(read_manifest(str(path), require_text=False))
        assert len(examples) == n
        assert all(e.audio is None and e.extras is None for e in examples)
    examples = list(read_manifest(str(mix), require_text=False))
    langs = sample.config.languages
    for ex, d, t, s, g, k in zip(
        examples,
        sample.duration,
        sample.num_tokens,
        sample.source_lang,
        sample.target_lang,
        sample.task,
        strict=True,
    ):
        assert (ex.duration, ex.num_tokens) == (d, t)
        assert (ex.source_lang, ex.target_lang, ex.task) == (langs[s], langs[g], ("asr", "ast")[k])
