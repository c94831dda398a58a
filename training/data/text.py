"""Broad English text from packaged sources: assistant commands, dictation, names, places, numbers.

Sources: Faker (many locales, for people, places, companies, products), Debian's fortunes
(dictation-like prose), wordfreq (common-word vocabulary), num2words (numbers spoken as words).
Every sentence passes through `normalize_text`, the same normalisation WER uses, so targets are
lowercase words with numbers spelled out. A stable hash splits sentences into train and dev.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from faker import Faker

from shared.text import normalize_text

FORTUNE_DIR = Path("/usr/share/games/fortunes")
FAKER_LOCALES = ["en_US", "en_GB", "en_IN", "en_AU", "en_IE", "de_DE", "fr_FR", "es_ES", "it_IT",
                 "nl_NL", "pl_PL", "sv_SE", "pt_BR", "tr_TR", "cs_CZ", "fi_FI"]


def pin_hash_seed() -> None:
    """Re-run this command with PYTHONHASHSEED=0 unless it already has it. Faker builds some locales'
    lists from sets (it_IT cities), so their order, and with it the sentences a seed gives, follows
    the interpreter's hash seed; data commands call this first so that a seed means one data set."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "PYTHONHASHSEED": "0"})


def is_dev(sentence: str, dev_share: int = 20) -> bool:
    """Deterministic held-out split: about 1/dev_share of distinct sentences are dev-only."""
    return int(hashlib.sha1(sentence.encode()).hexdigest(), 16) % dev_share == 0


def fortune_sentences(min_words: int = 3, max_words: int = 22) -> list[str]:
    out: set[str] = set()
    for path in sorted(FORTUNE_DIR.glob("*")):
        if path.suffix or path.is_dir():
            continue
        try:
            text = path.read_text(errors="ignore")
        except OSError:
            continue
        for block in text.split("\n%\n"):
            for sent in re.split(r"(?<=[.!?])\s+", " ".join(block.split())):
                if re.search(r"[^A-Za-z0-9 ,.'!?;:\-\"()]", sent):
                    continue  # skip code, ascii art, foreign scripts
                norm = normalize_text(sent)
                if min_words <= len(norm.split()) <= max_words:
                    out.add(norm)
    return sorted(out)


class EntityFaker:
    """Rare entities across locales, ascii-folded (espeak and flite read ascii best)."""

    def __init__(self, seed: int) -> None:
        self.fakers = [Faker(loc) for loc in FAKER_LOCALES]
        for i, f in enumerate(self.fakers):
            f.seed_instance(seed + i)
        self.rng = random.Random(seed)

    def _pick(self, method: str) -> str:
        for _ in range(10):
            f = self.rng.choice(self.fakers)
            try:
                value = normalize_text(str(getattr(f, method)()))
            except AttributeError:
                continue
            if value:
                return value
        return "alex"

    def person(self) -> str:
        return self._pick(self.rng.choice(["name", "first_name", "first_name", "last_name"]))

    def city(self) -> str:
        return self._pick("city")

    def company(self) -> str:
        return self._pick("company")

    def street(self) -> str:
        return self._pick("street_name")

    def product(self) -> str:
        en = self.fakers[0]
        return normalize_text(self.rng.choice([en.word() + " " + en.word(), self._pick("last_name") + " " + en.word()]))

    def drug(self) -> str:
        stems = ["ator", "azol", "icil", "omab", "oxin", "afen", "idine", "amycin", "prazole", "sartan"]
        return normalize_text(self._pick("last_name")[:4] + self.rng.choice(stems))


TIMES = ["seven thirty", "noon", "half past six", "a quarter to nine", "eight a m", "five p m", "midnight", "ten fifteen"]
DAYS = ["today", "tomorrow", "on monday", "on friday", "next week", "this evening", "on the weekend"]

# Each template takes (entities, rng) and returns a sentence; entity kind drives context SFT.
TEMPLATES: list[tuple[str, str]] = [
    ("person", "call {e}"),
    ("person", "send a message to {e} saying i will be late"),
    ("person", "remind me to call {e} {day}"),
    ("person", "what is {e}'s phone number"),
    ("person", "set up a meeting with {e} {day} at {time}"),
    ("person", "did {e} reply to my email"),
    ("city", "what is the weather like in {e} {day}"),
    ("city", "book a flight to {e} {day}"),
    ("city", "how far is {e} from here"),
    ("city", "show me hotels in {e}"),
    ("company", "open the {e} app"),
    ("company", "when does {e} close {day}"),
    ("company", "find the nearest {e} store"),
    ("street", "navigate to {num} {e}"),
    ("street", "how long does it take to drive to {e}"),
    ("product", "add {e} to my shopping list"),
    ("product", "order two packs of {e}"),
    ("drug", "remind me to take my {e} at {time}"),
    ("drug", "how often should i take {e}"),
]

PLAIN = [
    "set an alarm for {time}", "what time is it", "turn off the lights in the kitchen",
    "play some relaxing music", "how many days until christmas", "set a timer for {num} minutes",
    "what is {num} times {num2}", "turn the volume down", "read me the news", "what is on my calendar {day}",
    "is it going to rain {day}", "skip this song", "how tall is mount everest", "tell me a joke",
]


def fill(template: str, rng: random.Random, entity: str = "") -> str:
    from num2words import num2words

    return normalize_text(
        template.format(
            e=entity, day=rng.choice(DAYS), time=rng.choice(TIMES),
            num=num2words(rng.randint(1, 400)), num2=num2words(rng.randint(2, 12)),
        )
    )


def entity_sentence(ents: EntityFaker, rng: random.Random, kind: str | None = None) -> tuple[str, str, str]:
    """(sentence, entity, kind) from a random entity template."""
    kind_, template = rng.choice([t for t in TEMPLATES if kind is None or t[0] == kind])
    entity = getattr(ents, kind_)()
    return fill(template, rng, entity), entity, kind_


def word_sentence(rng: random.Random, words: list[str]) -> str:
    """Common words in random order: teaches the acoustic model words outside the templates."""
    return " ".join(rng.choice(words) for _ in range(rng.randint(4, 10)))


def fortune_stream(seed: int, dev: bool) -> Iterator[tuple[str, str]]:
    """Endless fortunes of the train or dev split (no entities): most of every dev set's sentences."""
    rng = random.Random(seed)
    fortunes = [s for s in fortune_sentences() if is_dev(s) == dev]
    while True:
        yield rng.choice(fortunes), ""


def sentence_stream(seed: int, dev: bool) -> Iterator[tuple[str, str]]:
    """Endless (sentence, entity or "") mix for synthesis, filtered to the train or dev split."""
    rng = random.Random(seed)
    ents = EntityFaker(seed)
    fortunes = [s for s in fortune_sentences() if is_dev(s) == dev]
    from wordfreq import top_n_list  # only the sentence stream needs it (EntityFaker does not)

    words = [w for w in top_n_list("en", 8000) if w.isalpha() and w.isascii()]
    makers: list[tuple[float, Callable[[], tuple[str, str]]]] = [
        (0.35, lambda: (rng.choice(fortunes), "")),
        (0.35, lambda: entity_sentence(ents, rng)[:2]),
        (0.15, lambda: (fill(rng.choice(PLAIN), rng), "")),
        (0.15, lambda: (word_sentence(rng, words), "")),
    ]
    weights = [w for w, _ in makers]
    while True:
        _, make = rng.choices(makers, weights)[0]
        sent, entity = make()
        if sent and is_dev(sent) == dev:
            yield sent, entity
