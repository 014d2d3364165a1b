"""The aggregate Canary-style tokenizer: one SentencePiece BPE model per language in one id space.

Id layout (fixed; the model, the prompts and the sampler rely on it)::

    0 <pad>  1 <|endoftext|>  2 <|startoftranscript|>  3 <|transcribe|>  4 <|translate|>
    5 <|pnc|>  6 <|nopnc|>  7 <|nospeech|>
    8 ..         one <|xx|> token per language, languages sorted
    8 + L ..     each language's SentencePiece pieces, languages sorted; ``offsets[lang]`` is the
               first id of that language's block

so with L languages of V pieces each the vocabulary has ``8 + L + L * V`` ids (4108 for 4 x 1024).

A tokenizer converted from another toolkit (NeMo's Canary aggregate tokenizer, see
`padless.interop`) keeps that toolkit's ids instead: an explicit list of special tokens (any
order, any number, the language tokens and the prompt format's tokens among them), the
languages' blocks in a given order after it, and optionally unused ids at the end (NeMo pads
its output layer to a multiple of 8). Those ids decode to nothing, like special tokens.

The per-language models have no BOS/EOS/PAD pieces of their own (those are the shared specials
above) and keep SentencePiece's ``<unk>`` as their piece 0, so a character a language never saw in
training encodes to that language's ``<unk>`` id and decodes to SentencePiece's `` ⁇ ``. Training
uses ``character_coverage=1.0`` by default, so every character of the training text has a piece;
``byte_fallback=True`` makes any text round-trip at the cost of 256 byte pieces per language.
Text is normalised by SentencePiece's default ``nmt_nfkc`` rule (NFKC plus whitespace clean-up),
so decode(encode(text)) returns the normalised text.

The text of an example is in its *target* language (the transcript for ASR, the translation for
AST), and that language's model tokenizes it, both in training and at encode time.

Disk format: ``DIR/tokenizer.json`` (layout, languages, offsets, sizes, provenance) and
``DIR/<lang>.model`` for each language.
"""

from __future__ import annotations

import io
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson
import sentencepiece as spm

from padless.data.errors import NoExamplesError, OnError, PadlessInputError, SkipCounter
from padless.data.example import Example, Task
from padless.data.prompt import (
    EOS,
    NOSPEECH,
    PAD,
    SOT,
    SPECIAL_TOKENS,
    PromptError,
    PromptFormat,
    check_lang_code,
    example_langs,
    get_prompt_format,
    lang_token,
)

TOKENIZER_JSON = "tokenizer.json"
_FORMAT = "padless-canary-tokenizer"
_FORMAT_VERSION = 1
# Examples per SentencePiece call when counting (see num_tokens_batch).
_COUNT_CHUNK = 4096


@dataclass(frozen=True)
class TokenizerTrainConfig:
    """How `train_tokenizer` builds the per-language models."""

    #: Pieces per language model (its block size in the shared id space), ``<unk>`` included.
    vocab_per_lang: int = 1024
    #: Languages to build; ``None`` builds every target language found in the manifests.
    #: Examples in other languages are skipped and counted.
    languages: tuple[str, ...] | None = None
    #: Cap on training sentences per language: larger sets are reservoir-sampled down to it, so
    #: memory and training time stay bounded on manifests of millions of lines.
    max_sentences_per_lang: int = 1_000_000
    #: Seed of the sentence sample; the same manifests and seed give byte-identical models.
    seed: int = 0
    #: Fraction of characters SentencePiece must cover; 1.0 keeps every seen character.
    character_coverage: float = 1.0
    #: Add 256 byte pieces per language so unseen characters round-trip instead of becoming <unk>.
    byte_fallback: bool = False
    #: Prompt format the tokenizer serves (a key of ``padless.data.prompt.PROMPT_FORMATS``).
    prompt_format: str = "canary"
    #: Threads SentencePiece trains with.
    num_threads: int = 2
    #: Malformed manifest lines: ``"raise"`` an error naming file:line, or ``"skip"`` and count.
    on_error: OnError = "raise"

    def __post_init__(self) -> None:
        if self.vocab_per_lang < 2:
            raise ValueError(f"vocab_per_lang must be >= 2, got {self.vocab_per_lang}")
        if self.max_sentences_per_lang < 1:
            raise ValueError(
                f"max_sentences_per_lang must be >= 1, got {self.max_sentences_per_lang}"
            )
        if not 0.0 < self.character_coverage <= 1.0:
            raise ValueError(f"character_coverage must be in (0, 1], got {self.character_coverage}")
        if self.languages is not None:
            if not self.languages:
                raise ValueError("languages must not be empty (use None for all)")
            for lang in self.languages:
                check_lang_code(lang)
        get_prompt_format(self.prompt_format)  # validates the name


