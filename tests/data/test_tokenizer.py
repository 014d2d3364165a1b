"""The aggregate Canary tokenizer: id layout, round trips in four languages, token counting,
training from manifests (sampling, determinism, bad input), save/load."""

from __future__ import annotations

import pickle
import random
import unicodedata
from pathlib import Path

import orjson
import pytest
from num2words import num2words

from padless.data import tokenizer as tokenizer_module
from padless.data.errors import ManifestError
from padless.data.example import Example, FileAudio
from padless.data.prompt import PromptError
from padless.data.tokenizer import (
    CanaryTokenizer,
    TokenizerTrainConfig,
    TrainResult,
    train_tokenizer,
)

VOCAB = 160

# Words with each language's accents, numbers written out by num2words and as digits, and
# punctuation: what ASR transcripts in these languages contain.
WORDS = {
    "en": "the quick brown fox jumps over a lazy dog it's café naïve résumé on Monday at noon "
    "we paid for tickets and coffee, yes! really? well: no; maybe",
    "de": "der schöne Mädchen über Straße Größe Äpfel Öl Übung grün heiß fährt nach München "
    "und wir zahlten für Kaffee, ja! wirklich? gut: nein; vielleicht",
    "fr": "l'été le garçon où à déjà français Noël cœur l'hôtel naïve ça très être Québec "
    "nous avons payé pour le café, oui! vraiment? bien: non; peut-être",
    "es": "¿Dónde está el niño? ¡Qué bueno! señor canción pingüino mañana corazón también "
    "pagamos por el café, sí, ¿verdad? bien: no; quizás",
}


def sentence(rng: random.Random, lang: str) -> str:
    words = rng.choices(WORDS[lang].split(), k=rng.randint(3, 12))
    n = rng.randint(0, 3000)
    words.insert(rng.randint(0, len(words)), num2words(n, lang=lang))
    words.insert(
        rng.randint(0, len(words)), rng.choice([str(n), f"{n},5", f"{n % 24}:{n % 60:02d}"])
    )
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice([".", "!", "?", ""])


