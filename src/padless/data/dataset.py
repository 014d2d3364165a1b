"""The map-style speech dataset and its batch type.

The sampler decides *which* examples form a batch (from metadata alone); this dataset turns one
such list into tensors inside a DataLoader worker: it reads the audio, builds the decoder
sequences (prompt + text + EOS) and pads both into a `SpeechBatch`::

    loader = DataLoader(
        SpeechDataset(tokenizer),
        batch_size=None,           # the sampler yields whole batches (lists of Examples)
        sampler=bucketing_sampler,
        num_workers=4,
        pin_memory=True,           # calls SpeechBatch.pin_memory()
    )
    for batch in loader:
        batch = batch.to("cuda", non_blocking=True)
        inputs, targets = batch.tokens[:, :-1], batch.tokens[:, 1:]

Cost per batch: one audio read per example (the dominant cost), one SentencePiece call per
target language, and one copy of each waveform into the padded ``(B, T)`` buffer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from padless.data.ctc import CTC_UNITS, CtcUnits, byte_targets
from padless.data.errors import AudioError
from padless.data.example import Example
from padless.data.prompt import example_langs
from padless.data.tokenizer import CanaryTokenizer

AudioLoader = Callable[[Example], np.ndarray]


class WorkerAudioError(AudioError):
    """An `AudioError` raised inside a DataLoader worker process.

    torch re-raises a worker's exception in the main process as ``type(err)(text)``, ``text``
    being the worker's formatted traceback; `AudioError`'s three-argument constructor cannot take
    that, so torch would raise a plain ``RuntimeError`` instead. This subclass also accepts the
    single text, so ``except AudioError`` works with ``num_workers > 0``; the rebuilt error's
    message is the worker's traceback and its ``example_id``, ``source`` and ``reason`` are parsed
    back from the original message in it.
    """

    _ORIGINAL = re.compile(r"WorkerAudioError: example (['\"])(.*?)\1 \((.*?)\): (.*)")

    def __init__(self, example_id: str, source: str | None = None, reason: str | None = None):
        if source is not None and reason is not None:
            super().__init__(example_id, source, reason)
            return
        text = example_id  # rebuilt from a worker's traceback
        found = self._ORIGINAL.findall(text)
        _, self.example_id, self.source, reason = found[-1] if found else ("", "", "", text)
        Exception.__init__(self, text)
        self.reason = reason


@dataclass(frozen=True, eq=False)  # a generated == would compare tensors element-wise and fail
class SpeechBatch:
    """A padded batch. Decoder input is ``tokens[:, :-1]``, targets ``tokens[:, 1:]``; positions at
    or beyond ``token_lens`` hold ``pad_id``, audio beyond ``audio_lens`` is zero."""

    audio: torch.Tensor  # (B, T) float32 at 16 kHz, zero-padded
    audio_lens: torch.Tensor  # (B,) int64, samples
    tokens: torch.Tensor  # (B, U) int64: prompt + text + EOS, right-padded with pad_id
    token_lens: torch.Tensor  # (B,) int64
    prompt_lens: torch.Tensor  # (B,) int64
    ids: tuple[str, ...]  # example ids, in row order
    #: CTC targets, only when asked for (`SpeechDatasetConfig.ctc_targets`): the text ids of
    #: what is said (the transcript for ASR, the source transcript for AST) in the source
    #: language, no prompt, no EOS, right-padded with pad_id; and their lengths.
    ctc_tokens: torch.Tensor | None = None  # (B, S) int64
    ctc_lens: torch.Tensor | None = None  # (B,) int64

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> SpeechBatch:
        """The batch with every tensor on ``device``."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> SpeechBatch:
        """The batch in page-locked host memory (DataLoader ``pin_memory=True`` calls this)."""
        return self._map(lambda t: t.pin_memory())

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> SpeechBatch:
        return SpeechBatch(
            audio=fn(self.audio),
            audio_lens=fn(self.audio_lens),
            tokens=fn(self.tokens),
            token_lens=fn(self.token_lens),
            prompt_lens=fn(self.prompt_lens),
            ids=self.ids,
            ctc_tokens=None if self.ctc_tokens is None else fn(self.ctc_tokens),
            ctc_lens=None if self.ctc_lens is None else fn(self.ctc_lens),
        )


def collate(
    audio: Sequence[np.ndarray],
    sequences: Sequence[Sequence[int]],
    prompt_lens: Sequence[int],
    ids: Sequence[str],
    pad_id: int,
    ctc_sequences: Sequence[Sequence[int]] | None = None,
) -> SpeechBatch:
    """Pad waveforms (each 1-D float32) and token sequences into a `SpeechBatch`; with
    ``ctc_sequences`` (one per id) also the CTC targets.

    Public so callers that make their own batches (the batch-size search builds synthetic ones)
    get the same layout as the dataset.
    """
    batch = len(ids)
    if not len(audio) == len(sequences) == len(prompt_lens) == batch:
        raise ValueError(
            f"collate needs one waveform, sequence and prompt length per id: got {len(audio)}, "
            f"{len(sequences)}, {len(prompt_lens)} for {batch} ids"
        )
    audio_lens = np.fromiter((len(a) for a in audio), dtype=np.int64, count=batch)
    token_lens = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=batch)
    # Buffers are built in numpy and wrapped without a copy; zeros() is a calloc, so only the
    # waveform bytes are written.
    padded = np.zeros((batch, int(audio_lens.max(initial=0))), dtype=np.float32)  # (B, T)
    tokens = np.full((batch, int(token_lens.max(initial=0))), pad_id, dtype=np.int64)  # (B, U)
    for i in range(batch):
        padded[i, : audio_lens[i]] = audio[i]
        tokens[i, : token_lens[i]] = sequences[i]
    ctc_tokens = ctc_lens = None
    if ctc_sequences is not None:
        if len(ctc_sequences) != batch:
            raise ValueError(f"collate: {len(ctc_sequences)} CTC sequences for {batch} ids")
        lens = np.fromiter((len(s) for s in ctc_sequences), dtype=np.int64, count=batch)
        padded_ctc = np.full((batch, int(lens.max(initial=0))), pad_id, dtype=np.int64)
        for i in range(batch):
            padded_ctc[i, : lens[i]] = ctc_sequences[i]
        ctc_tokens, ctc_lens = torch.from_numpy(padded_ctc), torch.from_numpy(lens)
    return SpeechBatch(
        audio=torch.from_numpy(padded),
        audio_lens=torch.from_numpy(audio_lens),
        tokens=torch.from_numpy(tokens),
        token_lens=torch.from_numpy(token_lens),
        prompt_lens=torch.tensor(list(prompt_lens), dtype=torch.int64),
        ids=tuple(ids),
        ctc_tokens=ctc_tokens,
        ctc_lens=ctc_lens,
    )