class CanaryTokenizer:
    """Aggregate tokenizer: shared special tokens, one language token and one SentencePiece
    block per language. Build with `train_tokenizer` or `CanaryTokenizer.load(dir)`.

    Pickles (for DataLoader workers) by its serialized models, a few hundred kB per language.
    """

    def __init__(
        self,
        models: Mapping[str, bytes],
        prompt_format: str = "canary",
        training: Mapping[str, Any] | None = None,
        *,
        specials: Sequence[str] | None = None,
        block_order: Sequence[str] | None = None,
        reserved: int = 0,
    ) -> None:
        """``models`` maps language code -> serialized SentencePiece model (a ``.model`` file).

        The id layout is the fixed one of the module docstring unless given: ``specials`` the
        token of each id before the first block, ``block_order`` the languages' blocks in id
        order, ``reserved`` unused ids after the last block.
        """
        if not models:
            raise ValueError("a tokenizer needs at least one language model")
        self._languages = tuple(sorted(check_lang_code(lang) for lang in models))
        self._protos = {lang: bytes(models[lang]) for lang in self._languages}
        self._prompt_format_name = prompt_format
        self._prompt_format: PromptFormat = get_prompt_format(prompt_format)
        self._training = dict(training or {})
        self._sp: dict[str, spm.SentencePieceProcessor] = {}
        for lang in self._languages:
            sp = spm.SentencePieceProcessor(model_proto=self._protos[lang])
            if sp.bos_id() >= 0 or sp.eos_id() >= 0 or sp.pad_id() >= 0:
                raise ValueError(
                    f"the {lang} SentencePiece model defines its own bos/eos/pad pieces; padless "
                    "models use the shared specials instead (train with bos_id=eos_id=pad_id=-1)"
                )
            self._sp[lang] = sp

        self._explicit_specials = specials is not None
        if specials is None:
            tokens = list(SPECIAL_TOKENS) + [lang_token(lang) for lang in self._languages]
        else:
            tokens = list(specials)
            needed = [PAD, EOS, SOT, NOSPEECH] + [lang_token(lang) for lang in self._languages]
            missing = [t for t in needed if t not in tokens]
            if missing or len(set(tokens)) != len(tokens):
                raise ValueError(
                    f"special tokens must be unique and include {missing or needed}"
                    if missing
                    else "special tokens must be unique"
                )
        self._blocks = tuple(block_order) if block_order is not None else self._languages
        if sorted(self._blocks) != list(self._languages):
            raise ValueError(
                f"block_order {list(self._blocks)} is not an order of the languages "
                f"{list(self._languages)}"
            )
        if reserved < 0:
            raise ValueError(f"reserved must be >= 0, got {reserved}")
        self._special_ids = MappingProxyType({tok: i for i, tok in enumerate(tokens)})
        self._special_tokens = tuple(tokens)
        self._num_special = len(tokens)
        offsets: dict[str, int] = {}
        sizes: dict[str, int] = {}
        start = self._num_special
        for lang in self._blocks:
            offsets[lang] = start
            sizes[lang] = self._sp[lang].get_piece_size()
            start += sizes[lang]
        self._offsets = MappingProxyType(offsets)
        self._sizes = MappingProxyType(sizes)
        self._pieces_end = start  # ids from here on are reserved (unused)
        self._reserved = reserved
        self._vocab_size = start + reserved
        # Block starts in id order, for decode's language lookup.
        self._block_starts = [offsets[lang] for lang in self._blocks]
        # Prompts by (source, target, task, pnc): as asked, and as an example's raw fields give
        # them (None for a language an ASR example leaves out), so counting is a dict lookup.
        self._prompt_cache: dict[tuple[str, str, Task, bool], tuple[int, ...]] = {}
        self._example_prompt_cache: dict[
            tuple[str | None, str | None, Task, bool], tuple[int, ...]
        ] = {}
        missing = [t for t in self._prompt_format.tokens_used if t not in self._special_ids]
        if missing:
            raise ValueError(f"prompt format {prompt_format!r} needs tokens {missing}")

    # ----------------------------------------------------------------------------- layout

    @property
    def languages(self) -> tuple[str, ...]:
        """Language codes, sorted (the order of their tokens and blocks)."""
        return self._languages

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    @property
    def pad_id(self) -> int:
        return self._special_ids[PAD]

    @property
    def eos_id(self) -> int:
        return self._special_ids[EOS]

    @property
    def bos_id(self) -> int:
        """``<|startoftranscript|>``, the first decoder input of every prompt."""
        return self._special_ids[SOT]

    @property
    def nospeech_id(self) -> int:
        return self._special_ids[NOSPEECH]

    @property
    def special_ids(self) -> Mapping[str, int]:
        """Token string -> id for every special token, language tokens included (read-only)."""
        return self._special_ids

    @property
    def num_special(self) -> int:
        """Ids below this are special tokens; ids from here on are SentencePiece pieces."""
        return self._num_special

    @property
    def offsets(self) -> Mapping[str, int]:
        """Language -> first id of its SentencePiece block."""
        return self._offsets

    @property
    def lang_vocab_sizes(self) -> Mapping[str, int]:
        """Language -> number of pieces in its block."""
        return self._sizes

    @property
    def prompt_format(self) -> PromptFormat:
        return self._prompt_format

    def lang_id(self, lang: str) -> int:
        """Id of the ``<|lang|>`` token."""
        return self._special_ids[lang_token(self._check_lang(lang))]

    @property
    def block_order(self) -> tuple[str, ...]:
        """Languages in the id order of their blocks (sorted, unless the layout says so)."""
        return self._blocks

    @property
    def reserved(self) -> int:
        """Unused ids after the last block (they decode to nothing)."""
        return self._reserved

    def sentencepiece_model(self, lang: str) -> bytes:
        """The serialized SentencePiece model of a language's block (a ``.model`` file)."""
        return self._protos[self._check_lang(lang)]

    def id_to_piece(self, token_id: int) -> str:
        """The token string or SentencePiece piece of an id (for inspection)."""
        if 0 <= token_id < self._num_special:
            return self._special_tokens[token_id]
        if self._pieces_end <= token_id < self._vocab_size:
            return f"<reserved:{token_id}>"
        lang = self._lang_of(token_id)
        return self._sp[lang].id_to_piece(token_id - self._offsets[lang])

    def piece_bytes(self, token_id: int) -> bytes | None:
        """The UTF-8 bytes a piece adds to a decoded text, its word marker ``▁`` as a space (a
        byte-fallback piece: its byte); None for an id that is not text (special, reserved,
        ``<unk>`` and control pieces). ``<|nospeech|>`` adds nothing: ``b""``. Used to spell
        decoder tokens in the units of a byte CTC head (`padless.infer.ctc`)."""
        if token_id == self.nospeech_id:
            return b""
        if 0 <= token_id < self._num_special or self._pieces_end <= token_id < self._vocab_size:
            return None
        lang = self._lang_of(token_id)
        sp, local = self._sp[lang], token_id - self._offsets[lang]
        if sp.is_control(local) or sp.is_unknown(local) or sp.is_unused(local):
            return None
        piece = sp.id_to_piece(local)
        if sp.is_byte(local):  # "<0xNN>"
            return bytes([int(piece[3:5], 16)])
        return piece.replace("\u2581", " ").encode("utf-8")

    def _check_lang(self, lang: str) -> str:
        if lang not in self._sp:
            raise ValueError(
                f"unknown language {lang!r}; this tokenizer has {', '.join(self._languages)}"
            )
        return lang

    def _lang_of(self, token_id: int) -> str:
        if not 0 <= token_id < self._vocab_size:
            raise ValueError(f"token id {token_id} out of range [0, {self._vocab_size})")
        # Few languages: a linear scan from the top beats bisect's call overhead.
        for lang, start in zip(reversed(self._blocks), reversed(self._block_starts), strict=True):
            if token_id >= start:
                return lang
        raise ValueError(f"token id {token_id} is a special token, not a piece")

    # ----------------------------------------------------------------------------- text

    def encode(self, text: str, lang: str) -> list[int]:
        """Ids of ``text`` in language ``lang`` (no prompt, no EOS)."""
        offset = self._offsets[self._check_lang(lang)]
        return [i + offset for i in self._sp[lang].encode(text)]

    def encode_batch(
        self, texts: Sequence[str], lang: str, num_threads: int = -1
    ) -> list[list[int]]:
        """`encode` of many texts of one language.

        ``num_threads`` SentencePiece threads (-1: every core); 1 encodes in a plain loop,
        which is what DataLoader workers (already one process per core) should use.
        """
        offset = self._offsets[self._check_lang(lang)]
        raw = _encode_many(self._sp[lang], texts, num_threads)
        return [[i + offset for i in ids] for ids in raw]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: special tokens (pad, prompt, EOS, language tokens) are dropped, each
        run of pieces is decoded by its language's model, runs are joined by a space."""
        runs: list[tuple[str, list[int]]] = []  # (language, local piece ids)
        for raw_id in ids:
            token_id = int(raw_id)
            if 0 <= token_id < self._num_special or self._pieces_end <= token_id < self._vocab_size:
                continue
            lang = self._lang_of(token_id)
            if not runs or runs[-1][0] != lang:
                runs.append((lang, []))
            runs[-1][1].append(token_id - self._offsets[lang])
        texts = (self._sp[lang].decode(pieces) for lang, pieces in runs)
        return " ".join(t for t in texts if t)

    # ----------------------------------------------------------------------------- examples

    def prompt_ids(self, source_lang: str, target_lang: str, task: Task, pnc: bool) -> list[int]:
        """Ids of the decoder prompt (see `padless.data.prompt`)."""
        key = (source_lang, target_lang, task, pnc)
        cached = self._prompt_cache.get(key)
        if cached is None:
            for lang in (source_lang, target_lang):
                self._check_lang(lang)
            tokens = self._prompt_format.tokens(source_lang, target_lang, task, pnc)
            cached = self._prompt_cache[key] = tuple(self._special_ids[t] for t in tokens)
        return list(cached)

    def prompt_ids_for(self, example: Example) -> list[int]:
        """`prompt_ids` of an example; errors name the example."""
        return list(self._prompt_of(example))

    def _prompt_of(self, example: Example) -> tuple[int, ...]:
        key = (example.source_lang, example.target_lang, example.task, example.pnc)
        cached = self._example_prompt_cache.get(key)
        if cached is not None:
            return cached
        source, target = example_langs(example)
        for lang in (source, target):
            if lang not in self._sp:
                raise PromptError(
                    f"example {example.id!r}: unknown language {lang!r}; this tokenizer has "
                    f"{', '.join(self._languages)}",
                    "unknown language",
                )
        tokens = self._prompt_format.tokens_for(example)
        cached = self._example_prompt_cache[key] = tuple(self._special_ids[t] for t in tokens)
        return cached

    def encode_examples(
        self, examples: Sequence[Example], include_targets: bool = True, num_threads: int = -1
    ) -> list[tuple[list[int], int]]:
        """Decoder sequence and prompt length of each example.

        The sequence is prompt + text ids + EOS. An empty text is a no-speech target
        (``<|nospeech|>`` + EOS). Without text (``None``), or with ``include_targets=False``
        (inference: the text is only a reference), the sequence is the prompt alone.
        """
        prompts = [self._prompt_of(ex) for ex in examples]
        texts = self._target_ids(examples, num_threads) if include_targets else None
        out: list[tuple[list[int], int]] = []
        for i, prompt in enumerate(prompts):
            ids = list(prompt)
            target = texts[i] if texts is not None else None
            if target is not None:
                ids.extend(target)
                ids.append(self.eos_id)
            out.append((ids, len(prompt)))
        return out

    def _target_ids(self, examples: Sequence[Example], num_threads: int) -> list[list[int] | None]:
        """Text ids (offset applied) of each example's target, ``None`` where it has no text."""
        out: list[list[int] | None] = [None] * len(examples)
        for lang, (index, texts) in self._group_texts(examples).items():
            for i, ids in zip(index, self.encode_batch(texts, lang, num_threads), strict=True):
                out[i] = ids or [self.nospeech_id]
        return out

    def _group_texts(self, examples: Sequence[Example]) -> dict[str, tuple[list[int], list[str]]]:
        """Non-empty texts by target language, with their positions in ``examples``."""
        groups: dict[str, tuple[list[int], list[str]]] = {}
        for i, ex in enumerate(examples):
            if ex.text is None:
                continue
            _, target = example_langs(ex)
            group = groups.get(target)
            if group is None:
                group = groups[target] = ([], [])
            group[0].append(i)
            group[1].append(ex.text)
        return groups

    def num_tokens(self, example: Example) -> int:
        """Decoder length of ``example``: prompt + text tokens + EOS (prompt only without text).

        Caches the count in ``example.num_tokens`` and returns a count already there unchanged.
        Costs one SentencePiece call (10-25 us per real transcript, measured); for many see
        `num_tokens_batch`.
        """
        if example.num_tokens is not None:
            return example.num_tokens
        prompt = self._prompt_of(example)  # validates task and languages
        n = len(prompt)
        if example.text is not None:
            _, target = example_langs(example)
            n += (len(self._sp[target].encode(example.text)) or 1) + 1  # '' -> <|nospeech|>; EOS
        example.num_tokens = n
        return n

    def num_tokens_batch(self, examples: Sequence[Example], num_threads: int = -1) -> list[int]:
        """`num_tokens` of many examples, caching each count.

        Uncounted examples go to SentencePiece in chunks of ``_COUNT_CHUNK``, one call per
        language per chunk, on ``num_threads`` threads (-1: every core). Encoding dominates the
        cost, so this beats a `num_tokens` loop only through threads, i.e. with idle cores; on
        the loaded 2-core development machine the two were within noise of each other
        (bench/results/2026-11-28-tokenizer-count.md). Chunks keep the id lists SentencePiece
        returns small.
        """
        counts = [0] * len(examples)
        todo: list[int] = []
        for i, ex in enumerate(examples):
            if ex.num_tokens is not None:
                counts[i] = ex.num_tokens
            else:
                todo.append(i)
        for start in range(0, len(todo), _COUNT_CHUNK):
            chunk = todo[start : start + _COUNT_CHUNK]
            pending = [examples[i] for i in chunk]
            lens = [len(self._prompt_of(ex)) for ex in pending]
            for lang, (index, texts) in self._group_texts(pending).items():
                raw = _encode_many(self._sp[lang], texts, num_threads)
                for j, ids in zip(index, raw, strict=True):
                    lens[j] += (len(ids) or 1) + 1  # empty text -> <|nospeech|>; + EOS
            for j, i in enumerate(chunk):
                pending[j].num_tokens = counts[i] = lens[j]
        return counts

    # ----------------------------------------------------------------------------- disk

    def save(self, out_dir: str | Path) -> Path:
        """Write ``tokenizer.json`` and ``<lang>.model`` files into ``out_dir``; returns it."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for lang in self._languages:
            (out / f"{lang}.model").write_bytes(self._protos[lang])
        meta = {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "prompt_format": self._prompt_format_name,
            # The fixed 8 of the default layout (language tokens follow), or every special
            # token of an explicit layout.
            "special_tokens": list(
                self._special_tokens if self._explicit_specials else SPECIAL_TOKENS
            ),
            "languages": list(self._languages),
            "block_order": list(self._blocks),
            "reserved": self._reserved,
            "offsets": dict(self._offsets),
            "vocab_sizes": dict(self._sizes),
            "vocab_size": self._vocab_size,
            "training": self._training,
        }
        (out / TOKENIZER_JSON).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2) + b"\n")
        return out

    @classmethod
    def load(cls, directory: str | Path) -> CanaryTokenizer:
        """Load a tokenizer saved by `save` / `train_tokenizer`, checking its layout."""
        root = Path(directory)
        meta_path = root / TOKENIZER_JSON
        try:
            meta = orjson.loads(meta_path.read_bytes())
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{meta_path}: no tokenizer here (train one with `padless tokenizer train`)"
            ) from None
        except orjson.JSONDecodeError as err:
            raise ValueError(f"{meta_path}: not valid JSON ({err})") from None
        if meta.get("format") != _FORMAT or meta.get("version") != _FORMAT_VERSION:
            raise ValueError(
                f"{meta_path}: not a {_FORMAT} v{_FORMAT_VERSION} file "
                f"(format={meta.get('format')!r}, version={meta.get('version')!r})"
            )
        specials = meta.get("special_tokens")
        if not isinstance(specials, list) or not all(isinstance(t, str) for t in specials):
            raise ValueError(f"{meta_path}: special_tokens must be a list of strings")
        models: dict[str, bytes] = {}
        for lang in meta["languages"]:
            model_path = root / f"{check_lang_code(lang)}.model"
            if not model_path.exists():
                raise FileNotFoundError(
                    f"{meta_path}: lists language {lang!r} but {model_path} is missing"
                )
            models[lang] = model_path.read_bytes()
        try:
            tok = cls(
                models,
                prompt_format=meta.get("prompt_format", "canary"),
                training=meta.get("training"),
                # The default layout stores the fixed 8 specials; an explicit one all of them.
                specials=None if specials == list(SPECIAL_TOKENS) else specials,
                block_order=meta.get("block_order"),
                reserved=int(meta.get("reserved", 0)),
            )
        except ValueError as err:
            raise ValueError(f"{meta_path}: {err}") from None
        for key, have in (
            ("offsets", dict(tok.offsets)),
            ("vocab_sizes", dict(tok.lang_vocab_sizes)),
        ):
            if meta.get(key) != have:
                raise ValueError(
                    f"{meta_path}: {key} {meta.get(key)} do not match the .model files ({have}); "
                    "a model file was replaced or edited"
                )
        if meta.get("vocab_size") != tok.vocab_size:
            raise ValueError(
                f"{meta_path}: vocab_size {meta.get('vocab_size')} != {tok.vocab_size}"
            )
        return tok

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from the serialized models (what DataLoader workers receive).
        layout = {
            "specials": self._special_tokens if self._explicit_specials else None,
            "block_order": self._blocks,
            "reserved": self._reserved,
        }
        return (_rebuild, (self._protos, self._prompt_format_name, self._training, layout))

    def __repr__(self) -> str:
        sizes = ", ".join(f"{lang}:{n}" for lang, n in self._sizes.items())
        return f"CanaryTokenizer(vocab_size={self._vocab_size}, languages=[{sizes}])"


def _rebuild(
    protos: Mapping[str, bytes],
    prompt_format: str,
    training: Mapping[str, Any],
    layout: Mapping[str, Any],
) -> CanaryTokenizer:
    """Unpickle a `CanaryTokenizer` (keyword-only layout arguments need a function)."""
    return CanaryTokenizer(protos, prompt_format, training, **layout)


def _encode_many(
    sp: spm.SentencePieceProcessor, texts: Sequence[str], num_threads: int
) -> list[list[int]]:
    """Piece ids of each text. SentencePiece's list call starts a thread pool even for one
    thread; on a loaded machine that made 16-text batches 5-20x slower than a plain loop, so
    one thread means a loop and only more threads use the pool."""
    if num_threads == 1:
        encode = sp.encode
        return [encode(text) for text in texts]
    return sp.encode(list(texts), num_threads=num_threads)


# --------------------------------------------------------------------------------- training


@dataclass
class _Reservoir:
    """Uniform sample of at most ``cap`` items from a stream (Algorithm R), seeded per language
    so one language's sample does not depend on how the others interleave with it."""

    cap: int
    rng: random.Random
    items: list[str] = field(default_factory=list)
    seen: int = 0

    def add(self, item: str) -> None:
        self.seen += 1
        if len(self.items) < self.cap:
            self.items.append(item)
            return
        j = self.rng.randrange(self.seen)
        if j < self.cap:
            self.items[j] = item


