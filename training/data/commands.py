"""Assistant commands and questions with a written reference and the words a reserved voice says (evaluation only).

    python -m training.data.commands --out data/dev_commands --count 120 --seed 201

Measures written-form output (casing, end marks, digits), which WER after `normalize_text` cannot see:
"Set an alarm for 7:30 tomorrow." is written as a person writes it, while the voice reads
"set an alarm for seven thirty tomorrow". Both come from the same template slots, so neither depends
on a normaliser. Each row also lists the digit strings (`numbers`) and proper names (`names`) that a
written transcript must contain, and whether the turn is a question (about 40% are).

Rows: id, audio, duration, text (written), spoken, numbers, names, question, voice.
The TTS input is `spoken` with two changes that only steer prosody: "A M"/"P M" in capitals (flite
and ked read a lowercase "a m" as the article: Whisper then heard "9 o'clock" or "9pm") and commas
between the groups of a phone number (the pauses people make; without them Whisper wrote "5551-234567").
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from faker import Faker
from num2words import num2words

from training.data.synth import Job, eval_set_args, run_job
from training.data.text import pin_hash_seed

QUESTION_SHARE = 0.4
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
STREET_SUFFIXES = ["Street", "Road", "Avenue", "Lane", "Drive"]
DAYS = [("tomorrow", "tomorrow"), ("today", "today"), ("on Monday", "on monday"), ("on Friday", "on friday"),
        ("tonight", "tonight"), ("", "")]


def words(n: int | float, to: str = "cardinal") -> str:
    """num2words without its hyphens and commas: "forty-five" -> "forty five"."""
    return re.sub(r"\s+", " ", str(num2words(n, to=to)).replace("-", " ").replace(",", " ")).strip()


@dataclass
class Slot:
    """One filled template slot: how it is written, what is said, what the TTS is given, what must appear."""

    written: str
    spoken: str
    say: str = ""  # TTS input when it differs from spoken (prosody only)
    numbers: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def _named(name: str) -> Slot:
    """A name, said as written (in lower case) and scored as a name."""
    return Slot(name, name.lower(), names=[name])


class Slots:
    """Slot makers; one seeded rng and Faker so that a seed means one data set."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.fakers = [Faker(loc) for loc in ("en_US", "en_GB")]
        for i, f in enumerate(self.fakers):
            f.seed_instance(seed + i)

    def _faker(self) -> Faker:
        return self.rng.choice(self.fakers)

    def _ascii(self, method: str) -> str:
        for _ in range(20):
            value = str(getattr(self._faker(), method)())
            if re.fullmatch(r"[A-Z][a-z]+(?: [A-Z][a-z]+)*", value):
                return value
        return "Taylor"

    def time(self) -> Slot:
        hour, minute = self.rng.randint(1, 12), self.rng.choice([0, 5, 10, 15, 20, 30, 40, 45, 50])
        said_min = "" if minute == 0 else (" oh " + words(minute) if minute < 10 else " " + words(minute))
        if minute == 0 or self.rng.random() < 0.4:  # whole hours always carry a.m./p.m.
            half = self.rng.choice(["a", "p"])
            written = (f"{hour}" if minute == 0 else f"{hour}:{minute:02d}") + f" {half}.m."
            spoken = f"{words(hour)}{said_min} {half} m"
            return Slot(written, spoken, f"{words(hour)}{said_min} {half.upper()} M", [written])
        written = f"{hour}:{minute:02d}"
        return Slot(written, f"{words(hour)}{said_min}", numbers=[written])

    def money(self) -> Slot:
        kind = self.rng.random()
        if kind < 0.45:
            dollars, cents = self.rng.randint(2, 99), self.rng.choice([5, 10, 25, 50, 75, 99])
            written = f"${dollars}.{cents:02d}"
            spoken = f"{words(dollars)} dollars and {words(cents)} cents"
        elif kind < 0.8:
            dollars = self.rng.randint(10, 500)
            written, spoken = f"${dollars}", f"{words(dollars)} dollars"
        else:
            dollars = self.rng.randint(11, 99) * 100 + self.rng.choice([0, 50])
            written, spoken = f"${dollars:,}", f"{words(dollars)} dollars"
        return Slot(written, spoken, numbers=[written])

    def percent(self) -> Slot:
        n = self.rng.choice([5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 60, 65, 70, 75, 80, 85, 90])
        return Slot(f"{n}%", f"{words(n)} percent", numbers=[f"{n}%"])

    def year(self) -> Slot:
        y = self.rng.randint(1950, 2023)
        return Slot(str(y), words(y, to="year"), numbers=[str(y)])

    def date(self) -> Slot:
        month, day = self.rng.choice(MONTHS), self.rng.randint(1, 28)
        ordinal = f"{day}{'th' if 11 <= day <= 13 else {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th')}"
        if self.rng.random() < 0.6:
            return Slot(f"{month} {ordinal}", f"{month.lower()} {words(day, to='ordinal')}", numbers=[ordinal])
        return Slot(f"the {ordinal} of {month}", f"the {words(day, to='ordinal')} of {month.lower()}", numbers=[ordinal])

    def phone(self) -> Slot:
        groups = [str(self.rng.randint(200, 999)), f"{self.rng.randint(0, 999):03d}", f"{self.rng.randint(0, 9999):04d}"]
        said = [" ".join(words(int(d)) if d != "0" else "oh" for d in g) for g in groups]
        written = "-".join(groups)
        return Slot(written, " ".join(said), ", ".join(said), numbers=[written])

    def count(self, low: int = 10, high: int = 200) -> Slot:
        n = self.rng.randint(low, high)  # from ten up: style guides spell out one to nine
        return Slot(str(n), words(n), numbers=[str(n)])

    def minutes(self) -> Slot:
        return self.count(10, 90)

    def degrees(self) -> Slot:
        return self.count(60, 78)

    def person(self) -> Slot:
        return _named(f"{self._ascii('first_name')} {self._ascii('last_name')}")

    def first_name(self) -> Slot:
        return _named(self._ascii("first_name"))

    def city(self) -> Slot:
        return _named(self._ascii("city"))

    def street(self) -> Slot:
        return _named(f"{self._ascii('last_name')} {self.rng.choice(STREET_SUFFIXES)}")

    def country(self) -> Slot:
        return _named(self._ascii("country"))

    def day(self) -> Slot:
        written, spoken = self.rng.choice(DAYS)
        return Slot(written, spoken)


