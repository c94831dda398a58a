"""Numbers the decoder left half in words, written as people write them (shared/written_numbers.py)."""

from __future__ import annotations

import pytest

from shared.text import normalize_text
from shared.written_numbers import format_numbers, ordinal


@pytest.mark.parametrize("decoded, written", [
    ("How much is 81 dollars and 75 cents in euros?", "How much is $81.75 in euros?"),
    ("How much is $54 and 10 cents?", "How much is $54.10?"),
    ("It is 3 dollars and 5 cents.", "It is $3.05."),
    ("Send 86 dollars to Robert.", "Send $86 to Robert."),
    ("It costs 1,500 dollars.", "It costs $1,500."),
    ("Add 100 and 64 paper cups.", "Add 164 paper cups."),
    ("Navigate to 100 and 1 Jones Road.", "Navigate to 101 Jones Road."),
    ("Show me photos from 2000 and 6.", "Show me photos from 2006."),
    ("Did he pay me 300 and 8 dollars?", "Did he pay me $308?"),
    ("Pay it on the second of October.", "Pay it on the 2nd of October."),
    ("Meet on the twenty-first of May.", "Meet on the 21st of May."),
    ("Set an alarm for 510.", "Set an alarm for 5:10."),
    ("Set an alarm for 11.30 tonight.", "Set an alarm for 11:30 tonight."),
    # left alone: two numbers, a percentage, a fraction of a second, a price, an ordinal that is no date
    ("Pick a number between 100 and 64.", "Pick a number between 100 and 64."),
    ("We had 100 and 250 guests.", "We had 100 and 250 guests."),
    ("It rose by 100 and 50% more.", "It rose by 100 and 50% more."),
    ("I sold it for 4.50.", "I sold it for 4.50."),
    ("The second of them came in May.", "The second of them came in May."),
    ("I paid $12.99 for it.", "I paid $12.99 for it."),
    ("It is 1, 200 and 5.", "It is 1, 200 and 5."),
    ("Two years passed in 2000 and 5 years later.", "Two years passed in 2000 and 5 years later."),
    ("Add 1000 and 500.", "Add 1000 and 500."),
    ("Set an alarm for 120 minutes.", "Set an alarm for 120 minutes."),
    ("Set an alarm for 100 seconds.", "Set an alarm for 100 seconds."),
])
def test_format_numbers_writes_what_the_decoder_half_spelled(decoded: str, written: str) -> None:
    assert format_numbers(decoded) == written


@pytest.mark.parametrize("decoded", ["Add 100 and 64 paper cups.", "How much is 81 dollars and 75 cents?",
                                     "Show me photos from 2000 and 6.", "Pay it on the second of October."])
def test_the_written_number_says_the_same_words(decoded: str) -> None:
    # the spoken form of what we write is what was said (money drops the "and" before the cents, as shared/text.py
    # reads "$81.75")
    said = {"Add 100 and 64 paper cups.": "add one hundred and sixty four paper cups",
            "How much is 81 dollars and 75 cents?": "how much is eighty one dollars seventy five cents",
            "Show me photos from 2000 and 6.": "show me photos from two thousand and six",
            "Pay it on the second of October.": "pay it on the second of october"}[decoded]
    assert normalize_text(format_numbers(decoded)) == said


def test_ordinal_suffixes() -> None:
    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st", "101st", "111th"]