def write_manifest(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return path


def nemo_rows(seed: int, per_lang: int) -> list[dict[str, object]]:
    """ASR in every language plus AST X->en and en->X; each text is in its target language."""
    rng = random.Random(seed)
    rows: list[dict[str, object]] = []
    for lang in WORDS:
        for i in range(per_lang):
            task, source = "asr", lang
            if i % 4 == 3:  # a quarter translations: into `lang` from en, or from fr into en
                task, source = "ast", ("fr" if lang == "en" else "en")
            rows.append(
                {
                    "audio_filepath": f"{lang}{i}.flac",
                    "duration": 1.0 + i % 7,
                    "answer" if i % 2 else "text": sentence(rng, lang),
                    "source_lang": source,
                    "target_lang": lang,
                    "taskname": task,
                    "pnc": "yes",
                }
            )
    return rows


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    root = tmp_path_factory.mktemp("tok")
    manifest = write_manifest(root / "train.jsonl", nemo_rows(seed=0, per_lang=400))
    return train_tokenizer(
        [str(manifest)], root / "tok", TokenizerTrainConfig(vocab_per_lang=VOCAB)
    )


@pytest.fixture(scope="module")
def tok(trained: TrainResult) -> CanaryTokenizer:
    return trained.tokenizer


def example(
    text: str | None, src: str = "en", tgt: str = "en", task: str = "asr", **kw: object
) -> Example:
    return Example(
        id=kw.pop("id", "utt1"),  # type: ignore[arg-type]
        duration=2.0,
        audio=FileAudio("a.flac"),
        text=text,
        source_lang=src,
        target_lang=tgt,
        task=task,  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def test_fixed_id_layout(tok: CanaryTokenizer) -> None:
    assert tok.languages == ("de", "en", "es", "fr")
    assert (tok.pad_id, tok.eos_id, tok.bos_id, tok.nospeech_id) == (0, 1, 2, 7)
    assert dict(tok.special_ids) == {
        "<pad>": 0,
        "<|endoftext|>": 1,
        "<|startoftranscript|>": 2,
        "<|transcribe|>": 3,
        "<|translate|>": 4,
        "<|pnc|>": 5,
        "<|nopnc|>": 6,
        "<|nospeech|>": 7,
        "<|de|>": 8,
        "<|en|>": 9,
        "<|es|>": 10,
        "<|fr|>": 11,
    }
    assert dict(tok.offsets) == {
        "de": 12,
        "en": 12 + VOCAB,
        "es": 12 + 2 * VOCAB,
        "fr": 12 + 3 * VOCAB,
    }
    assert tok.vocab_size == 8 + 4 + 4 * VOCAB
    # SentencePiece's own <unk> is piece 0 of each block; it has no bos/eos/pad pieces.
    assert [tok.id_to_piece(tok.offsets[lang]) for lang in tok.languages] == ["<unk>"] * 4


@pytest.mark.parametrize("lang", ["de", "en", "es", "fr"])
def test_round_trip_held_out_text(tok: CanaryTokenizer, lang: str) -> None:
    rng = random.Random(1234)  # the training sentences came from seed 0
    handwritten = {
        "en": "It's 12:30 on Monday, and the café paid 1998 for 2,5 tickets!",
        "de": "Über 3000 Äpfel: die Größe ist schön, heiß und grün.",
        "fr": "Où est l'hôtel? Déjà 47 garçons à Noël, ça va très bien!",
        "es": "¿Dónde está el pingüino? ¡Qué mañana: 15 canciones, señor!",
    }[lang]
    for text in [handwritten, *(sentence(rng, lang) for _ in range(50))]:
        ids = tok.encode(text, lang)
        start = tok.offsets[lang]
        assert all(start <= i < start + tok.lang_vocab_sizes[lang] for i in ids)
        assert start not in ids  # no <unk>: every character was seen in training
        assert tok.decode(ids) == text


def test_decode_strips_specials_and_padding(tok: CanaryTokenizer) -> None:
    text = "Der schöne Kaffee: 12,5 für München!"
    ids = tok.prompt_ids("en", "de", "ast", True) + tok.encode(text, "de") + [tok.eos_id, 0, 0]
    assert tok.decode(ids) == text
    assert tok.decode([tok.nospeech_id, tok.eos_id]) == ""


def test_unseen_characters_become_the_language_unk(tok: CanaryTokenizer) -> None:
    # No 'o' in the German training words (see WORDS): it is the German block's <unk>.
    ids = tok.encode("Kaffee kostet", "de")
    assert ids.count(tok.offsets["de"]) == 1
    assert tok.decode(ids) == "Kaffee k ⁇ stet"


def test_decode_joins_runs_of_different_languages(tok: CanaryTokenizer) -> None:
    ids = tok.encode("yes really", "en") + tok.encode("oui vraiment", "fr")
    assert tok.decode(ids) == "yes really oui vraiment"


def test_batch_encode_equals_single_encode(tok: CanaryTokenizer) -> None:
    rng = random.Random(5)
    texts = [sentence(rng, "fr") for _ in range(200)]
    assert tok.encode_batch(texts, "fr") == [tok.encode(t, "fr") for t in texts]


def test_num_tokens_is_prompt_text_eos_and_cached(tok: CanaryTokenizer) -> None:
    text = "The quick brown fox, 42 times!"
    ex = example(text)
    assert ex.num_tokens is None
    n = tok.num_tokens(ex)
    assert n == 5 + len(tok.encode(text, "en")) + 1
    assert ex.num_tokens == n
    assert tok.num_tokens(ex) == n
    # A count already present (e.g. from a manifest) is returned unchanged, not recomputed.
    ex.num_tokens = 999
    assert tok.num_tokens(ex) == 999
    # AST counts the text with the target language's model.
    ast = example("Der Kaffee ist heiß.", src="en", tgt="de", task="ast")
    assert tok.num_tokens(ast) == 5 + len(tok.encode("Der Kaffee ist heiß.", "de")) + 1
    # Empty text is a no-speech target (<|nospeech|> EOS); no text at all is the prompt only.
    assert tok.num_tokens(example("")) == 5 + 1 + 1
    assert tok.num_tokens(example(None)) == 5


@pytest.mark.parametrize("chunk", [64, 4096])
def test_num_tokens_batch_matches_single_and_encode_examples(
    tok: CanaryTokenizer, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokenizer_module, "_COUNT_CHUNK", chunk)  # 300 examples: 5 chunks or 1
    rng = random.Random(9)
    langs = ["de", "en", "es", "fr"]
    examples = []
    for i in range(300):
        tgt = langs[i % 4]
        src = tgt if i % 3 else ("fr" if tgt == "en" else "en")
        text = None if i % 50 == 0 else ("" if i % 70 == 0 else sentence(rng, tgt))
        examples.append(
            example(text, src, tgt, "asr" if src == tgt else "ast", id=f"u{i}", pnc=i % 2 == 0)
        )
    examples[7].num_tokens = 3  # cached values are kept
    single = [
        tok.num_tokens(example(e.text, e.source_lang, e.target_lang, e.task, pnc=e.pnc))
        for e in examples
    ]
    single[7] = 3
    assert tok.num_tokens_batch(examples, num_threads=1) == single
    assert [e.num_tokens for e in examples] == single
    encoded = tok.encode_examples(examples)
    assert [len(ids) for ids, _ in encoded[:7] + encoded[8:]] == single[:7] + single[8:]
    for (ids, prompt_len), ex in zip(encoded, examples, strict=True):
        assert prompt_len == 5
        assert ids[:5] == tok.prompt_ids_for(ex)
        if ex.text is not None:
            assert ids[-1] == tok.eos_id
            assert tok.decode(ids) == ex.text
    # Inference: the text is only a reference, the sequence is the prompt.
    assert all(len(ids) == 5 for ids, _ in tok.encode_examples(examples, include_targets=False))


def test_save_load_and_pickle_preserve_encoding(tok: CanaryTokenizer, trained: TrainResult) -> None:
    loaded = CanaryTokenizer.load(trained.out_dir)
    clone = pickle.loads(pickle.dumps(tok))
    text = "¡Qué bueno, señor! 2024 canciones."
    for other in (loaded, clone):
        assert other.vocab_size == tok.vocab_size
        assert dict(other.offsets) == dict(tok.offsets)
        assert other.encode(text, "es") == tok.encode(text, "es")
    assert sorted(p.name for p in trained.out_dir.iterdir()) == [
        "de.model",
        "en.model",
        "es.model",
        "fr.model",
        "tokenizer.json",
    ]


def test_training_groups_texts_by_target_language(trained: TrainResult) -> None:
    # nemo_rows: 400 rows per target language; AST rows count for their target language.
    assert dict(trained.sentences_seen) == {"de": 400, "en": 400, "es": 400, "fr": 400}
    assert trained.skipped.total == 0


def test_training_is_deterministic_and_capped(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path / "m.jsonl", nemo_rows(seed=3, per_lang=300))
    config = TokenizerTrainConfig(
        vocab_per_lang=100, max_sentences_per_lang=120, seed=7, languages=("en", "fr")
    )
    a = train_tokenizer([str(manifest)], tmp_path / "a", config)
    train_tokenizer([str(manifest)], tmp_path / "b", config)
    assert dict(a.sentences_used) == {"en": 120, "fr": 120}
    assert dict(a.sentences_seen) == {"en": 300, "fr": 300}
    for lang in ("en", "fr"):
        assert (tmp_path / "a" / f"{lang}.model").read_bytes() == (
            tmp_path / "b" / f"{lang}.model"
        ).read_bytes()
    # The other languages' lines are counted, not silently dropped.
    assert dict(a.other_languages) == {"de": 300, "es": 300}
    assert a.skipped.total == 0


# ---------------------------------------------------------------------------------- bad input


def test_unknown_language_is_a_clear_error(tok: CanaryTokenizer) -> None:
    with pytest.raises(
        ValueError, match=r"unknown language 'it'; this tokenizer has de, en, es, fr"
    ):
        tok.encode("ciao", "it")
    with pytest.raises(PromptError, match=r"example 'it-1': unknown language 'it'"):
        tok.num_tokens(example("ciao", "it", "it", id="it-1"))
    with pytest.raises(ValueError, match="unknown language 'it'"):
        tok.prompt_ids("it", "it", "asr", True)
    with pytest.raises(ValueError, match=r"token id 9999 out of range \[0, 652\)"):
        tok.decode([9999])


def test_invalid_task_languages_are_errors_naming_the_example(tok: CanaryTokenizer) -> None:
    with pytest.raises(PromptError, match=r"example 'x': asr needs source_lang == target_lang"):
        tok.num_tokens_batch([example("hi", "en", "de", "asr", id="x")])
    with pytest.raises(PromptError, match=r"example 'y': ast needs source_lang != target_lang"):
        tok.num_tokens(example("hi", "en", "en", "ast", id="y"))


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b'{"id": "x", "duration": 1.0, "source_lang": "en"}', "missing text"),
        (
            b'{"id": "x", "duration": 1.0, "text": "hi"',
            "bad JSON at column 42: unexpected end of data",
        ),
        (b"[1, 2]", "expected a JSON object, got list"),
    ],
)
def test_bad_training_lines_name_file_and_line(tmp_path: Path, line: bytes, reason: str) -> None:
    good = orjson.dumps({"id": "g", "duration": 1.0, "text": "hello there", "lang": "en"})
    manifest = tmp_path / "bad.jsonl"
    manifest.write_bytes(b"\n".join([good, good, line, good]) + b"\n")
    config = TokenizerTrainConfig(vocab_per_lang=20)
    with pytest.raises(ManifestError) as err:
        train_tokenizer([str(manifest)], tmp_path / "tok", config)
    assert (err.value.path, err.value.line) == (str(manifest), 3)
    assert str(err.value) == f"{manifest}:3: {reason}"
    # Under on_error="skip" the line is skipped and counted.
    skip = TokenizerTrainConfig(vocab_per_lang=20, on_error="skip")
    result = train_tokenizer([str(manifest)], tmp_path / "tok", skip)
    assert result.skipped.total == 1
    assert result.sentences_seen == {"en": 3}


