"""The one text normalisation, used for training targets, for WER (both sides) and for `normalized_text` in
API responses: the spoken form of a text, lowercase, no punctuation, accents folded to ascii, numerals written
out as a person says them, so that a peer writing "7:30 pm", "$5.50" or "the 3rd" is not counted wrong against
"seven thirty p m", "five dollars fifty cents", "the third".

Text without digits comes out exactly as it always has: NFKC, then NFKD with everything non-ascii dropped
(non-Latin scripts come out empty: known, out of scope), lowercase, "&" -> "and", "%" -> "percent", hyphens
split words, any other character but letters and inner apostrophes ("don't") ends a word.

Digits are read by the rules below, applied in this order (each only where digits are):
  currency    "$5" five dollars, "$1" one dollar, "$5.50" five dollars fifty cents, "$0.99" ninety nine cents,
              "$2.5 million" two point five million dollars; also pounds (pence) and euros (cents)
  degrees     "72°F" seventy two degrees fahrenheit, "20 °C" twenty degrees celsius, "90°" ninety degrees
  phones      "555-123-4567", "(555) 123-4567", "+1 555 123 4567", "1-800-555-1234": digit by digit, "+" dropped
  iso dates   "2024-12-25" twenty twenty four twelve twenty five ("12/25/2024" reads the same: "/" is a pause)
  ranges      "5-10" five to ten, "9am-5pm" nine a m to five p m, "2010–2015" twenty ten to twenty fifteen
  times       "7:30" seven thirty, "7:05" seven oh five, "7:00" seven o'clock, "7:00 pm" seven p m, "7pm" seven p m,
              "6.15 p.m." six fifteen p m (a dot only makes a time when am/pm follows); am/pm -> "a m" / "p m"
  decades     "1980s" nineteen eighties, "the '80s" eighties
  ordinals    "3rd" third, "21st" twenty first
  negatives   "-5" minus five (a "-" that does not follow a word or a number)
  years       a lone 1100-1999 or 2010-2099 (no comma, no decimal point, no "%" after, not money) is a year:
              "1984" nineteen eighty four, "2024" twenty twenty four, "1500" (meters too) fifteen hundred;
              "1,500" (with a comma) is one thousand five hundred
  numbers     cardinals as num2words writes them, "and" kept: "105" one hundred and five; decimals read the
              digits after the point one by one: "0.25" zero point two five; a number with a leading zero
              ("007"), more than nine digits without separators (ids, phone numbers) or more than eighteen with
              them is read digit by digit, so no input makes this raise.
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

_DIGITS = dict(zip("0123456789", "zero one two three four five six seven eight nine".split()))
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents")}
_AMPM = r"\s*([ap])\.?\s?m\b\.?"  # am, a.m., a. m., AM, A.M. (lowercased before this runs)
_INT = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"  # 1,500 or 1500


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII | re.IGNORECASE)


_MONEY = _re(rf"([$£€])\s?({_INT})(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion)\b)?")
_DEGREES = _re(r"(?<=\d)\s?°\s?(?:([cf])(?![a-z]))?")
_DASH = _re(r"(?<=\d)\s?[‐‑‒–−]\s?(?=\d)|(?<!\w)−(?=\d)")  # unicode dashes and minus signs next to digits
_PHONE = _re(r"(?<![\d.])(?:\+\d{1,3}[ .-]?|1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])")
_ISO_DATE = _re(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_RANGE = _re(r"(\d(?:\s*[ap]\.?\s?m\.?\s*)?)-\s*(?=\d)")
_CLOCK = _re(rf"(?<![\d:.])(\d{{1,2}}):([0-5]\d)(?![\d:])(?:{_AMPM})?")
_AMPM_TIME = _re(rf"(?<![\d:.])(\d{{1,2}})(?:\.([0-5]\d))?{_AMPM}")
_DECADE = _re(r"(?<![\d.,])'?([1-9]0|1[1-9]\d0|20\d0)'?s\b")
_ORDINAL = _re(rf"\b({_INT})(?:st|nd|rd|th)\b")
_NEGATIVE = _re(r"(?<![\w-])-(?=\d)")
_YEAR = _re(r"(?<![\d.,])(1[1-9]\d\d|20[1-9]\d)(?!\d|[.,]\d|\s*%)")
_NUMBER = _re(rf"({_INT})(?:\.(\d+)(?!\d|\.\d))?")
_KEEP = re.compile(r"[^a-z' ]+")


def _words(number: int, to: str = "cardinal") -> str:
    """num2words without its hyphens and commas ("twenty-one" -> "twenty one"), padded to stay a separate word."""
    return " " + str(num2words(number, to=to)).replace("-", " ").replace(",", "") + " "


def _digits(token: str) -> str:
    return " " + " ".join(_DIGITS[c] for c in token if c in _DIGITS) + " "


def _cardinal(token: str) -> str:
    digits = token.replace(",", "")
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > (18 if "," in token else 9):
        return _digits(digits)
    try:
        return _words(int(digits))
    except (OverflowError, ValueError, NotImplementedError):
        return _digits(digits)


def _decimal(whole: str, fraction: str | None) -> str:
    return _cardinal(whole) + (" point" + _digits(fraction) if fraction else "")


def _money(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m[1]]
    whole, fraction, scale = m[2], m[3], (m[4] or "").lower()
    if scale or (fraction and len(fraction) != 2):  # $2.5 million, $5.5: the amount as a decimal
        return f"{_decimal(whole, fraction)} {scale} {many} "
    units, cents = whole.replace(",", "").lstrip("0"), (fraction or "").lstrip("0")
    spoken = f"{_cardinal(whole)} {one if units == '1' else many} " if units or not cents else ""
    return spoken + (f"{_cardinal(cents)} {sub_one if cents == '1' else sub_many} " if cents else "")


def _degrees(m: re.Match[str]) -> str:
    scale = {"c": " celsius", "f": " fahrenheit"}.get((m[1] or "").lower(), "")
    return " degrees" + scale + " "


def _phone(m: re.Match[str]) -> str:
    return _digits(m[0])


def _time(m: re.Match[str]) -> str:
    hour, minutes, ampm = m[1], m[2], m[3]
    spoken = _words(int(hour))
    if minutes and minutes != "00":
        spoken += (" oh" + _digits(minutes[1])) if minutes[0] == "0" else _words(int(minutes))
    elif minutes and not ampm:
        spoken += " o'clock"
    return spoken + (f" {ampm} m " if ampm else " ")


def _decade(m: re.Match[str]) -> str:
    words = _words(int(m[1]), to="year" if len(m[1]) == 4 else "cardinal").split()
    last = words[-1][:-1] + "ies" if words[-1].endswith("y") else words[-1] + "s"
    return " " + " ".join([*words[:-1], last]) + " "


def _ordinal(m: re.Match[str]) -> str:
    digits = m[1].replace(",", "")
    return _digits(digits) if len(digits) > 18 else _words(int(digits), to="ordinal")


def _year(m: re.Match[str]) -> str:
    return _words(int(m[1]), to="year")


def _number(m: re.Match[str]) -> str:
    return _decimal(m[1], m[2])


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # symbols that ascii folding would drop are read first, wherever digits go with them
    text = _MONEY.sub(_money, text)
    text = _DEGREES.sub(_degrees, text)
    text = _DASH.sub("-", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = _PHONE.sub(_phone, text)
    text = _ISO_DATE.sub(r"\1 \2 \3", text)
    text = _RANGE.sub(r"\1 to ", text)
    text = _CLOCK.sub(_time, text)
    text = _AMPM_TIME.sub(_time, text)
    text = _DECADE.sub(_decade, text)
    text = _ORDINAL.sub(_ordinal, text)
    text = _NEGATIVE.sub(" minus ", text)
    text = _YEAR.sub(_year, text)
    text = _NUMBER.sub(_number, text)
    text = text.replace("&", " and ").replace("%", " percent ").replace("-", " ")
    text = _KEEP.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)
