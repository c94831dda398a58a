"""normalize_text: the spoken form used for WER (both sides), training targets and `normalized_text`."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from num2words import num2words

from shared.text import normalize_text

CASES = [
    # ordinary text: exactly as before the spoken-form rules
    ("Hello, World!", "hello world"),
    ("don't", "don't"),
    ("rock-and-roll", "rock and roll"),
    ("café", "cafe"),
    ("Call Siobhán, OK?", "call siobhan ok"),
    ("'quoted' words", "quoted words"),
    ("I am here at a.m. radio", "i am here at a m radio"),
    ("rock & roll", "rock and roll"),
    ("twenty-one", "twenty one"),
    ("", ""),
    ("   ", ""),
    # times
    ("Set an alarm for 7:30", "set an alarm for seven thirty"),
    ("7:05", "seven oh five"),
    ("7:00", "seven o'clock"),
    ("12:00", "twelve o'clock"),
    ("7:00 pm", "seven p m"),
    ("10:45 a.m.", "ten forty five a m"),
    ("6.15 p.m.", "six fifteen p m"),
    ("7pm", "seven p m"),
    ("7 PM", "seven p m"),
    ("7 A.M.", "seven a m"),
    ("7 AM", "seven a m"),
    ("07:30", "seven thirty"),
    ("19:45", "nineteen forty five"),
    ("7:30:15", "seven thirty fifteen"),
    ("John 3:16", "john three sixteen"),
    ("I have 2 apples", "i have two apples"),
    ("5 a man", "five a man"),
    # decimals
    ("3.5", "three point five"),
    ("0.25", "zero point two five"),
    ("98.6", "ninety eight point six"),
    ("6.15", "six point one five"),
    ("I have 5.", "i have five"),
    # currency
    ("$5", "five dollars"),
    ("$1", "one dollar"),
    ("$ 5", "five dollars"),
    ("$5.50", "five dollars fifty cents"),
    ("$1.01", "one dollar one cent"),
    ("$5.00", "five dollars"),
    ("$0.99", "ninety nine cents"),
    ("$1,200", "one thousand two hundred dollars"),
    ("$1500", "one thousand five hundred dollars"),
    ("$2.5 million", "two point five million dollars"),
    ("$3 Billion", "three billion dollars"),
    ("£20", "twenty pounds"),
    ("£0.50", "fifty pence"),
    ("€15", "fifteen euros"),
    ("20 dollars", "twenty dollars"),
    ("1,500 people paid $5", "one thousand five hundred people paid five dollars"),
    # percentages
    ("15%", "fifteen percent"),
    ("2.5%", "two point five percent"),
    ("1999%", "one thousand nine hundred and ninety nine percent"),
    ("It's 100% — twenty-one!", "it's one hundred percent twenty one"),
    # years and cardinals
    ("in 1999", "in nineteen ninety nine"),
    ("1984", "nineteen eighty four"),
    ("2024", "twenty twenty four"),
    ("2010", "twenty ten"),
    ("1905", "nineteen oh five"),
    ("1500", "fifteen hundred"),
    ("2000", "two thousand"),
    ("2009", "two thousand and nine"),
    ("1,500", "one thousand five hundred"),
    ("1,999", "one thousand nine hundred and ninety nine"),
    ("1999.5", "one thousand nine hundred and ninety nine point five"),
    ("105", "one hundred and five"),
    ("Go forward 10 meters.", "go forward ten meters"),
    ("3000", "three thousand"),
    ("1,000,000,000", "one billion"),
    ("007", "zero zero seven"),
    ("the 1980s", "the nineteen eighties"),
    ("the '80s", "the eighties"),
    ("in her 20s", "in her twenties"),
    # ordinals
    ("3rd", "third"),
    ("21st", "twenty first"),
    ("May 5th", "may fifth"),
    ("The 3rd of May, the 21st floor", "the third of may the twenty first floor"),
    ("1,000th", "one thousandth"),
    # dates
    ("5/12", "five twelve"),
    ("12/25/2024", "twelve twenty five twenty twenty four"),
    ("2024-12-25", "twenty twenty four twelve twenty five"),
    # ranges
    ("5-10", "five to ten"),
    ("5–10", "five to ten"),
    ("9am-5pm", "nine a m to five p m"),
    ("9 am - 5 pm", "nine a m to five p m"),
    ("2010-2015", "twenty ten to twenty fifteen"),
    ("COVID-19", "covid nineteen"),
    # phone numbers
    ("555-123-4567", "five five five one two three four five six seven"),
    ("(555) 123-4567", "five five five one two three four five six seven"),
    ("+1 555 123 4567", "one five five five one two three four five six seven"),
    ("1-800-555-1234", "one eight zero zero five five five one two three four"),
    ("5551234567", "five five five one two three four five six seven"),
    # negatives and temperatures
    ("-5 degrees", "minus five degrees"),
    ("−5 °C", "minus five degrees celsius"),
    ("72°F", "seventy two degrees fahrenheit"),
    ("20°C", "twenty degrees celsius"),
    ("20 ℃", "twenty degrees celsius"),
    ("turn 90°", "turn ninety degrees"),
    # unicode digits fold like before
    ("７:３０", "seven thirty"),
]


@pytest.mark.parametrize(("text", "spoken"), CASES)
def test_spoken_form(text: str, spoken: str) -> None:
    assert normalize_text(text) == spoken


def test_written_suffixes_only_when_glued() -> None:
    assert normalize_text("4th, 1st") != normalize_text("4 th 1 st")


@pytest.mark.parametrize("text", ["1" * 5000, "9" * 40 + "th", "$" + "9" * 40 + ".99", "1," + "000," * 30 + "000",
                                  "192.168.0.1", "1.2.3", "::::", "$", "£€$", "-", "--5", "12:60", "99:99 pm"])
def test_odd_numbers_do_not_crash(text: str) -> None:
    out = normalize_text(text)
    assert re.fullmatch(r"[a-z' ]*", out)
    assert normalize_text(out) == out


def test_huge_numbers_read_digit_by_digit() -> None:
    assert normalize_text("1" * 50) == " ".join(["one"] * 50)


def _before(text: str) -> str:
    """normalize_text as it was before the spoken-form rules, for text without digits."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower().replace("&", " and ").replace("%", " percent ").replace("-", " ")
    words = [w.strip("'") for w in re.sub(r"[^a-z' ]+", " ", text).split()]
    return " ".join(w for w in words if w)


