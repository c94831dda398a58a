"""Written form beside the spoken form: correction carried back into written words, context spellings, context
assembled as written, and the word-alignment pieces (time warping, word spans)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.context import ContextInput, assemble_context
from shared.model.lexicon import WORD_START
from shared.model.whisper_align import dtw_path, word_spans
from shared.tokenizer import Tokenizer
from shared.written import (
    apply_spoken_edit,
    capitalise_addresses,
    capitalise_first_word,
    context_spellings,
    format_times,
    respell,
    spelling_map,
    spoken_words,
    without_annotations,
)


def test_spoken_words_follow_written_words() -> None:
    spoken, owner = spoken_words("At 7:30, call Tom.")
    assert spoken == ["at", "seven", "thirty", "call", "tom"]
    assert owner == [0, 1, 1, 2, 3]


@pytest.mark.parametrize(("written", "edited", "expected"), [
    ("Call Carlton Mashrable please.", "call tomasz wrobel please", "Call tomasz wrobel please."),
    ("Carlton Mashrable, please.", "tomasz wrobel please", "Tomasz wrobel, please."),
    ("Stop at Kilride Street at 7:30.", "stop at kilbride street at seven thirty", "Stop at kilbride Street at 7:30."),
    ("Meet Anna at 7:30.", "meet anna at seven thirty", "Meet Anna at 7:30."),  # nothing changed: as written
    ("Call the Perry thing.", "call perry inc", "Call Perry inc."),  # an unchanged word keeps its case
    # two changes in one written word rewrite it once; a symbol is no punctuation to keep
    ("I paid $5.50 today.", "i paid six dollars fifty pence today", "I paid six dollars fifty pence today."),
    ("At 7:30, call Tom.", "at seven x thirty call tom", "At seven x thirty, call Tom."),
    ("It costs 50%.", "it costs sixty percent", "It costs sixty percent."),
])
def test_apply_spoken_edit_keeps_the_written_words_around_the_span(written: str, edited: str, expected: str) -> None:
    assert apply_spoken_edit(written, edited) == expected


def test_respell_writes_context_phrases_as_the_context_spelled_them() -> None:
    known = spelling_map(["Kilbride", "Street", "Tomasz", "Wrobel", "McGillicuddy", "7:30"])
    assert "seven" not in known  # a number is no spelling
    assert respell("Stop at kilbride street, then call tomasz wrobel.", ["kilbride street", "tomasz wrobel"], known) \
        == "Stop at Kilbride Street, then call Tomasz Wrobel."
    assert respell("Ask Mcgillicuddy.", ["mcgillicuddy"], known) == "Ask McGillicuddy."
    # a common word outside a context phrase keeps its spelling: "street" alone is not "Kilbride Street"
    assert respell("Cross the street.", ["kilbride street"], known) == "Cross the street."
    # a phrase whose words lack a spelling is left as the decoder wrote it
    assert respell("call anna", ["anna"], known) == "call anna"


def test_context_spellings_skip_sentence_initial_capitals_of_common_words() -> None:
    got = context_spellings("Calling Tomasz Wrobel. Your pharmacy on Kilbride Street closes.", rare={"tomasz", "wrobel"})
    assert "Calling" not in got and "Your" not in got
    assert {"Tomasz", "Wrobel", "Kilbride", "Street"} <= set(got)
    assert "Siobhan" in context_spellings("Siobhan called.", rare={"siobhan"})


def test_assembled_context_keeps_the_written_form(tiny_bundle: Path) -> None:
    tiny_tokenizer = Tokenizer(tiny_bundle / "tokenizer.model")
    ctx = ContextInput(turns=["I found Tomasz Wrobel.", "call tomasz wrobel please"], hotwords=["Kilbride Street"],
                       recognised=[False, True])
    got = assemble_context(tiny_tokenizer, ctx, budget=96)
    assert got.written_text == "Kilbride Street. I found Tomasz Wrobel. call tomasz wrobel please"
    assert got.text == "kilbride street | i found tomasz wrobel | call tomasz wrobel please"  # the spoken form, as before
    assert got.spellings[:2] == ["Kilbride", "Street"]  # hotwords first, as given
    assert "Tomasz" in got.spellings and "call" not in got.spellings  # never the recogniser's own words


def test_dtw_path_is_monotonic_and_follows_the_cheap_cells() -> None:
    cost = np.ones((3, 6))
    for row, cols in enumerate([(0, 1), (2, 3), (4, 5)]):
        cost[row, list(cols)] = 0.0
    rows, cols = dtw_path(cost)
    assert rows[0] == 0 and cols[0] == 0 and rows[-1] == 2 and cols[-1] == 5
    assert np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)
    first = {int(r): int(c) for r, c in reversed(list(zip(rows, cols)))}  # the first frame of each row
    assert first == {0: 0, 1: 2, 2: 4}


def test_word_spans_attach_punctuation_to_the_word_before() -> None:
    pieces = [f"{WORD_START}Call", f"{WORD_START}Tom", "asz", ".", f"{WORD_START}-", f"{WORD_START}$", "45"]
    assert word_spans(pieces, list(range(len(pieces)))) == [(0, 1), (1, 5), (5, 7)]


@pytest.mark.parametrize(("decoded", "written"), [
    ("Meet me at 5.30pm?", "Meet me at 5:30 p.m.?"),
    ("I will be there at 340am.", "I will be there at 3:40 a.m."),
    ("Wake me at 705 AM.", "Wake me at 7:05 a.m."),
    ("Call me at 7 PM.", "Call me at 7 p.m."),
    ("Set an alarm for 115 on Friday.", "Set an alarm for 1:15 on Friday."),
    ("Do I have anything at 645?", "Do I have anything at 6:45?"),
    ("Set an alarm for 11.30 tonight.", "Set an alarm for 11:30 tonight."),
    ("Schedule a meeting on the 17th of May at 1/40.", "Schedule a meeting on the 17th of May at 1:40."),
    ("When does the last train leave after 9/10?", "When does the last train leave after 9:10?"),
    # numbers that are no clock time stay as written
    ("Deliver it to 1040 Main Street.", "Deliver it to 1040 Main Street."),
    ("We met at 1040 Main Street.", "We met at 1040 Main Street."),
    ("Book a table for 115 people.", "Book a table for 115 people."),
    ("Rates rose at 3.25 percent.", "Rates rose at 3.25 percent."),
    ("It costs $19.10 in 1999.", "It costs $19.10 in 1999."),
    ("Meet at 1375?", "Meet at 1375?"),  # no hour 13 with a.m./p.m. style minutes past 59
    ("At 10:45 a.m. sharp.", "At 10:45 a.m. sharp."),
    ("Call Allison at 23-0421-7221.", "Call Allison at 230-421-7221."),  # ten digits: a phone number, regrouped
    ("Save 785-610-242-0 now.", "Save 785-610-2420 now."),
    ("It was on 2024-12-25.", "It was on 2024-12-25."),  # a date is no phone number
    ("I sold it for 4.50.", "I sold it for 4.50."),  # a price, a count, a measure: no times
    ("It went from 1000 to 2000.", "It went from 1000 to 2000."),
    ("The price rose by 1200.", "The price rose by 1200."),
    ("He is around 1.20 meters tall.", "He is around 1.20 meters tall."),
    ("I ate 1/4 of it at 1/4.", "I ate 1/4 of it at 1/4."),  # a fraction: no two-digit minutes
    ("It was 1/40 of the total.", "It was 1/40 of the total."),
])
def test_format_times_writes_clock_times_as_people_do(decoded: str, written: str) -> None:
    assert format_times(decoded) == written


@pytest.mark.parametrize(("decoded", "written"), [
    ("How long does it take to drive to 69 dobson avenue?", "How long does it take to drive to 69 Dobson Avenue?"),
    ("Send it to 221 baker street, London.", "Send it to 221 Baker Street, London."),
    ("Navigate to 58 Hull Drive.", "Navigate to 58 Hull Drive."),
    # measures and common nouns stay as they are
    ("It is a 3 hour drive.", "It is a 3 hour drive."),
    ("I walked 3 miles down the road.", "I walked 3 miles down the road."),
    ("Take 2 of the main street exits.", "Take 2 of the main street exits."),
    ("We left at 10 the main road.", "We left at 10 the main road."),
    ("Go down the main street.", "Go down the main street."),
])
def test_street_addresses_are_written_in_title_case(decoded: str, written: str) -> None:
    assert capitalise_addresses(decoded) == written


@pytest.mark.parametrize(("decoded", "written"), [
    ("dim the lights to 20%.", "Dim the lights to 20%."),
    ("pon la calefacción a 20 grados.", "Pon la calefacción a 20 grados."),
    ("¿qué restaurantes hay cerca?", "¿Qué restaurantes hay cerca?"),
    ("l'appel de Marie.", "L'appel de Marie."),
    ("über den Fluss.", "Über den Fluss."),
    # left as written: a word its owner spells with a capital inside, a number first, a script without case
    ("iPhone sales rose.", "iPhone sales rose."),
    ("$19.10 to Mark.", "$19.10 to Mark."),
    ("你好。", "你好。"),
    ("", ""),
])
def test_a_turn_begins_with_a_capital(decoded: str, written: str) -> None:
    assert capitalise_first_word(decoded) == written


@pytest.mark.parametrize(("decoded", "written"), [
    ("[BLANK_AUDIO]", ""),
    (" [Music] Turn it up [Music]", "Turn it up"),
    ("(upbeat music)", ""),
    # brackets that hold what was said stay
    ("Call (555) 123-4567.", "Call (555) 123-4567."),
    ("Set it to (about) 5.", "Set it to (about) 5."),
    ("Print item [1] now.", "Print item [1] now."),
])
def test_what_whisper_marks_as_no_speech_is_no_text(decoded: str, written: str) -> None:
    assert without_annotations(decoded) == written
