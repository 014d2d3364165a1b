"""Text normalisation before WER: the Open ASR Leaderboard convention.

The Hugging Face Open ASR Leaderboard scores English with Whisper's English normaliser and every
other language with Whisper's basic normaliser (both from the Whisper paper, appendix C). We call
the maintained ``whisper-normalizer`` package for both and write no rules of our own, so a WER
from padless is comparable with the leaderboard's and with other tools that follow it.

What the two do (measured outputs are pinned in ``tests/eval/test_normalize.py``):

- English (``EnglishTextNormalizer``): lower-cases; removes punctuation and bracketed text;
  expands contractions (``it's`` -> ``it is``); spells titles (``Mr.`` -> ``mister``); writes
  spelled-out numbers as digits (``forty-five percent`` -> ``45%``, ``seven fifteen`` -> ``715``);
  maps British to American spelling (``colour`` -> ``color``).
- Other languages (``BasicTextNormalizer``, diacritics kept): lower-cases, removes bracketed text,
  and turns every punctuation mark and symbol into a space (``j'ai`` -> ``j ai``).

The package's basic normaliser leaves a space where final punctuation was; `normalize` strips
the ends, so a stored normalised text has no stray spaces. Word sequences are the package's.

Normalisation applies to WER only. BLEU is computed on the raw, cased text (`padless.eval.scores`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

#: The language scored with Whisper's English normaliser; every other one gets the basic one.
ENGLISH = "en"


@cache
def normalizer_for(lang: str) -> Callable[[str], str]:
    """The package normaliser for language code ``lang`` (built once per language: the English
    one loads a spelling table)."""
    if lang == ENGLISH:
        from whisper_normalizer.english import EnglishTextNormalizer

        english: Callable[[str], str] = EnglishTextNormalizer()
        return english
    from whisper_normalizer.basic import BasicTextNormalizer

    # remove_diacritics=False is the package default and the leaderboard's choice: "März" and
    # "à" keep their marks, so they stay distinct words from "marz" and "a".
    basic: Callable[[str], str] = BasicTextNormalizer(remove_diacritics=False)
    return basic


def normalize(text: str, lang: str) -> str:
    """``text`` in language ``lang`` as WER compares it (see the module docstring)."""
    return normalizer_for(lang)(text).strip()