def _no_digits(text: str) -> str:
    return "".join(c for c in text if not any(d.isdigit() for d in unicodedata.normalize("NFKD", c)))


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_never_raises_and_is_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert re.fullmatch(r"(?:[a-z']+(?: [a-z']+)*)?", once)
    assert normalize_text(once) == once


_WRITTEN = st.text(alphabet=st.sampled_from(list("0123456789 :.,-/$£€%°&+()apmAPMstndrh'é−–")), max_size=30)


@settings(max_examples=300, deadline=None)
@given(_WRITTEN)
def test_written_numbers_never_raise_and_are_idempotent(text: str) -> None:
    once = normalize_text(text)
    assert not re.search(r"\d", once)
    assert normalize_text(once) == once


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), _WRITTEN).map(_no_digits))
def test_text_without_digits_is_unchanged(text: str) -> None:
    assert normalize_text(text) == _before(text)


@given(st.integers(min_value=0, max_value=999_999_999))
def test_plain_numbers_read_as_num2words_cardinals_or_years(n: int) -> None:
    cardinal = num2words(n).replace("-", " ").replace(",", "")
    year = num2words(n, to="year").replace("-", " ")
    assert normalize_text(f"n {n} n") == f"n {year if 1100 <= n <= 1999 or 2010 <= n <= 2099 else cardinal} n"