def test_examples_without_language_are_errors_or_counted(tmp_path: Path) -> None:
    rows = [{"id": "a", "duration": 1.0, "text": "hello there", "lang": "en"}] * 3
    manifest = write_manifest(
        tmp_path / "m.jsonl", [*rows, {"id": "z", "duration": 1.0, "text": "hi"}]
    )
    with pytest.raises(PromptError, match=r"m\.jsonl: example 'z' has no language"):
        train_tokenizer([str(manifest)], tmp_path / "t", TokenizerTrainConfig(vocab_per_lang=20))
    skip = TokenizerTrainConfig(vocab_per_lang=20, on_error="skip")
    result = train_tokenizer([str(manifest)], tmp_path / "t", skip)
    assert dict(result.skipped.by_reason) == {"no language": 1}
    assert result.sentences_seen == {"en": 3}


def test_training_errors_name_the_language(tmp_path: Path) -> None:
    row = {"id": "a", "duration": 1.0, "text": "a tiny text", "target_lang": "en"}
    manifest = write_manifest(tmp_path / "m.jsonl", [row])
    with pytest.raises(ValueError, match=r"training the en model .*Vocabulary size too high"):
        train_tokenizer([str(manifest)], tmp_path / "t", TokenizerTrainConfig(vocab_per_lang=500))
    with pytest.raises(ValueError, match=r"no training text for language\(s\) de in "):
        train_tokenizer(
            [str(manifest)], tmp_path / "t", TokenizerTrainConfig(languages=("de", "en"))
        )
    with pytest.raises(ValueError, match="bad language code 'e<n>'"):
        TokenizerTrainConfig(languages=("e<n>",))