# Written templates: {slot} names a Slots method (each occurrence a fresh draw); a "?" at the end makes a question.
COMMANDS: list[str] = [
    "Set an alarm for {time} {day}.",
    "Transfer {money} to {person}.",
    "Turn the volume down to {percent}.",
    "Call {person} at {phone}.",
    "Remind me on {date} to call the dentist.",
    "Set a timer for {minutes} minutes.",
    "Send {money} to {first_name} for dinner.",
    "Set the thermostat to {degrees} degrees.",
    "Text {person} that I will be there at {time}.",
    "Navigate to {count} {street}.",
    "Dim the lights in the living room to {percent}.",
    "Schedule a meeting with {person} on {date} at {time}.",
    "Play the top songs from {year}.",
    "Save {phone} as {first_name}'s number.",
    "Book a flight to {city} on {date}.",
    "Pay the electricity bill of {money} on {date}.",
    "Add {count} paper cups to my shopping list.",
    "Show me photos from {year} with {first_name}.",
]
QUESTIONS: list[str] = [
    "What was the population of {country} in {year}?",
    "Is it going to rain in {street} at {time}?",
    "What is the weather like in {city} on {date}?",
    "How much is {money} in euros?",
    "Did {person} pay me {money}?",
    "What is {percent} of {count}?",
    "Who won the World Cup in {year}?",
    "What time does the last train to {city} leave after {time}?",
    "Can you call {person} at {phone}?",
    "Is my battery above {percent}?",
    "Do I have anything on {date} at {time}?",
    "How long does it take to drive to {count} {street}?",
]
_SLOT = re.compile(r"\{(\w+)\}")


@dataclass
class Command:
    text: str  # written reference
    spoken: str  # what the voice says: lowercase words, no digits, no punctuation
    say: str  # TTS input
    numbers: list[str]
    names: list[str]
    question: bool


def fill(template: str, slots: Slots) -> Command:
    """Both forms of one template: the written one as is, the spoken one from the slots' spoken words."""
    filled: list[Slot] = []

    def make(m: re.Match[str]) -> str:
        filled.append(getattr(slots, m.group(1))())
        return f"\0{len(filled) - 1}\0"

    skeleton = _SLOT.sub(make, template)

    def render(pick: Callable[[Slot], str]) -> str:
        return re.sub(r"\s+", " ", re.sub(r"\0(\d+)\0", lambda m: pick(filled[int(m.group(1))]), skeleton)).strip()

    written = re.sub(r"\s+([.?!])$", r"\1", render(lambda s: s.written)).replace("m..", "m.")  # "at 9 a.m."
    spoken = re.sub(r"[.?!]", "", render(lambda s: s.spoken).lower()).strip()
    say = re.sub(r"[.?!]", "", render(lambda s: s.say or s.spoken)).strip()
    if re.search(r"\d", spoken):
        raise ValueError(f"digits left in the spoken form: {spoken!r}")
    return Command(written, spoken, say, [n for s in filled for n in s.numbers], [n for s in filled for n in s.names],
                   template.endswith("?"))


def plan(count: int, seed: int) -> list[Command]:
    """count turns, a QUESTION_SHARE of them questions; each pool cycled in a shuffled order so every template is used."""
    rng, slots = random.Random(seed), Slots(seed)
    pools = {False: COMMANDS[:], True: QUESTIONS[:]}
    order: dict[bool, list[str]] = {False: [], True: []}
    out = []
    for i in range(count):
        question = i % 5 in (1, 3)  # QUESTION_SHARE: 2 in every 5
        if not order[question]:
            order[question] = rng.sample(pools[question], len(pools[question]))
        out.append(fill(order[question].pop(), slots))
    return out


def main() -> None:
    pin_hash_seed()
    args, voices = eval_set_args(__doc__ or "", 120, 201, "training voices make the confidence calibration set")
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, cmd in enumerate(plan(args.count, args.seed)):
        voice = voices[i % len(voices)]
        row = run_job(Job(f"{args.out.name}-{i:04d}", cmd.say, "", voice, 175, 50, args.seed * 1_000_003 + i, str(args.out),
                          augment=False))
        if row is None:
            print(f"{voice} failed on {cmd.say!r}")
            continue
        rows.append({"id": row["id"], "audio": row["audio"], "duration": row["duration"], "text": cmd.text,
                     "spoken": cmd.spoken, "numbers": cmd.numbers, "names": cmd.names, "question": cmd.question,
                     "voice": voice})
    (args.out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} command rows in {args.out} ({sum(r['question'] for r in rows)} questions, "
          f"{sum(r['duration'] for r in rows) / 60:.1f} min)")


if __name__ == "__main__":
    main()
