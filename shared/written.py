"""Written-form text next to its spoken form: what phrase correction and context spellings change in a transcript.

A decoder that writes text as people do (Whisper: casing, punctuation, digits) gives the written form; the spoken
form (shared/text.py: lower case, no punctuation, numbers as words) is what WER is scored on and what phrase
correction compares with context phrases. These functions carry a change made in the spoken form back into the
written words it came from, and write context words as the context spelled them ("kilbride" -> "Kilbride").
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence

from shared.text import normalize_text

_EDGE = re.compile(r"^([^\w]*)(.*?)([^\w]*)$", re.UNICODE)
_END_MARKS = ".?!"


def _split_edges(word: str) -> tuple[str, str, str]:
    """'"Street."' -> ('"', 'Street', '."'): leading punctuation, the word, trailing punctuation."""
    m = _EDGE.match(word)
    assert m is not None  # the pattern matches any string
    return m.group(1), m.group(2), m.group(3)


def spoken_words(written: str) -> tuple[list[str], list[int]]:
    """The spoken form's words of a written text, word by written word, and the written word each came from:
    "At 7:30, call Tom." -> (["at", "seven", "thirty", "call", "tom"], [0, 1, 1, 2, 3])."""
    spoken: list[str] = []
    owner: list[int] = []
    for k, word in enumerate(written.split()):
        pieces = normalize_text(word).split()
        spoken += pieces
        owner += [k] * len(pieces)
    return spoken, owner


def _sentence_start(words: Sequence[str], k: int) -> bool:
    return k == 0 or words[k - 1].endswith(tuple(_END_MARKS))


def _edits(spoken: list[str], owner: list[int], new: list[str]) -> list[tuple[int, int, int, int]]:
    """The spans (i1, i2, j1, j2) where the edited spoken words differ, merged where two fall in one written word
    (a written word speaks as one span, whichever of its pieces changed)."""
    merged: list[tuple[int, int, int, int]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=spoken, b=new, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if merged:
            p1, p2, q1, _ = merged[-1]
            last_word = owner[p2 - 1] if p2 > p1 else (owner[p1] if p1 < len(owner) else -1)
            first_word = owner[i1] if i1 < len(owner) else -2
            if first_word == last_word or (i1 > 0 and i1 < len(owner) and owner[i1 - 1] == owner[i1] == last_word):
                merged[-1] = (p1, i2, q1, j2)
                continue
        merged.append((i1, i2, j1, j2))
    return merged


_LEADING = re.compile(r"^[\"'(\[]*")
_TRAILING = re.compile(r"[.,?!;:\"')\]]*$")


def apply_spoken_edit(written: str, edited: str) -> str:
    """written text, and its spoken form (spoken_words) after an edit (phrase correction replaced a span) -> the
    written text with the edited span's written words replaced by the edit's words. Punctuation around the span and
    a sentence-initial capital stay; the words outside the span are untouched."""
    words = written.split()
    spoken, owner = spoken_words(written)
    new = edited.split()
    if spoken == new:
        return written
    out: list[str] = []
    done = 0  # written words already emitted
    for i1, i2, j1, j2 in _edits(spoken, owner, new):
        lo = owner[i1] if i1 < len(owner) else len(words)
        hi = owner[i2 - 1] + 1 if i2 > i1 else lo
        if i2 == i1 and 0 < i1 < len(owner) and owner[i1 - 1] == owner[i1]:
            hi = lo + 1  # an insertion inside a word that speaks as several: the word is rewritten whole
        lo = max(lo, done)  # a written word the previous edit already rewrote
        out += words[done:lo]
        # the written words' spoken pieces outside the edited range survive around the new words
        before = [p for p, o in zip(spoken[:i1], owner[:i1]) if o >= lo]
        after = [p for p, o in zip(spoken[i2:], owner[i2:]) if o < hi]
        replacement = [*before, *new[j1:j2], *after]
        lead = _LEADING.match(words[lo]).group(0) if hi > lo else ""  # type: ignore[union-attr]
        trail = _TRAILING.search(words[hi - 1]).group(0) if hi > lo else ""  # type: ignore[union-attr]
        if replacement:
            if hi > lo and _sentence_start(words, lo) and words[lo][len(lead):][:1].isupper():
                replacement[0] = replacement[0][:1].upper() + replacement[0][1:]
            replacement[0], replacement[-1] = lead + replacement[0], replacement[-1] + trail
        elif out and trail:  # the span vanished: keep its end mark on the word before it
            out[-1] += trail
        out += replacement
        done = max(done, hi)
    out += words[done:]
    return " ".join(out)


# Times as people write them: "5.30pm", "340am" or "at 645" -> "5:30 p.m.", "3:40 a.m.", "at 6:45". The decoder writes
# the digits; these put them in the one form an assistant parses (Riva's and Google's written form).
_MERIDIEM = r"\s?([ap])\.?\s?m\.?(?![a-z])"
_CLOCK_MERIDIEM = re.compile(r"\b(\d{1,2})[.:]?(\d{2})" + _MERIDIEM, re.IGNORECASE)
_HOUR_MERIDIEM = re.compile(r"(?<![:.\d])\b(\d{1,2})" + _MERIDIEM, re.IGNORECASE)
# "at 645", "at 6.45" or "at 6/45" only after a word that takes a time and where a time can end: the end of the sentence or a
# word that follows times ("at 1040 Main Street", "for 4.50.", "from 1000 to 2000" stay); after "for" / "by" only
# before a day ("for 115 on Friday")
_TIME_DAY = r"on|tonight|today|tomorrow|this|o'clock"
# ("at 1/40": the decoder's slash between an hour and its minutes, where a fraction has no place)
_AT_TIME = (r"\b(at|until|till|before|after)\s(\d{1,2})[./]?(\d{2})"
            r"(?=[.,?!]?$|[.,?!]?\s(?:" + _TIME_DAY + r"|and|to|in)\b|[.,?!]\s)")
_FOR_TIME = r"\b(for|by)\s(\d{1,2})\.?(\d{2})(?=\s(?:" + _TIME_DAY + r")\b)"
# an alarm is set for a time, not a price nor ("alarm for 120 minutes") a duration
_ALARM_TIME = r"\b(alarm for|wake me up at)\s(\d{1,2})[.:]?(\d{2})\b(?![.,]\d|\s(?:sec|min|hour|day)\w*\b)"
_RUN_TIME = re.compile(f"{_AT_TIME}|{_FOR_TIME}|{_ALARM_TIME}", re.IGNORECASE)


# A phone number the decoder grouped oddly ("23-0421-7221", "785-610-242-0"): ten digits in hyphenated groups, or
# eleven after a leading 1, written in the North American grouping 230-421-7221
_HYPHENATED_DIGITS = re.compile(r"(?<![\w$.-])\d+(?:-\d+){2,}(?![\w-])")


def format_phone_numbers(text: str) -> str:
    def regroup(m: re.Match[str]) -> str:
        digits = m.group(0).replace("-", "")
        if len(digits) == 11 and digits[0] == "1":
            return f"1-{digits[1:4]}-{digits[4:7]}-{digits[7:]}"
        return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}" if len(digits) == 10 else m.group(0)

    return _HYPHENATED_DIGITS.sub(regroup, text)


def _clock(hour: str, minute: str) -> str | None:
    return f"{int(hour)}:{minute}" if 1 <= int(hour) <= 12 and int(minute) < 60 else None


def format_times(text: str) -> str:
    """Clock times in written form: "h:mm", with "a.m." / "p.m." where the text says which; phone numbers grouped
    (format_phone_numbers)."""

    def clock_meridiem(m: re.Match[str]) -> str:
        clock = _clock(m.group(1), m.group(2))
        return f"{clock} {m.group(3).lower()}.m." if clock else m.group(0)

    def hour_meridiem(m: re.Match[str]) -> str:
        return f"{int(m.group(1))} {m.group(2).lower()}.m." if 1 <= int(m.group(1)) <= 12 else m.group(0)

    def after_word(m: re.Match[str]) -> str:
        word, hour, minute = (g for g in m.groups() if g is not None)
        clock = _clock(hour, minute)
        return f"{word} {clock}" if clock else m.group(0)

    text = format_phone_numbers(_CLOCK_MERIDIEM.sub(clock_meridiem, text))
    text = _HOUR_MERIDIEM.sub(hour_meridiem, text)
    return _RUN_TIME.sub(after_word, text)


# A street address: a house number, then the street's name and its kind ("69 dobson avenue" -> "69 Dobson Avenue").
# Without the number a kind word is too often a common noun; with it, a name word that is a unit or a function word
# makes a measure ("a 3 hour drive", "10 miles down the road"), not an address.
_STREET_KINDS = "street|avenue|road|drive|lane|boulevard|court|terrace|crescent|parkway|highway"
_ADDRESS = re.compile(rf"(?<![\w$.,:])(?<!\ba )(?<!\ban )(\d{{1,5}}) ((?:[a-z][a-z'-]* ){{1,2}}(?:{_STREET_KINDS}))\b(?!-)",
                      re.IGNORECASE)
_NOT_STREET_NAMES = frozenset(
    "the a an of to in on at by for from my your our their his her its this that more other minute minutes hour hours "
    "mile miles kilometer kilometers km meter meters block blocks day days week weeks foot feet yard yards".split())


def capitalise_addresses(text: str) -> str:
    """Street addresses in title case: "drive to 69 dobson avenue" -> "drive to 69 Dobson Avenue"."""

    def title(m: re.Match[str]) -> str:
        words = m.group(2).split()
        if any(w.lower() in _NOT_STREET_NAMES for w in words[:-1]):
            return m.group(0)
        return f"{m.group(1)} " + " ".join(w[:1].upper() + w[1:] for w in words)

    return _ADDRESS.sub(title, text)


# What Whisper hears that is not speech it writes in brackets ("[BLANK_AUDIO]", "[Music]") or, as the whole text, in
# parentheses ("(upbeat music)"): words nobody said, which an assistant must not read as the user's
_ANNOTATION = re.compile(r"\[[^\]\d]{1,40}\]|^\s*\([^)\d]{1,40}\)\s*$")


def without_annotations(text: str) -> str:
    """"[BLANK_AUDIO]" -> "", "Turn it up [Music]" -> "Turn it up"; text without them is returned as it is."""
    cleaned, n = _ANNOTATION.subn(" ", text)
    return re.sub(r"\s{2,}", " ", cleaned).strip() if n else text


# A turn's first word, after any opening quote or inverted mark: letters only, all lower case ("dim", "pon"); a
# word with a capital inside ("iPhone", "eBay") is written as its owner writes it
_FIRST_WORD = re.compile(r"^([\s¿¡\"'«(]*)([^\W\d_]+)(?=[\s,.;:!?'’-]|$)")


def capitalise_first_word(text: str) -> str:
    """Sentence case for a turn the decoder began in lower case: "dim the lights" -> "Dim the lights", "pon la
    calefacción" -> "Pon la calefacción" (a script without case is left as it is)."""
    m = _FIRST_WORD.match(text)
    if m is None or not m.group(2).islower():
        return text
    return text[: m.start(2)] + m.group(2)[0].upper() + text[m.start(2) + 1 :]


