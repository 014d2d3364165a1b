"""The demo's chain of steps, each cached: data -> plan -> batch sizes -> training -> evaluation
-> RTFx -> report.

A step decides whether its outputs can be kept from its *inputs* (the settings that determine
them) chained with those of every step before it: after a step runs, its inputs and its results
are stored in ``OUT/steps/<key>.json``; the next run keeps the step when that file holds the same
chained inputs and the step's output files exist. A changed recipe therefore redoes training and
everything after it, and a changed corpus everything. The corpus itself is also kept by its own
``corpus.json``, and an interrupted training run continues from its newest checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from padless.demo.config import (
    EVAL_DIR,
    PLAN_FILE,
    PLOTS_DIR,
    RUN_DIR,
    STEPS_DIR,
    TABLE_FILE,
    DemoConfig,
)

if TYPE_CHECKING:
    from rich.console import Console

    from padless.train.config import TrainingConfig

RUN_INPUTS = "demo-inputs.json"  # in the run folder: the settings it was started with

Data = dict[str, Any]


@dataclass
class DemoContext:
    """What the steps share: settings, the console, the recipe and what earlier steps produced."""

    config: DemoConfig
    console: Console
    #: The recipe with its data, tokenizer and plan pointed into the demo folder.
    recipe: TrainingConfig
    results: dict[str, Data] = field(default_factory=dict)  # step key -> its data
    upstream: str = ""  # digest of the inputs of every step so far
    _inputs: str = ""  # digest of the running step's chained inputs
    kept: bool = False  # whether the running step was kept from an earlier run

    @property
    def out(self) -> Path:
        return self.config.out

    def path(self, *parts: str) -> Path:
        return self.out.joinpath(*parts)

    def reuse(self, key: str, inputs: Data, outputs: list[Path]) -> Data | None:
        """The stored data of step ``key`` if an earlier run had the same chained inputs and its
        ``outputs`` are all there; else None (the step runs, then `finish` stores its data)."""
        blob = orjson.dumps(inputs, option=orjson.OPT_SORT_KEYS, default=str)
        # The folder's own location is not an input: a moved or copied folder keeps its steps.
        blob = blob.replace(str(self.out).encode(), b"OUT")
        self._inputs = hashlib.sha256(self.upstream.encode() + blob).hexdigest()
        stamp = self.path(STEPS_DIR, f"{key}.json")
        if not stamp.is_file() or not all(p.exists() for p in outputs):
            return None
        stored = orjson.loads(stamp.read_bytes())
        if stored.get("inputs") != self._inputs:
            return None
        self.kept = True
        data: Data = stored["data"]
        return data

    @property
    def inputs_digest(self) -> str:
        """The running step's chained inputs (after its `reuse` call)."""
        return self._inputs

    def finish(self, key: str, data: Data) -> None:
        """Store the step's data with its chained inputs; the next step chains onto them."""
        if self._inputs:
            stamp = self.path(STEPS_DIR, f"{key}.json")
            stamp.parent.mkdir(parents=True, exist_ok=True)
            payload = {"inputs": self._inputs, "data": data}
            stamp.write_bytes(orjson.dumps(payload, option=orjson.OPT_INDENT_2) + b"\n")
            self.upstream = self._inputs
        self.results[key] = data
        self._inputs = ""

    @contextlib.contextmanager
    def bar(self, label: str, total: float | None = None) -> Iterator[Callable[[float], None]]:
        """A transient progress bar; yields ``advance(n)``."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = (SpinnerColumn(), TextColumn(label), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, TimeElapsedColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task(label, total=total)

            def advance(n: float = 1) -> None:
                bar.advance(task, n)

            yield advance


@dataclass(frozen=True)
class Step:
    key: str  # file name of its stamp, key of its timing in report.json
    title: str
    run: Callable[[DemoContext], Data]  # returns its data, with a one-line "summary"


# ------------------------------------------------------------------------------------- data


def _corpus(ctx: DemoContext) -> Data:
    from padless.data.corpus.config import CorpusConfig
    from padless.data.corpus.writer import is_complete, synthesize_corpus

    config = CorpusConfig(hours=ctx.config.hours, seed=ctx.config.seed)
    inputs = {"hours": config.hours, "seed": config.seed}
    complete = is_complete(ctx.out, config)
    kept = ctx.reuse("corpus", inputs, [])
    if complete and kept is not None:
        return kept
    if complete:  # made by `padless corpus synth` or an older demo: counted, not remade
        ctx.kept = True
        by_split = _split_counts(ctx.out)
    else:
        summary = synthesize_corpus(config, ctx.out, workers=ctx.config.workers)
        by_split = {k: {"utterances": n, "seconds": s} for k, (n, s) in summary.by_split.items()}
    hours = sum(v["seconds"] for v in by_split.values()) / 3600
    counts = ", ".join(f"{k} {v['utterances']:,}" for k, v in by_split.items())
    return {"splits": by_split, "summary": f"{hours:.2f} h of audio ({counts} utterances)"}


def _split_counts(out: Path) -> dict[str, dict[str, float]]:
    from padless.data.corpus.writer import manifest_paths
    from padless.data.stream import read_manifest

    counts = {}
    for split, path in manifest_paths(out).items():
        examples = list(read_manifest([str(path)], require_text=False))
        counts[split] = {
            "utterances": len(examples),
            "seconds": float(sum(e.duration for e in examples)),
        }
    return counts


def _tokenizer(ctx: DemoContext) -> Data:
    from padless.data.tokenizer import TokenizerTrainConfig, train_tokenizer

    out = ctx.path("tokenizer")
    config = TokenizerTrainConfig(vocab_per_lang=ctx.config.vocab_per_lang, seed=ctx.config.seed)
    inputs = {"tokenizer": dataclasses.asdict(config)}
    if (kept := ctx.reuse("tokenizer", inputs, [out / "tokenizer.json"])) is not None:
        return kept
    with ctx.bar("training the tokenizer") as advance:
        result = train_tokenizer(
            [str(ctx.path("train.jsonl"))], out, config, on_line=lambda: advance(1)
        )
    tok = result.tokenizer
    return {
        "vocab_size": tok.vocab_size,
        "languages": list(tok.languages),
        "summary": f"{ctx.config.vocab_per_lang} pieces x {len(tok.languages)} languages, "
        f"vocabulary {tok.vocab_size} -> tokenizer/",
    }


# ------------------------------------------------------------------------ plan and batch sizes


def _plan(ctx: DemoContext) -> Data:
    from padless.data.stream import ExampleStream
    from padless.data.tokenizer import CanaryTokenizer
    from padless.sampling.estimate import plan_from_examples
    from padless.sampling.lengths import ExampleLengths
    from padless.sampling.plot import plot_plan

    data_cfg = ctx.recipe.data
    inputs = {
        "estimate": dataclasses.asdict(data_cfg.estimate),
        "filters": data_cfg.filters.to_json(),
        "seed": ctx.recipe.train.seed,
    }
    target, plot = ctx.path(PLAN_FILE), ctx.path(PLOTS_DIR, "plan.png")
    if (kept := ctx.reuse("plan", inputs, [target, plot])) is not None:
        return kept
    lengths = ExampleLengths(CanaryTokenizer.load(ctx.path("tokenizer")))
    stream = ExampleStream([str(ctx.path("train.jsonl"))], shuffle=False, require_text=False)
    with ctx.bar("reading lengths") as advance:
        plan, durations, tokens = plan_from_examples(
            stream.open(0),
            data_cfg.estimate,
            data_cfg.filters,
            lengths=lengths,
            sample_size=data_cfg.estimate_sample_size,
            seed=ctx.recipe.train.seed,
            on_chunk=advance,
        )
    plan.save(target)
    plot.parent.mkdir(parents=True, exist_ok=True)
    plot_plan(plan, durations, tokens, plot)
    bound = plan.expected_padding
    return {
        "buckets": len(plan),
        "grid": [plan.num_duration_bins, plan.num_subbuckets],
        "bins": plan.bins,
        "examples_kept": len(durations),
        "filters": data_cfg.filters.to_json(),
        "bound_audio_padding": bound.get("audio"),
        "bound_token_padding": bound.get("token"),
        "summary": f"{len(plan)} buckets ({plan.num_duration_bins} x {plan.num_subbuckets}, "
        f"{plan.bins}) on {len(durations):,} examples -> {PLAN_FILE}",
    }


def _batch_sizes(ctx: DemoContext) -> Data:
    from padless.batchsize.config import OomptimizeConfig, SimulateConfig, StepConfig
    from padless.batchsize.run import search_plan
    from padless.batchsize.simulate import SimulateProbe
    from padless.batchsize.sizes import parse_size
    from padless.batchsize.workload import AEDWorkload
    from padless.data.tokenizer import CanaryTokenizer
    from padless.train.loop import model_config

    vocab = CanaryTokenizer.load(ctx.path("tokenizer")).vocab_size
    config = OomptimizeConfig(
        model=ctx.recipe.model.init,
        probe="simulate",
        budget_bytes=parse_size(ctx.config.memory_budget),
        # This machine trains in fp32 on its CPU: the CPU's kernels, exact tensor sizes.
        step=StepConfig(precision="fp32"),
        simulate=SimulateConfig(target="cpu"),
    )
    inputs = {
        "oomptimize": dataclasses.asdict(config),
        "overrides": ctx.recipe.model.overrides,
        "vocab": vocab,
    }
    target = ctx.path(TABLE_FILE)
    if (kept := ctx.reuse("batch_sizes", inputs, [target])) is not None:
        return kept
    workload = AEDWorkload.from_config(
        model_config(ctx.recipe.model).with_vocab_size(vocab), name=config.model
    )
    plan = ctx.path(PLAN_FILE)
    buckets = ctx.results["plan"]["buckets"]
    with ctx.bar("simulating training steps", total=buckets) as advance:
        assert config.budget_bytes is not None
        with SimulateProbe(workload, config.step, config.budget_bytes, config.simulate) as probe:
            outcome = search_plan(plan, probe, config, on_bucket=lambda _: advance(1))
    target.write_bytes(orjson.dumps(outcome.document, option=orjson.OPT_INDENT_2) + b"\n")
    sizes = [b.batch_size for b in outcome.result.buckets]
    return {
        "memory_budget": ctx.config.memory_budget,
        "batch_sizes": sizes,
        "used_for_training": _uses_table(ctx.recipe),
        "summary": f"batch sizes {min(sizes)}-{max(sizes)} per bucket for "
        f"{ctx.config.memory_budget} (fp32, {config.model}) -> {TABLE_FILE}",
    }


def _uses_table(recipe: TrainingConfig) -> bool:
    from padless.train.config import TableBatches

    return isinstance(recipe.batch, TableBatches)


def training_config(ctx: DemoContext) -> TrainingConfig:
    """The recipe as the demo trains it: its batch table (if it asks for one) and step count."""
    from padless.train.config import TableBatches

    cfg = ctx.recipe
    if isinstance(cfg.batch, TableBatches):
        cfg = dataclasses.replace(cfg, batch=TableBatches(str(ctx.path(TABLE_FILE))))
    if ctx.config.train_steps is not None:
        cfg = dataclasses.replace(
            cfg, train=dataclasses.replace(cfg.train, max_steps=ctx.config.train_steps)
        )
    return cfg


def _padding(ctx: DemoContext) -> Data:
    from padless.data.tokenizer import CanaryTokenizer
    from padless.demo.padding import baseline_plan, measure
    from padless.sampling.lengths import ExampleLengths
    from padless.sampling.plan import BucketPlan

    ours = training_config(ctx)
    base = load_recipe(ctx.config.baseline, ctx.out)
    inputs = {"ours": _config_json(ours), "baseline": _config_json(base)}
    if (kept := ctx.reuse("padding", inputs, [])) is not None:
        return kept
    lengths = ExampleLengths(CanaryTokenizer.load(ctx.path("tokenizer")))
    with ctx.bar("optimized: sampling one epoch") as advance:
        optimized = measure(
            "optimized", ours, BucketPlan.load(ctx.path(PLAN_FILE)), lengths, advance
        )
    with ctx.bar("baseline: sampling one epoch") as advance:
        baseline = measure("baseline", base, baseline_plan(base, lengths), lengths, advance)
    return {
        "optimized": optimized.to_json(),
        "baseline": baseline.to_json(),
        "summary": f"padding audio {optimized.audio_padding:.1%} / tokens "
        f"{optimized.token_padding:.1%} (baseline {baseline.audio_padding:.1%} / "
        f"{baseline.token_padding:.1%}); mean batch {optimized.mean_batch_size:.1f} "
        f"examples (baseline {baseline.mean_batch_size:.1f})",
    }


def _config_json(config: TrainingConfig) -> Data:
    return orjson.loads(orjson.dumps(dataclasses.asdict(config), default=str))


# ------------------------------------------------------------------------------- training


def _train(ctx: DemoContext) -> Data:
    from padless.eval.plot_run import read_run, summarize
    from padless.train.loop import train
    from padless.train.state import step_path

    cfg = training_config(ctx)
    run_dir = ctx.path(RUN_DIR)
    final = step_path(run_dir, cfg.train.max_steps)
    inputs = {"training": _config_json(cfg)}
    if (kept := ctx.reuse("train", inputs, [final])) is not None:
        return kept
    # A run folder of other settings is started afresh; one of the same settings that was
    # interrupted continues from its newest checkpoint (the recipe's resume: auto).
    marker = run_dir / RUN_INPUTS
    wanted = ctx.inputs_digest.encode()  # chained: the same paths with another corpus differ
    if run_dir.exists() and (not marker.is_file() or marker.read_bytes() != wanted):
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(wanted)
    started = time.perf_counter()
    progress = train(cfg, run_dir)
    wall = time.perf_counter() - started
    summary = summarize(read_run(run_dir))
    return {
        "steps": progress.step,
        "max_steps": cfg.train.max_steps,
        "wall_s": wall,
        "checkpoint": str(final.relative_to(ctx.out)),
        "loss_first": summary["loss_first"],
        "loss_last": summary["loss_last"],
        "audio_h": summary["audio_h"],
        "audio_s_per_s": summary["audio_s_per_s"],
        "audio_padding": summary["audio_padding"],
        "token_padding": summary["token_padding"],
        "summary": f"{progress.step} steps in {wall:.0f} s, loss {summary['loss_first']:.2f} -> "
        f"{summary['loss_last']:.2f}, {summary['audio_s_per_s']:.0f} audio-s per s -> "
        f"{final.relative_to(ctx.out)}",
    }


# ---------------------------------------------------------------------------- evaluation


def _test_examples(ctx: DemoContext, limit: int | None) -> list[Any]:
    from padless.data.stream import read_manifest

    examples = list(read_manifest([str(ctx.path("test.jsonl"))], require_text=True))
    return examples[:limit] if limit is not None else examples


def _evaluate(ctx: DemoContext) -> Data:
    from padless.data.tokenizer import CanaryTokenizer
    from padless.eval.config import EvalConfig
    from padless.eval.evaluate import evaluate_examples
    from padless.model.checkpoint import load_checkpoint

    decoding = EvalConfig(
        beam_size=ctx.config.eval_beam_size, ctc_weight=ctx.config.eval_ctc_weight
    )
    inputs = {"examples": ctx.config.eval_examples, "decoding": dataclasses.asdict(decoding)}
    out = ctx.path(EVAL_DIR)
    if (kept := ctx.reuse("evaluate", inputs, [out / "scores.json"])) is not None:
        return kept
    model = load_checkpoint(ctx.path(ctx.results["train"]["checkpoint"])).model
    tokenizer = CanaryTokenizer.load(ctx.path("tokenizer"))
    examples = _test_examples(ctx, ctx.config.eval_examples)
    with ctx.bar("decoding the test split", total=len(examples)) as advance:
        result = evaluate_examples(
            model,
            tokenizer,
            examples,
            config=decoding,
            out_dir=out,
            on_batch=advance,
        )
    shown: dict[str, int] = {}
    samples = []
    for hyp in result.hypotheses:  # the first few of each language / direction, in file order
        if shown.get(hyp.group, 0) < ctx.config.examples_shown:
            shown[hyp.group] = shown.get(hyp.group, 0) + 1
            samples.append(
                {
                    "group": hyp.group,
                    "task": hyp.task,
                    "reference": hyp.reference,
                    "hypothesis": hyp.hypothesis,
                }
            )
    wer = "-" if result.wer_avg is None else f"{result.wer_avg:.1f}%"
    bleu = "-" if result.bleu_avg is None else f"{result.bleu_avg:.1f}"
    return {
        "wer": result.wer,
        "bleu": result.bleu,
        "wer_avg": result.wer_avg,
        "bleu_avg": result.bleu_avg,
        "utterances": result.utterances,
        "samples": sorted(samples, key=lambda s: (s["task"], s["group"])),
        "beam_size": decoding.beam_size,
        "ctc_weight": decoding.ctc_weight,
        "summary": f"{result.utterances} test utterances, {decoding.describe()}: "
        f"WER {wer} (mean of {len(result.wer)} languages), BLEU {bleu} (mean of "
        f"{len(result.bleu)} directions)",
    }


def _rtfx(ctx: DemoContext) -> Data:
    from padless.data.tokenizer import CanaryTokenizer
    from padless.infer.options import CACHE_MODES, RtfxConfig
    from padless.infer.rtfx import run_rtfx
    from padless.model.checkpoint import load_checkpoint

    config = RtfxConfig(batch_size=ctx.config.rtfx_batch_size, dtype="fp32", device="cpu")
    inputs = {"examples": ctx.config.rtfx_examples, "rtfx": dataclasses.asdict(config)}
    if (kept := ctx.reuse("rtfx", inputs, [])) is not None:
        return kept
    model = load_checkpoint(ctx.path(ctx.results["train"]["checkpoint"])).model.eval()
    tokenizer = CanaryTokenizer.load(ctx.path("tokenizer"))
    examples = _test_examples(ctx, ctx.config.rtfx_examples)
    with ctx.bar("timing decoding", total=len(CACHE_MODES) * config.repeats) as advance:
        results = run_rtfx(
            {"demo": model},
            examples,
            CACHE_MODES,
            config,
            tokenizer,
            on_result=lambda *_: advance(1),
        )
    by_mode = {r.decoding: r for r in results}
    kv, ref = by_mode["kv"], by_mode["recompute"]
    return {
        "rtfx_kv": kv.rtfx,
        "rtfx_recompute": ref.rtfx,
        "rtfx_cpu_kv": kv.rtfx_cpu,
        "rtfx_cpu_recompute": ref.rtfx_cpu,
        "utterances": kv.utterances,
        "audio_s": kv.audio_s,
        "output_tokens": {mode: r.output_tokens for mode, r in by_mode.items()},
        "summary": f"RTFx {kv.rtfx:.0f} with the KV cache, {ref.rtfx:.0f} recomputing "
        f"(x{kv.rtfx / ref.rtfx:.2f}) on {kv.utterances} utterances, {kv.audio_s:.0f} s of audio",
    }


# ------------------------------------------------------------------------------- the chain


#: The demo, in order.
STEPS: tuple[Step, ...] = (
    Step("corpus", "synthesize the corpus", _corpus),
    Step("tokenizer", "train the tokenizer", _tokenizer),
    Step("plan", "estimate a 2D bucket plan with the TPS filter", _plan),
    Step("batch_sizes", "search batch sizes (simulated steps)", _batch_sizes),
    Step("padding", "padding: optimized vs random fixed-size batches", _padding),
    Step("train", "train the demo model", _train),
    Step("evaluate", "evaluate on the test split", _evaluate),
    Step("rtfx", "RTFx: KV cache vs recompute", _rtfx),
)


def load_recipe(path: Path, out: Path) -> TrainingConfig:
    """A training config with its data, tokenizer and plan pointed into the demo folder ``out``
    (the plan the demo estimates, for the recipe; the baseline estimates its own)."""
    from padless.train.config import load_training_config

    overrides = [
        f"data.train={out / 'train.jsonl'}",
        f"data.dev={out / 'dev.jsonl'}",
        f"data.tokenizer={out / 'tokenizer'}",
    ]
    return load_training_config(path, overrides)


@dataclass
class StepTiming:
    key: str
    seconds: float
    kept: bool


def run_demo(config: DemoConfig, console: Console) -> DemoContext:
    """Run every step in order (see the module docstring), then write the report; returns the
    context with each step's data in ``results`` and timings in ``results["timings"]``."""
    from rich.rule import Rule

    from padless.demo.report import draw_plots, write_report

    recipe = load_recipe(config.training_config, config.out)
    estimate = recipe.data.estimate
    if config.duration_bins is not None:
        estimate = dataclasses.replace(estimate, num_buckets=config.duration_bins)
    recipe = dataclasses.replace(
        recipe,
        data=dataclasses.replace(recipe.data, plan=str(config.out / PLAN_FILE), estimate=estimate),
    )
    load_recipe(config.baseline, config.out)  # a broken baseline fails now, not later
    ctx = DemoContext(config, console, recipe)
    config.out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, Data] = {}
    ctx.results["timings"] = timings
    started = time.perf_counter()
    total = len(STEPS) + 1
    for number, step in enumerate(STEPS, start=1):
        console.print(Rule(f"[{number}/{total}] {step.title}"))
        ctx.kept = False
        t0 = time.perf_counter()
        data = step.run(ctx)
        seconds = time.perf_counter() - t0
        timings[step.key] = {"seconds": round(seconds, 2), "kept": ctx.kept}
        ctx.finish(step.key, data)
        note = " (kept from an earlier run)" if ctx.kept else ""
        console.print(f"{data['summary']}{note}  [dim]{_took(seconds)}[/dim]")
    console.print(Rule(f"[{total}/{total}] report"))
    t0 = time.perf_counter()
    plots = draw_plots(config, ctx.results)
    timings["report"] = {"seconds": round(time.perf_counter() - t0, 2), "kept": False}
    timings["total"] = {"seconds": round(time.perf_counter() - started, 2), "kept": False}
    md, js = write_report(config, ctx.results)
    console.print(f"{len(plots)} plots in {config.out / PLOTS_DIR}, {md}, {js}")
    return ctx


def _took(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds >= 0.1 else f"{seconds * 1000:.0f} ms"