def test_load_rejects_a_tampered_folder(trained: TrainResult, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    trained.tokenizer.save(broken)
    (broken / "es.model").unlink()
    with pytest.raises(FileNotFoundError, match=r"lists language 'es' but .*es\.model is missing"):
        CanaryTokenizer.load(broken)
    meta = orjson.loads((trained.out_dir / "tokenizer.json").read_bytes())
    meta["special_tokens"] = meta["special_tokens"][::-1]
    trained.tokenizer.save(broken)
    (broken / "tokenizer.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(ValueError, match=r"special tokens must be unique and include \['<\|de\|>'"):
        CanaryTokenizer.load(broken)


def test_real_transcripts_round_trip_up_to_nfkc(real_data_dir: Path, tmp_path: Path) -> None:
    """Every real transcript (LibriSpeech en, TCOF fr, Common Voice id) decodes back to itself,
    up to SentencePiece's NFKC normalisation (e.g. '²' -> '2', full-width '！' -> '!')."""
    names = [
        "librispeech_clean_dev_test.en.jsonl",
        "tcof_spontaneous_dev_test.fr.jsonl",
        "commonvoice_id_train_dev_test.id.jsonl",
    ]
    paths = [str(real_data_dir / name) for name in names]
    tok = train_tokenizer(
        paths, tmp_path / "tok", TokenizerTrainConfig(vocab_per_lang=512)
    ).tokenizer
    assert tok.languages == ("en", "fr", "id")
    rows = [orjson.loads(line) for path in paths for line in Path(path).read_bytes().splitlines()]
    changed = 0
    for row in rows[::4]:  # a quarter keeps the test short; the rest behave alike
        text = row["text"]
        normalised = " ".join(unicodedata.normalize("NFKC", text).split())
        changed += normalised != text
        assert tok.decode(tok.encode(text, row["lang"])) == normalised, row["id"]
    assert changed < 10  # NFKC rarely matters for these transcripts