def _manifest_texts(
    path: str, on_error: OnError, skipped: SkipCounter
) -> Iterator[tuple[str, str]]:
    """(text, text language) of each example of a manifest (NeMo, Lhotse or shard index).

    The text language is the example's target language. Lines the reader rejects (no text,
    bad JSON, ...) raise `ManifestError` naming file:line, or are skipped and counted under
    ``on_error="skip"``; so are examples that give no language at all.
    """
    from padless.data.stream import read_manifest

    stream = read_manifest(path, require_text=True, on_error=on_error)
    for ex in stream:
        lang = ex.target_lang or ex.source_lang
        if lang is None:
            err = PromptError(
                f"{path}: example {ex.id!r} has no language (set target_lang, or lang)",
                "no language",
            )
            if on_error == "raise":
                raise err
            skipped.add(err)
            continue
        yield str(ex.text), lang
    skipped.merge(stream.skipped)


@dataclass(frozen=True)
class TrainResult:
    """What `train_tokenizer` built and what it read."""

    tokenizer: CanaryTokenizer
    out_dir: Path
    sentences_seen: Mapping[str, int]  # per language, in the manifests
    sentences_used: Mapping[str, int]  # per language, after the cap
    other_languages: Mapping[str, int]  # examples skipped for a language not in `languages`
    skipped: SkipCounter  # malformed lines (on_error="skip")


