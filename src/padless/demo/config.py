"""The demo's own settings. The training recipe is not here: it is read from the training config
(``configs/demo-tiny.yaml``), so changing the recipe needs no code change. Kept free of torch
imports so the command line's help stays fast."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from padless.data.corpus.config import CorpusConfig

_CORPUS = CorpusConfig()

# The demo folder's layout (besides the corpus's own files).
STEPS_DIR = "steps"  # each step's settings and results, for keeping it on the next run
PLOTS_DIR = "plots"
RUN_DIR = "run"  # the training run
EVAL_DIR = "eval"  # scores.json, hypotheses.jsonl
PLAN_FILE = "plan.json"
TABLE_FILE = "batch_sizes.json"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


@dataclass(frozen=True)
class QuickSettings:
    """What ``--quick`` replaces: a tiny corpus and a short run, to check that every stage works
    (the test suite runs it), not to learn anything."""

    hours: float = 0.2  # ~110 utterances, ~6 of them in the test split
    train_steps: int = 4
    #: 5 x 2 buckets for ~100 training utterances: the batch-size search simulates each one,
    #: and with the recipe's 20 x 2 it was three quarters of the quick run (45 of 58 s).
    duration_bins: int = 5
    #: Test examples evaluated (the first ones of test.jsonl).
    eval_examples: int = 12
    rtfx_examples: int = 6


@dataclass(frozen=True)
class DemoConfig:
    """Everything `padless demo` takes besides the recipe."""

    #: The demo folder: corpus, tokenizer, plan, batch sizes, run, evaluation, report.
    out: Path = Path("data/demo")
    #: The training recipe; its data paths, plan and batch table are pointed into ``out``.
    training_config: Path = Path("configs/demo-tiny.yaml")
    #: The paper's baseline, random fixed-size batches: only its sampler and batch policy are
    #: used, run over the same training metadata for the padding comparison (no training).
    #: None: ``fixed-batch.yaml`` beside ``training_config``.
    baseline_config: Path | None = None
    #: Hours of audio in the synthesized corpus: what the recipe in configs/demo-tiny.yaml was
    #: tuned on (bench/results/2026-12-06-demo-recipe.md); its test split then holds ~120
    #: utterances, enough for every language and direction to be scored.
    hours: float = 4.0
    #: Seed of the corpus and tokenizer (the training seed is the recipe's ``train.seed``).
    seed: int = _CORPUS.seed
    #: Synthesis processes (None: every usable CPU).
    workers: int | None = None
    #: Tokenizer pieces per language. The 0.6 h demo corpus holds 6-9k characters and 150-220
    #: distinct words per language: SentencePiece refuses more than ~800 pieces, and 256 or
    #: more pieces outnumber the distinct words. 128 gives a 524-id vocabulary and a median of
    #: 9 tokens/s, prompt and EOS included (bench/demo_vocab.py has the measurements).
    vocab_per_lang: int = 128
    #: Memory budget of the simulated batch-size search (fp32 steps of the recipe's model on
    #: this CPU). 2 GiB fits a laptop beside the browser; the table is used for training when
    #: the recipe says ``batch: table``, and reported in any case.
    memory_budget: str = "2GiB"
    #: Test examples evaluated (None: all of test.jsonl).
    eval_examples: int | None = None
    #: Beam width of the test-split evaluation (1: greedy). Beam 4 is the usual AED
    #: evaluation; on the demo model it also cuts greedy's loops on repeated digits (test WER
    #: 63.5% greedy against 43.2% with beam 4, BLEU 47.0 against 48.3, same checkpoint;
    #: bench/results/2026-12-06-demo-recipe.md). RTFx is measured greedy either way.
    eval_beam_size: int = 4
    #: Joint CTC/attention decoding of the ASR test rows (`EvalConfig.ctc_weight`): the demo
    #: model has a byte CTC head (its recipe's auxiliary loss), which accounts for every frame
    #: where the decoder alone loops or drops words. 0.3 was the best weight on the dev split
    #: (dev WER 41.3% -> 9.5%; test 43.2% -> 8.9%, at twice the evaluation time).
    eval_ctc_weight: float = 0.3
    #: Hypotheses shown next to their references, per language / direction.
    examples_shown: int = 1
    #: Test utterances timed for RTFx (the first ones of test.jsonl).
    rtfx_examples: int = 64
    #: Utterances per RTFx batch.
    rtfx_batch_size: int = 16
    #: Training steps (None: the recipe's ``train.max_steps``).
    train_steps: int | None = None
    #: Duration bins of the 2D plan (None: the recipe's ``data.estimate.num_buckets``).
    duration_bins: int | None = None
    #: The acceptance bar the report draws and checks the scores against (issue 12): mean WER
    #: over the ASR languages at most this (percent), mean BLEU over the AST directions at least.
    target_wer: float = 20.0
    target_bleu: float = 30.0
    quick: QuickSettings = field(default_factory=QuickSettings)

    def __post_init__(self) -> None:
        if not self.hours > 0:
            raise ValueError(f"hours must be positive, got {self.hours}")
        if self.vocab_per_lang < 2:
            raise ValueError(f"vocab_per_lang must be >= 2, got {self.vocab_per_lang}")

    @property
    def baseline(self) -> Path:
        if self.baseline_config is not None:
            return self.baseline_config
        return self.training_config.parent / "fixed-batch.yaml"

    def quick_variant(self) -> DemoConfig:
        """This config with the ``--quick`` replacements."""
        q = self.quick
        return dataclasses.replace(
            self,
            hours=q.hours,
            train_steps=q.train_steps,
            duration_bins=q.duration_bins,
            eval_examples=q.eval_examples,
            rtfx_examples=q.rtfx_examples,
        )
