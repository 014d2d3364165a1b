"""The normalisation convention: Whisper's English normaliser for English, its basic one for the
other languages, through the whisper-normalizer package. Expected outputs were taken from
running the package (0.1.15); a change here means WERs are no longer comparable."""

from __future__ import annotations

import pytest

from padless.eval.normalize import normalize, normalizer_for


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # spelled-out numbers become digits, percent a sign; punctuation and case go
        ("I'm sure it's forty-five percent!", "i am sure it is 45%"),
        ("The train leaves at seven fifteen.", "the train leaves at 715"),
        ("Fifty-one.", "51"),
        ("one oh one", "101"),
        # titles spelled, currency amounts expanded, contractions expanded
        ("Mr. Smith paid $20 million.", "mister smith paid $20000000"),
        ("He won't go", "he will not go"),
        # British spelling to American; bracketed and parenthesised text removed
        ("The colour [noise] (laughs) is nice", "the color is nice"),
        ("Hello,  World", "hello world"),
        ("", ""),
    ],
)
def test_english(text: str, expected: str):
    assert normalize(text, "en") == expected


@pytest.mark.parametrize(
    ("text", "lang", "expected"),
    [
        # lower-cased, punctuation to spaces (so the apostrophe splits "j'ai"), accents kept,
        # numbers left as words: the basic normaliser has no number rules
        ("J'ai vingt et une personnes à Paris.", "fr", "j ai vingt et une personnes à paris"),
        ("Le Train PART à sept heures!", "fr", "le train part à sept heures"),
        ("quatre-vingts", "fr", "quatre vingts"),
        ("Am dritten März, Straße.", "de", "am dritten märz straße"),
        ("¿Qué tal? Muy bien.", "es", "qué tal muy bien"),
        ("[ruido] Veintiún (risas) libros", "es", "veintiún libros"),
    ],
)
def test_other_languages(text: str, lang: str, expected: str):
    assert normalize(text, lang) == expected


def test_english_rules_only_for_english():
    # "forty-five" is English to the English normaliser only; in any other language it is two
    # words, and "Mr." is not expanded
    assert normalize("Forty-five, Mr. X", "fr") == "forty five mr x"
    assert normalizer_for("en") is normalizer_for("en")  # built once (loads a spelling table)
    assert type(normalizer_for("de")).__name__ == "BasicTextNormalizer"
    assert type(normalizer_for("en")).__name__ == "EnglishTextNormalizer"