def train_tokenizer(
    manifests: Sequence[str],
    out_dir: str | Path,
    config: TokenizerTrainConfig = TokenizerTrainConfig(),
    on_line: Callable[[], None] | None = None,
) -> TrainResult:
    """Train one SentencePiece BPE model per language from the manifests' texts, save the
    aggregate tokenizer to ``out_dir`` and return it with reading statistics.

    ``on_line`` is called once per example read (a progress-bar hook).
    """
    if not manifests:
        raise ValueError("no manifests given")
    wanted = set(config.languages) if config.languages is not None else None
    skipped = SkipCounter()
    other: Counter[str] = Counter()
    reservoirs: dict[str, _Reservoir] = {}
    for path in manifests:
        for text, lang in _manifest_texts(str(path), config.on_error, skipped):
            if on_line is not None:
                on_line()
            if wanted is not None and lang not in wanted:
                other[lang] += 1
                continue
            res = reservoirs.get(lang)
            if res is None:
                check_lang_code(lang)
                rng = random.Random(f"{config.seed}:{lang}")
                res = reservoirs[lang] = _Reservoir(config.max_sentences_per_lang, rng)
            res.add(text)
    languages = sorted(wanted) if wanted is not None else sorted(reservoirs)
    empty = [lang for lang in languages if lang not in reservoirs]
    if not languages:
        raise NoExamplesError.empty([str(m) for m in manifests], "no training text")
    if empty:
        raise NoExamplesError(
            f"no training text for language(s) {', '.join(empty)} in "
            f"{', '.join(str(m) for m in manifests)}"
        )

    models = {lang: _train_one(lang, reservoirs[lang].items, config) for lang in languages}
    seen = {lang: reservoirs[lang].seen for lang in languages}
    used = {lang: len(reservoirs[lang].items) for lang in languages}
    provenance = {
        "manifests": [str(m) for m in manifests],
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "sentences_seen": seen,
        "sentences_used": used,
    }
    tokenizer = CanaryTokenizer(models, config.prompt_format, training=provenance)
    out = tokenizer.save(out_dir)
    return TrainResult(
        tokenizer=tokenizer,
        out_dir=out,
        sentences_seen=seen,
        sentences_used=used,
        other_languages=dict(other),
        skipped=skipped,
    )


def _train_one(lang: str, sentences: list[str], config: TokenizerTrainConfig) -> bytes:
    """Serialized SentencePiece BPE model of one language."""
    buf = io.BytesIO()
    longest = max((len(s.encode()) for s in sentences), default=1)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=buf,
            model_type="bpe",
            vocab_size=config.vocab_per_lang,
            character_coverage=config.character_coverage,
            byte_fallback=config.byte_fallback,
            # The shared specials replace SentencePiece's own; <unk> stays as piece 0.
            unk_id=0,
            bos_id=-1,
            eos_id=-1,
            pad_id=-1,
            # We sampled already; SentencePiece must neither resample nor drop long sentences.
            input_sentence_size=0,
            shuffle_input_sentence=False,
            max_sentence_length=max(longest, 4192),
            num_threads=config.num_threads,
            minloglevel=2,
        )
    except RuntimeError as err:
        raise PadlessInputError(
            f"training the {lang} model ({len(sentences)} sentences, vocab_per_lang="
            f"{config.vocab_per_lang}) failed: {str(err).split('] ')[-1]}",
            "tokenizer training failed",
        ) from None
    return buf.getvalue()
