"""The pure scorers of training/eval/written.py on hand-made cases (no TTS, no model), and the commands
set's templates (plain text: no synthesis)."""

import math
import re

import numpy as np
import pytest

from shared.text import normalize_text
from training.eval.written import (
    confidence_scores,
    number_written,
    sentence_cased,
    timing_errors,
    timing_summary,
    word_correctness,
    written_form_scores,
)

ROWS = [
    {"text": "Set an alarm for 7:30 tomorrow.", "numbers": ["7:30"], "names": [], "question": False},
    {"text": "Transfer $45.50 to Maria Lopez.", "numbers": ["$45.50"], "names": ["Maria Lopez"], "question": False},
    {"text": "What was the population of Kenya in 1999?", "numbers": ["1999"], "names": ["Kenya"], "question": True},
    {"text": "Turn the volume down to 30%.", "numbers": ["30%"], "names": [], "question": False},
    {"text": "Is it going to rain in Kilbride Street at 6:15 p.m.?", "numbers": ["6:15 p.m."],
     "names": ["Kilbride Street"], "question": True},
]


def test_references_score_full_marks() -> None:
    s = written_form_scores(ROWS, [r["text"] for r in ROWS])
    for key in ("digits", "questions", "names", "names_capitalised_when_heard", "sentence_case_end_mark"):
        assert s[key] == 1.0, key
    assert s["statements_with_question_mark"] == 0.0
    assert (s["digits_n"], s["digits_total"], s["names_total"], s["questions_total"]) == (5, 5, 3, 2)


def test_spoken_lowercase_hypotheses_score_nothing() -> None:
    spoken = ["set an alarm for seven thirty tomorrow", "transfer forty five dollars and fifty cents to maria lopez",
              "what was the population of kenya in nineteen ninety nine", "turn the volume down to thirty percent",
              "is it going to rain in kilbride street at six fifteen p m"]
    s = written_form_scores(ROWS, spoken)
    assert s["digits"] == s["questions"] == s["names"] == s["sentence_case_end_mark"] == 0.0
    assert s["names_capitalised_when_heard_total"] == 3 and s["names_capitalised_when_heard"] == 0.0
    # lowercased written text: digits and marks survive, names and sentence case do not
    s = written_form_scores(ROWS, [r["text"].lower() for r in ROWS])
    assert s["names"] == 0.0 and s["sentence_case_end_mark"] == 0.0 and s["digits"] == 1.0 and s["questions"] == 1.0
    # every turn ended with "?" is caught on the statements
    s = written_form_scores(ROWS, [r["text"][:-1] + "?" for r in ROWS])
    assert s["statements_with_question_mark"] == 1.0
    with pytest.raises(ValueError):
        written_form_scores(ROWS, ["one"])


@pytest.mark.parametrize("expected,hyp,ok", [
    ("7:30", "Set an alarm for 7:30 tomorrow.", True),
    ("7:30", "at 17:30", False),
    ("7:30", "at 7.30", False),
    ("$45.50", "Transfer $45.50 to", True),
    ("$45.50", "Transfer $45.5 to", False),
    ("$45.50", "Transfer 45.50 dollars", False),
    ("$45", "Send $45.00 now", True),
    ("$45", "Send $45.50 now", False),
    ("$1,250", "Send $1250", True),
    ("$1,250", "Send $1,250.", True),
    ("30%", "down to 30 %", True),
    ("30%", "down to 30 percent", False),
    ("1999", "in 1999?", True),
    ("1999", "in 11999", False),
    ("1999", "in nineteen ninety nine", False),
    ("6:15 p.m.", "at 6:15 PM?", True),
    ("6:15 p.m.", "at 6:15pm", True),
    ("6:15 p.m.", "at 6:15 a.m.", False),
    ("6:15 p.m.", "at 6:15", False),
    ("9 a.m.", "at 9:00 AM", True),
    ("9 a.m.", "at 9am", True),
    ("9 a.m.", "at 9", False),
    ("5th", "on May 5th", True),
    ("5th", "on May 5", True),
    ("5th", "the 5th of May", True),
    ("5th", "on 5 May", True),
    ("5th", "call 5 people", False),
    ("5th", "on May 15th", False),
    ("555-123-4567", "at (555) 123-4567.", True),
    ("555-123-4567", "at 5551234567", True),
    ("555-123-4567", "at 555-123-456", False),
    ("42", "to 42 Allen Road", True),
    ("42", "to $42", False),
    ("42", "to 4.2", False),
])
def test_number_tolerance(expected: str, hyp: str, ok: bool) -> None:
    assert number_written(expected, hyp) is ok


def test_time_dot_is_the_lenient_score_only() -> None:
    assert number_written("7:30", "at 7.30pm", time_dot=True) and not number_written("7:30", "at 7.30pm")
    assert number_written("7:30 p.m.", "at 7.30pm", time_dot=True)


def test_names_and_sentence_case() -> None:
    s = written_form_scores([ROWS[1]], ["Transfer $45.50 to María López's account."])  # accents folded, possessive
    assert s["names"] == 1.0
    assert written_form_scores([ROWS[1]], ["Transfer $45.50 to Maria lopez."])["names"] == 0.0
    assert written_form_scores([ROWS[1]], ["Transfer $45.50 to Mariana Lopez."])["names_capitalised_when_heard_total"] == 0
    assert sentence_cased("Call me.") and sentence_cased(" Call me! ") and sentence_cased("...Call Ann?")
    assert not sentence_cased("$5 to Ann?")  # the first letter, not the first character
    assert not sentence_cased("call me.") and not sentence_cased("Call me") and not sentence_cased("")


