"""Numbers as people write them, where the decoder left them half in words: amounts of money, numbers said with
"hundred and" / "thousand and", and ordinal dates; then clock times and phone numbers (shared/written.py).

Whisper writes most numbers in digits, but not every time: "81 dollars and 75 cents", "100 and 64 paper cups"
(one hundred and sixty-four), "photos from 2000 and 6", "on the second of October". An assistant parses one form:
"$81.75", "164", "2006", "the 2nd of October" (Riva's and Google's written form). Each rule reads only what the
decoder wrote, so a number it misheard stays misheard.
"""

from __future__ import annotations

import re

from shared.written import format_times

_AMOUNT = r"\d{1,3}(?:,\d{3})+|\d+"
_DOLLARS_CENTS = re.compile(rf"(?:\$({_AMOUNT})|\b({_AMOUNT}) dollars?),? and (\d{{1,2}}) cents?\b", re.IGNORECASE)
_DOLLARS = re.compile(rf"(?<![$\d.,])\b({_AMOUNT}(?:\.\d{{2}})?) dollars?\b", re.IGNORECASE)
# "X00 and Y" / "X000 and Y" (Y < 100): a number said the British way, not two numbers. Left alone: a list
# ("1, 200 and 5", "between 100 and 64"), a count of something else ("2000 and 5 years"), a percentage
_HUNDRED_AND = re.compile(r"(?<![\d,.$])(?<!, )(?<!between )\b([1-9]\d?)(00|000) and (\d{1,2})\b"
                          r"(?![\d,.:]\d|%|\s(?:years?|more|percent|times|of)\b)", re.IGNORECASE)
_ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
             "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth", "seventeenth", "eighteenth",
             "nineteenth", "twentieth", "twenty-first", "twenty-second", "twenty-third", "twenty-fourth",
             "twenty-fifth", "twenty-sixth", "twenty-seventh", "twenty-eighth", "twenty-ninth", "thirtieth",
             "thirty-first"]
_MONTHS = ("January|February|March|April|May|June|July|August|September|October|November|December")
_ORDINAL_OF_MONTH = re.compile(rf"\b(the) ({'|'.join(_ORDINALS)}) of ({_MONTHS})\b", re.IGNORECASE)


def ordinal(n: int) -> str:
    """1 -> "1st", 12 -> "12th", 22 -> "22nd"."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def format_numbers(text: str) -> str:
    """An English transcript's numbers in written form: money, "hundred and" numbers, ordinal dates, then times."""

    def dollars_cents(m: re.Match[str]) -> str:
        return f"${m.group(1) or m.group(2)}.{int(m.group(3)):02d}"

    def hundred_and(m: re.Match[str]) -> str:
        lead, zeros, rest = m.group(1), m.group(2), m.group(3)
        return lead + rest.zfill(len(zeros))  # "100 and 64" is 164, "2000 and 6" 2006

    def ordinal_of_month(m: re.Match[str]) -> str:
        day = _ORDINALS.index(m.group(2).lower()) + 1
        return f"{m.group(1)} {ordinal(day)} of {m.group(3)}"

    text = _HUNDRED_AND.sub(hundred_and, text)
    text = _DOLLARS_CENTS.sub(dollars_cents, text)
    text = _DOLLARS.sub(lambda m: f"${m.group(1)}", text)
    text = _ORDINAL_OF_MONTH.sub(ordinal_of_month, text)
    return format_times(text)
