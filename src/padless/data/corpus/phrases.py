"""Sentences with exact translations in English, German, French and Spanish.

Every sentence is built from a template written once per language and filled with the same
numbers, dates, times and quantities rendered in each language's words (``num2words`` plus the
agreement rules below), so the four texts are translations of each other by construction. Numbers
are written as words, exactly as the synthesizer speaks them: the transcript is what is said.

Grammar that ``num2words`` leaves to the caller, handled here because the templates need it:

- French and Spanish numbers agree with a feminine noun (``vingt et une personnes``,
  ``doscientas personas``); Spanish ``uno`` shortens before a masculine noun (``veintiún libros``).
- German day ordinals after ``am`` take the dative (``am dritten März``); ``ein Uhr``, not ``eins``.
- Quantities of counted nouns avoid n % 100 == 1 (``hunderteins Bücher`` is not idiomatic German),
  and start at 2 so every noun is plural.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from num2words import num2words

Lang = Literal["en", "de", "fr", "es"]
#: The corpus languages, in the order they are listed everywhere (sorted, like the tokenizer's).
LANGUAGES: tuple[Lang, ...] = ("de", "en", "es", "fr")

Gender = Literal["m", "f"]
#: One text per language; the values are translations of each other.
Parallel = Mapping[str, str]


# ---------------------------------------------------------------------------- numbers as words


def cardinal(n: int, lang: str, gender: Gender = "m", before_noun: bool = False) -> str:
    """``n`` in words, agreeing with a noun of ``gender`` that follows it when ``before_noun``."""
    words = num2words(n, lang=lang)
    if lang == "fr" and gender == "f":
        # "un" is the only French number word with a feminine form: vingt et un -> vingt et une.
        words = re.sub(r"(^|[ -])un$", r"\1une", words)
    elif lang == "es":
        if gender == "f":
            words = re.sub(r"uno$", "una", words)
            words = re.sub(r"ientos\b", "ientas", words)  # doscientos -> doscientas
        elif before_noun:
            words = re.sub(r"veintiuno$", "veintiún", words)
            words = re.sub(r"(^|\s)uno$", r"\1un", words)
    elif lang == "de" and before_noun and n % 100 == 1:
        # "eins" only ends a bare number; before a noun it inflects ("ein Uhr", "hundertein").
        words = re.sub(r"eins$", "ein", words)
    return words


def digits(number: str, lang: str) -> str:
    """A digit string read digit by digit, as phone numbers are."""
    return " ".join(num2words(int(d), lang=lang) for d in number)


_MONTHS: dict[str, tuple[str, ...]] = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
           "September", "Oktober", "November", "Dezember"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
    "es": ("enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto",
           "septiembre", "octubre", "noviembre", "diciembre"),
}  # fmt: skip


def date_phrase(day: int, month: int, lang: str) -> str:
    """A calendar date as the object of "on" (en "on March third", de "am dritten März")."""
    name = _MONTHS[lang][month - 1]
    if lang == "en":
        return f"on {name} {num2words(day, lang='en', to='ordinal')}"
    if lang == "de":
        return f"am {num2words(day, lang='de', to='ordinal')}n {name}"  # dative: dritte -> dritten
    if lang == "fr":
        return f"le {'premier' if day == 1 else cardinal(day, 'fr')} {name}"
    return f"el {'primero' if day == 1 else cardinal(day, 'es')} de {name}"


def time_phrase(hour: int, minute: int, lang: str) -> str:
    """A clock time with its preposition ("at three thirty"); hour 1-12, minute a multiple of 5."""
    if lang == "en":
        h = num2words(hour, lang="en")
        if minute == 0:
            return f"at {h} o'clock"
        m = num2words(minute, lang="en")
        return f"at {h} oh {m}" if minute < 10 else f"at {h} {m}"
    if lang == "de":
        h = cardinal(hour, "de", before_noun=True)
        return f"um {h} Uhr" + (f" {cardinal(minute, 'de')}" if minute else "")
    if lang == "fr":
        h = cardinal(hour, "fr", gender="f")
        unit = "heure" if hour == 1 else "heures"
        return f"à {h} {unit}" + (f" {cardinal(minute, 'fr')}" if minute else "")
    article = "a la" if hour == 1 else "a las"
    h = cardinal(hour, "es", gender="f")
    return f"{article} {h} " + (f"y {cardinal(minute, 'es')}" if minute else "en punto")


def year_words(year: int, lang: str) -> str:
    """A year as it is read aloud (en "nineteen ninety-eight", fr "mille neuf cent ...")."""
    if lang in ("en", "de"):
        return str(num2words(year, lang=lang, to="year"))
    return cardinal(year, lang)


def ordinal_floor(n: int, lang: str) -> str:
    """ "on the third floor" and its translations (es "planta" is feminine: tercera)."""
    if lang == "en":
        return f"on the {num2words(n, lang='en', to='ordinal')} floor"
    if lang == "de":
        return f"im {num2words(n, lang='de', to='ordinal')}n Stock"
    if lang == "fr":
        return f"au {num2words(n, lang='fr', to='ordinal')} étage"
    feminine = " ".join(w[:-1] + "a" for w in num2words(n, lang="es", to="ordinal").split())
    return f"en la {feminine} planta"


def price_phrase(euros: int, cents: int, lang: str) -> str:
    """An amount in euros and cents (cents 0 or a multiple of 5)."""
    e = cardinal(euros, lang, before_noun=True)
    c = cardinal(cents, lang, before_noun=True)
    if lang == "en":
        return f"{e} euros" + (f" and {c} cents" if cents else "")
    if lang == "de":
        return f"{e} Euro" + (f" und {c} Cent" if cents else "")
    if lang == "fr":
        return f"{e} euros" + (f" et {c} centimes" if cents else "")
    return f"{e} euros" + (f" con {c} céntimos" if cents else "")


# ---------------------------------------------------------------------------- nouns and templates


@dataclass(frozen=True)
class Noun:
    """A countable noun in the plural, with its grammatical gender where numbers agree."""

    en: str
    de: str
    fr: str
    es: str
    fr_gender: Gender = "m"
    es_gender: Gender = "m"

    def counted(self, n: int, lang: str) -> str:
        """ "21 books" in words: vingt et un livres, veintiún libros, einundzwanzig Bücher."""
        gender: Gender = {"fr": self.fr_gender, "es": self.es_gender}.get(lang, "m")
        return f"{cardinal(n, lang, gender=gender, before_noun=True)} {getattr(self, lang)}"


ITEMS: tuple[Noun, ...] = (
    Noun("books", "Bücher", "livres", "libros"),
    Noun("pens", "Stifte", "stylos", "bolígrafos"),
    Noun("eggs", "Eier", "œufs", "huevos"),
    Noun("tickets", "Fahrkarten", "billets", "billetes"),
    Noun("notebooks", "Hefte", "cahiers", "cuadernos"),
    Noun("apples", "Äpfel", "pommes", "manzanas", "f", "f"),
    Noun("chairs", "Stühle", "chaises", "sillas", "f", "f"),
    Noun("oranges", "Orangen", "oranges", "naranjas", "f", "f"),
    Noun("bottles of water", "Flaschen Wasser", "bouteilles d'eau", "botellas de agua", "f", "f"),
    Noun("cups of coffee", "Tassen Kaffee", "tasses de café", "tazas de café", "f", "f"),
)
PEOPLE = Noun("people", "Personen", "personnes", "personas", "f", "f")
KILOMETRES = Noun("kilometres", "Kilometer", "kilomètres", "kilómetros")
DEGREES = Noun("degrees", "Grad", "degrés", "grados")
HOURS = Noun("hours", "Stunden", "heures", "horas", "f", "f")
MINUTES = Noun("minutes", "Minuten", "minutes", "minutos", "f", "m")


def _count(rng: random.Random, low: int, high: int) -> int:
    """A count in [low, high] for a plural noun, skipping n % 100 == 1 (see module docstring)."""
    while True:
        n = rng.randint(low, high)
        if n % 100 != 1:
            return n


def _filled(templates: Mapping[str, str], **slots: Mapping[str, str]) -> dict[str, str]:
    """Fill each language's template with that language's rendering of every slot."""
    return {
        lang: text.format(**{name: by_lang[lang] for name, by_lang in slots.items()})
        for lang, text in templates.items()
    }


def _per_lang(render: Callable[[str], str]) -> dict[str, str]:
    return {lang: render(lang) for lang in LANGUAGES}


def number_alone(rng: random.Random) -> dict[str, str]:
    """A bare number, the shortest utterance (~0.5 s for "seven")."""
    n = rng.choice((rng.randint(0, 20), rng.randint(21, 100), rng.randint(101, 9999)))
    return {lang: cardinal(n, lang).capitalize() + "." for lang in LANGUAGES}


def meeting(rng: random.Random) -> dict[str, str]:
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    hour, minute = rng.randint(1, 12), 5 * rng.randint(0, 11)
    templates = {
        "en": "The meeting is {date} {time}.",
        "de": "Das Treffen ist {date} {time}.",
        "fr": "La réunion est {date} {time}.",
        "es": "La reunión es {date} {time}.",
    }
    return _filled(
        templates,
        date=_per_lang(lambda lang: date_phrase(day, month, lang)),
        time=_per_lang(lambda lang: time_phrase(hour, minute, lang)),
    )


def bought(rng: random.Random) -> dict[str, str]:
    item, n = rng.choice(ITEMS), _count(rng, 2, 999)
    templates = {
        "en": "I bought {things}.",
        "de": "Ich habe {things} gekauft.",
        "fr": "J'ai acheté {things}.",
        "es": "Compré {things}.",
    }
    return _filled(templates, things=_per_lang(lambda lang: item.counted(n, lang)))


def need(rng: random.Random) -> dict[str, str]:
    item, n = rng.choice(ITEMS), _count(rng, 2, 60)
    templates = {
        "en": "Do you need {things}?",
        "de": "Brauchst du {things}?",
        "fr": "As-tu besoin de {things} ?",
        "es": "¿Necesitas {things}?",
    }
    return _filled(templates, things=_per_lang(lambda lang: item.counted(n, lang)))


def price(rng: random.Random) -> dict[str, str]:
    euros, cents = _count(rng, 2, 999), rng.choice((0, 5 * rng.randint(1, 19)))
    templates = {
        "en": "It costs {p}.",
        "de": "Es kostet {p}.",
        "fr": "Ça coûte {p}.",
        "es": "Cuesta {p}.",
    }
    return _filled(templates, p=_per_lang(lambda lang: price_phrase(euros, cents, lang)))


def train_departure(rng: random.Random) -> dict[str, str]:
    hour, minute = rng.randint(1, 12), 5 * rng.randint(0, 11)
    templates = {
        "en": "The train leaves {time}.",
        "de": "Der Zug fährt {time} ab.",
        "fr": "Le train part {time}.",
        "es": "El tren sale {time}.",
    }
    return _filled(templates, time=_per_lang(lambda lang: time_phrase(hour, minute, lang)))


def born(rng: random.Random) -> dict[str, str]:
    year = rng.randint(1950, 2024)
    templates = {
        "en": "She was born in {year}.",
        "de": "Sie wurde {year} geboren.",
        "fr": "Elle est née en {year}.",
        "es": "Ella nació en {year}.",
    }
    return _filled(templates, year=_per_lang(lambda lang: year_words(year, lang)))


def birthday(rng: random.Random) -> dict[str, str]:
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    templates = {
        "en": "My birthday is {date}.",
        "de": "Mein Geburtstag ist {date}.",
        "fr": "Mon anniversaire est {date}.",
        "es": "Mi cumpleaños es {date}.",
    }
    return _filled(templates, date=_per_lang(lambda lang: date_phrase(day, month, lang)))


def office_floor(rng: random.Random) -> dict[str, str]:
    floor = rng.randint(1, 20)
    templates = {
        "en": "The office is {floor}.",
        "de": "Das Büro ist {floor}.",
        "fr": "Le bureau est {floor}.",
        "es": "La oficina está {floor}.",
    }
    return _filled(templates, floor=_per_lang(lambda lang: ordinal_floor(floor, lang)))


def distance(rng: random.Random) -> dict[str, str]:
    n = _count(rng, 2, 999)
    templates = {
        "en": "The city is {d} away.",
        "de": "Die Stadt ist {d} entfernt.",
        "fr": "La ville est à {d}.",
        "es": "La ciudad está a {d}.",
    }
    return _filled(templates, d=_per_lang(lambda lang: KILOMETRES.counted(n, lang)))


def temperature(rng: random.Random) -> dict[str, str]:
    n = _count(rng, 2, 40)
    templates = {
        "en": "Today it is {t}.",
        "de": "Heute sind es {t}.",
        "fr": "Aujourd'hui, il fait {t}.",
        "es": "Hoy hace {t}.",
    }
    return _filled(templates, t=_per_lang(lambda lang: DEGREES.counted(n, lang)))


def phone(rng: random.Random) -> dict[str, str]:
    number = "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(6, 9)))
    templates = {
        "en": "My phone number is {n}.",
        "de": "Meine Telefonnummer ist {n}.",
        "fr": "Mon numéro de téléphone est le {n}.",
        "es": "Mi número de teléfono es el {n}.",
    }
    return _filled(templates, n=_per_lang(lambda lang: digits(number, lang)))


def percent(rng: random.Random) -> dict[str, str]:
    n = rng.randint(2, 99)
    templates = {
        "en": "Prices rose by {n} percent.",
        "de": "Die Preise sind um {n} Prozent gestiegen.",
        "fr": "Les prix ont augmenté de {n} pour cent.",
        "es": "Los precios subieron un {n} por ciento.",
    }
    return _filled(templates, n=_per_lang(lambda lang: cardinal(n, lang)))


def people(rng: random.Random) -> dict[str, str]:
    n = _count(rng, 2, 300)
    templates = {
        "en": "There are {p} in the room.",
        "de": "Im Raum sind {p}.",
        "fr": "Il y a {p} dans la salle.",
        "es": "Hay {p} en la sala.",
    }
    return _filled(templates, p=_per_lang(lambda lang: PEOPLE.counted(n, lang)))


def flight(rng: random.Random) -> dict[str, str]:
    hours, minutes = rng.randint(2, 14), 5 * rng.randint(2, 11)
    templates = {
        "en": "The flight takes {h} and {m}.",
        "de": "Der Flug dauert {h} und {m}.",
        "fr": "Le vol dure {h} et {m}.",
        "es": "El vuelo dura {h} y {m}.",
    }
    return _filled(
        templates,
        h=_per_lang(lambda lang: HOURS.counted(hours, lang)),
        m=_per_lang(lambda lang: MINUTES.counted(minutes, lang)),
    )


#: Sentence generators drawn for multi-sentence utterances (``number_alone`` is drawn separately).
SENTENCES: tuple[Callable[[random.Random], dict[str, str]], ...] = (
    meeting,
    bought,
    need,
    price,
    train_departure,
    born,
    birthday,
    office_floor,
    distance,
    temperature,
    phone,
    percent,
    people,
    flight,
)


def join_sentences(parts: list[dict[str, str]]) -> dict[str, str]:
    """Concatenate sentences into one utterance text per language."""
    return {lang: " ".join(part[lang] for part in parts) for lang in LANGUAGES}


# Sentence punctuation removed without PnC. Apostrophes and hyphens inside words stay
# (j'ai, o'clock, quatre-vingts, as-tu): they are spelling, not punctuation.
_PUNCT = re.compile(r"[.,;:!?¿¡«»\"“”()]")
_SPACES = re.compile(r"\s+")


def without_pnc(text: str) -> str:
    """The lower-case, unpunctuated form of a text (the target when ``pnc`` is off)."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip().lower()