def test_word_correctness_pieces() -> None:
    ref = "Set an alarm for 7:30 tomorrow."
    assert word_correctness(ref, ["Set", "an", "alarm", "for", "7:30", "tomorrow."], normalize_text) == [True] * 6
    # "7:45" normalises to two pieces; "seven" matches, "forty five" does not: the written word is wrong
    assert word_correctness(ref, ["Set", "an", "alarm", "for", "7:45", "tomorrow."], normalize_text) == [
        True, True, True, True, False, True]
    # inserted and substituted words are wrong; a lone dash normalises to nothing and is left right
    assert word_correctness("call ann now", ["Call", "Anne", "-", "now", "please"], normalize_text) == [
        True, False, True, True, False]
    assert word_correctness("", ["hello"], normalize_text) == [False]
    assert word_correctness("call ann", [], normalize_text) == []


def test_confidence_auroc_and_ece() -> None:
    auroc, _ = confidence_scores([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert auroc == pytest.approx(1.0)
    auroc, _ = confidence_scores([0.9, 0.8, 0.3, 0.2], [False, False, True, True])
    assert auroc == pytest.approx(0.0)
    auroc, _ = confidence_scores([0.7, 0.7, 0.7, 0.7], [True, False, True, False])  # ties: chance
    assert auroc == pytest.approx(0.5)
    auroc, _ = confidence_scores([0.9, 0.1, 0.9, 0.1], [True, True, False, False])  # uninformative
    assert auroc == pytest.approx(0.5)
    # perfectly calibrated bins: 80% right at 0.8, 30% right at 0.3
    conf = [0.8] * 10 + [0.3] * 10
    right = [True] * 8 + [False] * 2 + [True] * 3 + [False] * 7
    assert confidence_scores(conf, right)[1] == pytest.approx(0.0, abs=1e-9)
    # overconfident: always 0.95, half right
    assert confidence_scores([0.95] * 10, [True, False] * 5)[1] == pytest.approx(0.45)
    assert confidence_scores([1.0, 0.0], [True, False], bins=10) == (pytest.approx(1.0), pytest.approx(0.0))
    assert math.isnan(confidence_scores([0.5, 0.6], [True, True])[0])
    with pytest.raises(ValueError):
        confidence_scores([0.5], [True, False])


def test_confidence_auroc_random_is_near_half() -> None:
    rng = np.random.default_rng(0)
    conf = rng.random(4000)
    auroc, ece = confidence_scores(conf.tolist(), (rng.random(4000) < conf).tolist())  # calibrated by construction
    assert auroc == pytest.approx(5 / 6, abs=0.02) and ece < 0.03  # P(p1 > p0) with p1 ~ 2p, p0 ~ 2(1 - p)
    auroc, _ = confidence_scores(conf.tolist(), (rng.random(4000) < 0.5).tolist())
    assert abs(auroc - 0.5) < 0.03


def test_timing_errors() -> None:
    truth = [{"word": "people", "start_s": 0.2, "end_s": 0.7}, {"word": "first", "start_s": 0.9, "end_s": 1.2},
             {"word": "house", "start_s": 1.5, "end_s": 1.9}]
    hyp = [("People,", 0.0, 0.72), ("fist", 0.9, 1.2), ("house.", 1.45, 2.0)]  # "fist" misheard: unmatched
    errs = timing_errors(truth, hyp, normalize_text)
    assert [tuple(round(x, 3) for x in e) for e in errs] == [(0.2, 0.02), (0.05, 0.1)]
    s = timing_summary(errs)
    assert s["start_median_ms"] == pytest.approx(125.0) and s["end_p95_ms"] == pytest.approx(96.0)
    # an inserted word does not shift the matches after it
    hyp = [("the", 0.0, 0.1), ("people", 0.2, 0.7), ("first", 0.9, 1.2), ("house", 1.5, 1.9)]
    assert timing_errors(truth, hyp, normalize_text) == [(0.0, 0.0)] * 3
    assert timing_errors(truth, [], normalize_text) == []
    assert math.isnan(timing_summary([])["start_median_ms"])


def test_commands_templates_give_both_forms() -> None:
    from training.data.commands import plan

    cmds = plan(60, 7)
    assert sum(c.question for c in cmds) == 24
    for c in cmds:
        assert c.text[0].isupper() and c.text.endswith("?" if c.question else ".") and not c.text.endswith("..")
        assert not re.search(r"\d", c.spoken) and c.spoken == c.spoken.lower()
        assert all(n in c.text for n in c.numbers + c.names)
        assert not c.numbers or written_form_scores([vars(c)], [c.text])["digits"] == 1.0  # each number's pattern finds it
    assert any("$" in c.text for c in cmds) and any("%" in c.text for c in cmds) and any(c.names for c in cmds)
    assert [c.text for c in plan(10, 7)] == [c.text for c in cmds[:10]]  # a seed means one set
