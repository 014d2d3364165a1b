"""Sentences with exact translations: known renderings, agreement rules, and that every
generated sentence exists in all four languages with the same numbers."""

from __future__ import annotations

import functools
import random

import pytest
from num2words import num2words

from padless.data.corpus import phrases
from padless.data.corpus.phrases import LANGUAGES, cardinal, without_pnc


@pytest.mark.parametrize(
    ("n", "lang", "gender", "before_noun", "expected"),
    [
        (21, "en", "m", True, "twenty-one"),
        (21, "de", "m", True, "einundzwanzig"),
        (21, "fr", "m", True, "vingt et un"),
        (21, "fr", "f", True, "vingt et une"),
        (81, "fr", "f", True, "quatre-vingt-une"),
        (80, "fr", "m", True, "quatre-vingts"),
        (21, "es", "m", True, "veintiún"),
        (21, "es", "m", False, "veintiuno"),
        (31, "es", "m", True, "treinta y un"),
        (31, "es", "f", True, "treinta y una"),
        (200, "es", "f", True, "doscientas"),
        (200, "es", "m", True, "doscientos"),
        (1, "de", "m", True, "ein"),
        (1, "de", "m", False, "eins"),
        (1998, "fr", "m", False, "mille neuf cent quatre-vingt-dix-huit"),
    ],
)
def test_cardinal_agreement(n: int, lang: str, gender: str, before_noun: bool, expected: str):
    assert cardinal(n, lang, gender=gender, before_noun=before_noun) == expected  # type: ignore[arg-type]


def test_known_phrase_renderings():
    assert {lang: phrases.date_phrase(3, 3, lang) for lang in LANGUAGES} == {
        "en": "on March third",
        "de": "am dritten März",
        "fr": "le trois mars",
        "es": "el tres de marzo",
    }
    assert phrases.date_phrase(1, 5, "fr") == "le premier mai"
    assert phrases.date_phrase(1, 5, "es") == "el primero de mayo"
    assert {lang: phrases.time_phrase(1, 0, lang) for lang in LANGUAGES} == {
        "en": "at one o'clock",
        "de": "um ein Uhr",
        "fr": "à une heure",
        "es": "a la una en punto",
    }
    assert {lang: phrases.time_phrase(3, 5, lang) for lang in LANGUAGES} == {
        "en": "at three oh five",
        "de": "um drei Uhr fünf",
        "fr": "à trois heures cinq",
        "es": "a las tres y cinco",
    }
    assert {lang: phrases.year_words(1998, lang) for lang in LANGUAGES} == {
        "en": "nineteen ninety-eight",
        "de": "neunzehnhundertachtundneunzig",
        "fr": "mille neuf cent quatre-vingt-dix-huit",
        "es": "mil novecientos noventa y ocho",
    }
    assert phrases.ordinal_floor(3, "es") == "en la tercera planta"
    assert phrases.ordinal_floor(3, "de") == "im dritten Stock"
    assert phrases.price_phrase(21, 50, "es") == "veintiún euros con cincuenta céntimos"
    assert phrases.PEOPLE.counted(21, "fr") == "vingt et une personnes"


def _numbers_in(text: str, lang: str, vocabulary: dict[str, int]) -> list[int]:
    return [vocabulary[w] for w in without_pnc(text).split() if w in vocabulary]


@pytest.mark.parametrize("generator", [*phrases.SENTENCES, phrases.number_alone])
def test_every_sentence_has_all_languages_and_the_same_digits(generator):
    # A translation keeps its numbers: for phone numbers (read digit by digit) the sequence of
    # digit words must agree across languages exactly.
    digit_words = {lang: {num2words(d, lang=lang): d for d in range(10)} for lang in LANGUAGES}
    rng = random.Random(7)
    for _ in range(30):
        sentence = generator(rng)
        assert sorted(sentence) == sorted(LANGUAGES)
        for lang, text in sentence.items():
            assert text and text == text.strip() and "  " not in text
            assert text[-1] in ".?", (lang, text)
            assert "{" not in text and "None" not in text
        if generator is phrases.phone:
            sequences = {
                lang: _numbers_in(sentence[lang], lang, digit_words[lang]) for lang in LANGUAGES
            }
            assert len({tuple(s) for s in sequences.values()}) == 1, sequences
            assert 6 <= len(sequences["en"]) <= 9


@functools.cache
def _renderings(lang: str) -> dict[str, int]:
    """Every way a number 0-999 is written in ``lang`` (any gender, bare or before a noun)."""
    return {
        cardinal(n, lang, gender=gender, before_noun=before): n
        for n in range(1000)
        for gender in ("m", "f")
        for before in (False, True)
    }


def _the_number_in(text: str, renderings: dict[str, int]) -> int:
    """The number written in ``text``: its longest rendering that occurs as whole words."""
    padded = f" {without_pnc(text)} ".replace(" pour cent ", " ")  # "cent" alone is 100
    found = [w for w in renderings if f" {w} " in padded]
    return renderings[max(found, key=len)]


@pytest.mark.parametrize(
    "generator",
    [phrases.bought, phrases.need, phrases.distance, phrases.temperature, phrases.people,
     phrases.percent],
)  # fmt: skip
def test_quantity_is_the_same_number_in_every_language(generator):
    renderings = {lang: _renderings(lang) for lang in LANGUAGES}
    rng = random.Random(11)
    for _ in range(40):
        sentence = generator(rng)
        numbers = {lang: _the_number_in(sentence[lang], renderings[lang]) for lang in LANGUAGES}
        assert len(set(numbers.values())) == 1, (numbers, sentence)


def test_without_pnc():
    assert without_pnc("¿Necesitas veintiún libros?") == "necesitas veintiún libros"
    assert without_pnc("As-tu besoin de trois œufs ?") == "as-tu besoin de trois œufs"
    assert without_pnc("Aujourd'hui, il fait trente degrés.") == "aujourd'hui il fait trente degrés"
    assert without_pnc("Ich habe zwei Äpfel gekauft.") == "ich habe zwei äpfel gekauft"
    assert without_pnc("One thousand, nine hundred.") == "one thousand nine hundred"