def spelling_map(spellings: Iterable[str]) -> dict[str, str]:
    """Context words as written -> {spoken form: written form}, the first spelling of a word winning (hotwords
    come first); words that speak as several words (numbers) are left out."""
    out: dict[str, str] = {}
    for raw in spellings:
        _, core, _ = _split_edges(raw)
        spoken = normalize_text(core).split()
        if len(spoken) == 1 and core:
            out.setdefault(spoken[0], core)
    return out


def respell(written: str, phrases: Sequence[str], spellings: dict[str, str]) -> str:
    """Write every context phrase (spoken form) that the text says, word for word, as the context spelled its words:
    "stop at kilbride street." with {"kilbride": "Kilbride", "street": "Street"} -> "stop at Kilbride Street."."""
    if not spellings or not phrases:
        return written
    words = written.split()
    spoken, owner = spoken_words(written)
    changed = False
    for phrase in phrases:
        target = phrase.split()
        n = len(target)
        if not n or any(t not in spellings for t in target):
            continue
        for i in range(len(spoken) - n + 1):
            if spoken[i : i + n] != target:
                continue
            ks = owner[i : i + n]
            # only whole written words that each speak as one word of the phrase
            if len(set(ks)) != n or (i > 0 and owner[i - 1] == ks[0]) or (i + n < len(owner) and owner[i + n] == ks[-1]):
                continue
            for k, t in zip(ks, target):
                lead, core, trail = _split_edges(words[k])
                new = spellings[t]
                if core != new:
                    words[k], changed = lead + new + trail, True
    return " ".join(words) if changed else written


def context_spellings(text: str, rare: Iterable[str] = ()) -> list[str]:
    """The words of a written context text that keep their spelling when a transcript repeats them: every word not
    at a sentence start (where a capital says nothing about the word), and at a sentence start the `rare` ones
    (spoken form: names, places)."""
    words = text.split()
    rare_set = set(rare)
    out = []
    for k, word in enumerate(words):
        _, core, _ = _split_edges(word)
        if not core:
            continue
        if not _sentence_start(words, k) or normalize_text(core) in rare_set:
            out.append(core)
    return out


def with_end_mark(text: str) -> str:
    """A context part as a sentence: "Kilbride Street" -> "Kilbride Street."."""
    text = text.strip()
    return text if not text or text.endswith(tuple(_END_MARKS)) else text + "."