@dataclass(frozen=True)
class SpeechDatasetConfig:
    """How `SpeechDataset` builds batches."""

    #: Put text + EOS after the prompt. False for inference and evaluation, where an example's
    #: text is only the reference: ``tokens`` then holds the prompt alone.
    include_targets: bool = True
    #: Also build CTC targets (`SpeechBatch.ctc_tokens`): what is said, see `spoken_text`.
    #: Training asks for them when the model has a CTC head.
    ctc_targets: bool = False
    #: Units of the CTC targets (`padless.data.ctc`): the tokenizer's pieces or UTF-8 bytes.
    ctc_units: CtcUnits = "tokens"

    def __post_init__(self) -> None:
        if self.ctc_units not in CTC_UNITS:
            raise ValueError(f"ctc_units must be one of {CTC_UNITS}, got {self.ctc_units!r}")


def spoken_text(example: Example) -> tuple[str, str]:
    """``(text, language)`` of what is said in ``example``: the transcript for ASR, the
    ``source_text`` extra (the corpus manifests' source transcript) for AST. An AST example
    without one is a `ValueError` naming it: its CTC target cannot be guessed."""
    source, _ = example_langs(example)
    extras = example.extras or {}
    text = example.text if example.task == "asr" else extras.get("source_text")
    if not isinstance(text, str):
        what = "text" if example.task == "asr" else "a source_text"
        raise ValueError(
            f"example {example.id!r}: {example.task} example has no {what} for its CTC target"
        )
    return text, source


class SpeechDataset(torch.utils.data.Dataset[SpeechBatch]):
    """Map-style dataset indexed by a list of examples (one whole batch) -> `SpeechBatch`.

    An example without text gets the prompt alone; an empty text is a no-speech target
    (see `CanaryTokenizer.encode_examples`). Audio that cannot be read raises `AudioError`
    naming the example id and file (from ``load_audio``; in a worker process as the subclass
    `WorkerAudioError`, so it reaches the main process as an `AudioError`); bad task/language
    combinations raise `PromptError` naming the example, before any audio is read.
    """

    def __init__(
        self,
        tokenizer: CanaryTokenizer,
        config: SpeechDatasetConfig = SpeechDatasetConfig(),
        load_audio: AudioLoader | None = None,
    ) -> None:
        """``load_audio`` maps an example to float32 mono 16 kHz samples; the default is
        `padless.data.audio.load_audio`. It must be picklable (a module-level function) when
        the DataLoader uses worker processes."""
        if load_audio is None:
            from padless.data.audio import load_audio as default_loader

            load_audio = default_loader
        self.tokenizer = tokenizer
        self.config = config
        self.load_audio = load_audio

    def __getitem__(self, examples: list[Example]) -> SpeechBatch:
        if not examples:
            raise ValueError("SpeechDataset got an empty list of examples")
        # Tokenize first: it is cheap and a bad prompt should fail before any audio I/O.
        # One thread: each DataLoader worker is already one of several processes.
        encoded = self.tokenizer.encode_examples(
            examples, include_targets=self.config.include_targets, num_threads=1
        )
        ctc = self._ctc_targets(examples) if self.config.ctc_targets else None
        try:
            audio = [self._read(ex) for ex in examples]
        except AudioError as err:
            if torch.utils.data.get_worker_info() is None:
                raise
            raise WorkerAudioError(err.example_id, err.source, err.reason) from err
        return collate(
            audio,
            [ids for ids, _ in encoded],
            [prompt_len for _, prompt_len in encoded],
            [ex.id for ex in examples],
            self.tokenizer.pad_id,
            ctc,
        )

    def _ctc_targets(self, examples: list[Example]) -> list[list[int]]:
        out: list[list[int]] = []
        for ex in examples:
            text, lang = spoken_text(ex)
            if self.config.ctc_units == "bytes":
                out.append(byte_targets(text))
            else:
                out.append(self.tokenizer.encode(text, lang))
        return out

    def _read(self, example: Example) -> np.ndarray:
        samples = self.load_audio(example)
        if samples.ndim != 1 or samples.dtype != np.float32:
            raise ValueError(
                f"example {example.id!r}: audio loader returned {samples.dtype} array of shape "
                f"{samples.shape}; expected 1-D float32 (mono, 16 kHz)"
            )
        return samples
