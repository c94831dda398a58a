"""Biasing by bytes (Chinese): a phrase pays per character whichever tokens spell it (merged with the characters
around it, or one character split over two byte tokens), leaving it early takes the gain back, a second spelling
earns nothing, its tokens are the search's candidates; Chinese context yields its rare words as phrases."""

from __future__ import annotations

import pytest
import torch

from shared.model.biasing import BiasState
from shared.model.byte_biasing import ByteBiasing, TokenBytes

WANG = "王".encode()
# a toy byte-level vocabulary: whole characters, merges across the name's edges, and 王 split into two byte tokens
VOCAB = [b"", "请".encode(), "给王".encode(), "小".encode(), "明打".encode(), "电话".encode(), WANG, "小明".encode(),
         "红".encode(), WANG[:1], WANG[1:], "给".encode(), "打".encode(), "王小明".encode()]
ID = {data: i for i, data in enumerate(VOCAB)}


def spell(bias: ByteBiasing, pieces: list[bytes]) -> float:
    """The total score change of a hypothesis spelling `pieces`, as the search adds it token by token."""
    st, total = BiasState(), 0.0
    for piece in pieces:
        total += float(bias.bonuses([st], len(VOCAB))[0, ID[piece]])
        st = bias.advance(st, ID[piece])
    return total


@pytest.fixture()
def bias() -> ByteBiasing:
    return ByteBiasing(["王小明"], TokenBytes(VOCAB), bonus=1.0)


@pytest.mark.parametrize("pieces", [
    ["请", "给王", "小", "明打", "电话"],  # merged with the characters on both sides
    ["给", "王", "小明", "打"],
    ["给", WANG[:1], WANG[1:], "小", "明打"],  # 王 as two byte tokens
    ["给", "王小明", "打"],
])
def test_a_phrase_pays_per_character_whichever_tokens_spell_it(bias: ByteBiasing, pieces: list) -> None:
    assert spell(bias, [p.encode() if isinstance(p, str) else p for p in pieces]) == pytest.approx(3.0)


def test_leaving_a_phrase_early_takes_the_gain_back_and_a_second_spelling_earns_nothing(bias: ByteBiasing) -> None:
    assert spell(bias, [p.encode() for p in ["给王", "小", "红", "打"]]) == pytest.approx(0.0)
    assert spell(bias, [p.encode() for p in ["王小明", "打", "王", "小明"]]) == pytest.approx(3.0)


def test_the_tokens_that_continue_or_start_the_phrase_are_candidates(bias: ByteBiasing) -> None:
    root = set(bias.candidates([BiasState()], pad=0)[0].tolist())
    assert {ID[WANG], ID["给王".encode()], ID["王小明".encode()], ID[WANG[:1]]} <= root
    assert ID["红".encode()] not in root and ID["电话".encode()] not in root
    after_wang = bias.advance(BiasState(), ID["给王".encode()])
    assert {ID["小".encode()], ID["小明".encode()]} <= set(bias.candidates([after_wang], pad=0)[0].tolist())
    after_xiao = bias.advance(after_wang, ID["小".encode()])
    assert ID["明打".encode()] in set(bias.candidates([after_xiao], pad=0)[0].tolist())  # the phrase ends inside it
    row = bias.bonuses([after_xiao], len(VOCAB))[0]
    assert row[ID["红".encode()]] == pytest.approx(-2.0) and row[ID["明打".encode()]] == pytest.approx(1.0)


def test_no_phrase_no_bias() -> None:
    assert not ByteBiasing([], TokenBytes(VOCAB), 1.0) and not ByteBiasing(["王"], TokenBytes(VOCAB), 0.0)
    assert torch.equal(ByteBiasing(["王"], TokenBytes(VOCAB), 1.0).bonuses([BiasState()], 3)[:, 0], torch.zeros(1))


@pytest.mark.weights
def test_whisper_tokens_spell_their_bytes() -> None:
    from shared.model import whisper_weights as ww
    from shared.model.whisper_decoder import WhisperTokens

    tokens = WhisperTokens(ww.ct2_model_dir() / "tokenizer.json")
    spelled = tokens.token_bytes()
    for text, lead in (("请给王小明打电话", False), ("Kilbride Street", True), ("鼓浪屿", False)):
        spelled_text = b"".join(spelled[i] for i in tokens.encode(text, lead_space=lead))
        assert spelled_text == ((" " if lead else "") + text).encode()
    assert spelled[tokens.eot] == b"" and len(spelled) == tokens.tok.get_vocab_size(with_added_tokens=True)


def test_chinese_context_yields_its_rare_words_as_phrases() -> None:
    from shared.context import drop_contained, rare_runs

    assert rare_runs("请给王小明打电话") == ["王小明"]
    assert "鼓浪屿" in rare_runs("我想去鼓浪屿看看，然后去吃饭")
    assert rare_runs("call maren kessel now") == ["maren kessel"]
    assert drop_contained(["王小明", "小明", "kilbride", "kilbride street"]) == ["王小明", "kilbride street"]
