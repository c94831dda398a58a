import time

import pytest

from shared.context import ContextInput, assemble_context
from shared.history import MemoryHistoryStore
from shared.scoring import weighted_wer, wer
from shared.text import normalize_text
from shared.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok(tiny_bundle):
    return Tokenizer(tiny_bundle / "tokenizer.model")


def test_context_keeps_newest_turns_within_budget(tok) -> None:
    turns = [f"turn number {i} call alice" for i in range(10)]
    full = assemble_context(tok, ContextInput(turns=turns), budget=10_000)
    assert full.turns_used == 10
    small = assemble_context(tok, ContextInput(turns=turns), budget=30)
    assert 0 < small.turns_used < 10 and len(small.token_ids) <= 30
    assert small.text.endswith("turn number nine call alice")  # newest kept, laid out oldest->newest
    assert "turn number zero" not in small.text


def test_context_puts_prompt_and_hotwords_first(tok) -> None:
    out = assemble_context(tok, ContextInput(turns=["hello"], hotwords=["Zorblatt", "Qux"], prompt="A phone assistant"),
                           budget=200)
    assert out.text.split(" | ")[:2] == ["a phone assistant", "zorblatt qux"]
    assert out.token_ids.count(tok.turn_id) == 2
    assert assemble_context(tok, ContextInput(), 50).token_ids == []


def test_normalisation() -> None:
    assert normalize_text("Call Siobhán at 7:30, OK?") == "call siobhan at seven thirty ok"
    assert normalize_text("It's 100% — twenty-one!") == "it's one hundred percent twenty one"
    # a peer's numerals count as the words a reference spells out
    assert normalize_text("Go forward 10 meters.") == "go forward ten meters"
    assert normalize_text("The 3rd of May, the 21st floor") == "the third of may the twenty first floor"
    assert normalize_text("1,500 people paid $5") == "one thousand five hundred people paid five dollars"
    assert normalize_text("4th, 1st") != normalize_text("4 th 1 st")


def test_wer_and_weighted_wer() -> None:
    assert wer("call alice now", "call alice now") == 0.0
    assert abs(wer("call alice now", "call alex now") - 1 / 3) < 1e-9
    # the same single substitution costs more when it hits a keyword
    plain = weighted_wer("call alice now", "call alice know", ["alice"])
    keyword = weighted_wer("call alice now", "call alex now", ["alice"])
    assert keyword > plain > 0
    assert abs(keyword - 3 / 5) < 1e-9
    assert weighted_wer("call alice", "", ["alice"]) == 1.0
    assert wer("", "") == 0.0


def test_memory_history_caps_and_expires() -> None:
    store = MemoryHistoryStore(max_turns=3, ttl_s=1)
    for i in range(5):
        n = store.append("s1", {"role": "user", "text": str(i), "turn_id": str(i), "created_unix": 0})
    assert n == 3 and [t["text"] for t in store.get("s1")] == ["2", "3", "4"]
    assert store.get("nope") is None
    assert store.delete("s1") and not store.delete("s1")
    store.append("s2", {"role": "user", "text": "x", "turn_id": "x", "created_unix": 0})
    time.sleep(1.1)
    assert store.get("s2") is None


def test_context_text_joins_the_assembled_parts_as_sentences(tok) -> None:
    """What a decoder that reads context as words (Whisper's <|startofprev|> prompt) is given, in serving and in
    its context SFT alike."""
    from shared.context import context_text

    out = assemble_context(tok, ContextInput(turns=["call the office", "which one"], hotwords=["zorblatt"]), 10_000)
    assert context_text(tok, out.token_ids) == "zorblatt. call the office. which one"
    assert context_text(tok, []) == ""
