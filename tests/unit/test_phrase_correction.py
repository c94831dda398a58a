"""Context phrase correction: a look-alike span becomes the context phrase only where the speech says it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seedasr.v1 import common_pb2
from services.decoder.config import correction_config
from shared.context import ContextInput, assemble_context, phrase_ngrams
from shared.decoding import decoding_for
from shared.model.phrase_correction import (
    CorrectionConfig,
    TextScorer,
    _sound_variants,
    _syllables,
    _variants,
    correct_characters,
    correct_phrases,
    ctc_log_likelihood,
    ctc_text_scorer,
)
from shared.settings import load_settings
from shared.tokenizer import Tokenizer

ROOT = Path(__file__).resolve().parents[2]
BLANK = 3
ON = CorrectionConfig(margin=12.0, min_similarity=0.7)


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer(ROOT / "bundles" / "default" / "tokenizer.model")


def spoken(tok: Tokenizer, text: str, sharpness: float = 20.0) -> torch.Tensor:
    """(T, V) CTC log-probabilities that spell `text`: each token framed by blanks."""
    frames = [BLANK]
    for token in tok.encode(text):
        frames += [token, BLANK]
    logits = torch.zeros(len(frames), tok.vocab_size)
    logits[torch.arange(len(frames)), torch.tensor(frames)] = sharpness
    return logits.log_softmax(-1)


@pytest.mark.weights
def test_a_look_alike_span_becomes_the_phrase_the_speech_says(tok) -> None:
    logp = spoken(tok, "call tomasz wrobel please")
    scorer = ctc_text_scorer(logp, tok.encode, BLANK)
    phrases = ["kilbride street", "tomasz wrobel", "tomasz"]
    assert correct_phrases("call toomas wrobble please", phrases, scorer, ON) == "call tomasz wrobel please"
    assert correct_phrases("call toomas wrobble please", phrases, scorer,
                           CorrectionConfig(margin=0.0, min_similarity=0.6)) == "call toomas wrobble please"  # margin 0: off


@pytest.mark.weights
def test_a_phrase_the_speech_does_not_say_is_not_put_in(tok) -> None:
    logp = spoken(tok, "call thomas please")
    scorer = ctc_text_scorer(logp, tok.encode, BLANK)
    assert correct_phrases("call thomas please", ["tomasz"], scorer, ON) == "call thomas please"
    # nothing spelled like the phrase: no candidate at all, whatever the margin
    wide = CorrectionConfig(margin=100.0, min_similarity=0.7)
    assert correct_phrases("call thomas please", ["kilbride street"], scorer, wide) == "call thomas please"


@pytest.mark.weights
def test_a_common_word_is_not_re_inflected_into_a_context_word(tok) -> None:
    # the demo's turn 2: the assistant said "Calling Tomasz Wrobel", the user "... call ..."; the speech
    # can barely tell the two, and the prior is for names the search cannot spell, not for other words
    logp = spoken(tok, "remind me to calling kilbride street")
    scorer = ctc_text_scorer(logp, tok.encode, BLANK)
    wide = CorrectionConfig(margin=100.0, min_similarity=0.6)
    assert correct_phrases("remind me to call kilbride street", ["calling"], scorer, wide) == \
        "remind me to call kilbride street"
    assert not {" ".join(v) for v in _variants("call kilbride streets".split(), ["street"], 0.6)}
    # a short common word that a name begins with is no inflection of it
    assert "call anderson now" in {" ".join(v) for v in _variants("call a son now".split(), ["anderson"], 0.6)}
    # a misspelt rare name that begins like the phrase is still corrected
    assert "call kilbride street" in {" ".join(v) for v in _variants("call kilbri street".split(), ["kilbride"], 0.6)}


def test_variants_keep_a_spelled_phrase_in_place_and_reach_fused_long_names() -> None:
    def variants(text: str, phrases: list[str]) -> set[str]:
        return {" ".join(v) for v in _variants(text.split(), phrases, 0.6)}

    # "kilbride street" is spelled: a longer phrase may not shift it and eat the spoken words before it
    out = variants("remind me to call bet kilbride street on the way", ["kilbride street", "kilbride street closes"])
    assert "remind me to kilbride street closes on the way" not in out
    assert "remind me to call bet kilbride street closes the way" in out  # in place, only words after it respelled
    # a spelled part may be kept while the words around it are respelled
    assert "find the nearest grahn and eriksson hb store" in variants(
        "find the nearest grahnen eriksson hb store", ["eriksson hb", "grahn and eriksson hb"])
    # a four-word name that came out as two fused words
    assert "call carlijn van der spaendonc on friday" in variants(
        "call carlijnder spaendonc on friday", ["carlijn van der spaendonc"])


@pytest.mark.weights
def test_ctc_log_likelihood_prefers_the_spoken_text_and_rules_out_too_long_ones(tok) -> None:
    logp = spoken(tok, "call tomasz")
    scores = ctc_log_likelihood(logp, [tok.encode("call tomasz"), tok.encode("call thomas"), tok.encode("x " * 40)], BLANK)
    assert scores[0] > scores[1] > float("-inf") and scores[2] == float("-inf")


@pytest.mark.weights
def test_correction_candidates_are_hotwords_and_ngrams_of_the_turns_clients_wrote(tok) -> None:
    assert "perry inc" in phrase_ngrams("the nearest store is perry inc")
    assert not any(p.startswith("the ") or p.endswith(" is") for p in phrase_ngrams("the nearest store is perry inc"))
    assert phrase_ngrams("what is on my list for today") == []  # common words only
    ctx = ContextInput(turns=["callton as roble", "i found phillips walker in your contacts"], hotwords=["Kilbride"],
                       recognised=[True, False])
    phrases = assemble_context(tok, ctx, 200).correction_phrases
    assert phrases[0] == "kilbride" and "phillips walker" in phrases  # common-word names too
    assert not any("callton" in p for p in phrases)  # never the recogniser's own words
    # a turn past the token budget is not read by the LM but its entities still are candidates
    ctx = ContextInput(turns=["the nearest store is perry inc", *["your prescription for roth is due"] * 12])
    assembled = assemble_context(tok, ctx, 40)
    assert "perry" not in assembled.text and "perry inc" in assembled.correction_phrases


def test_correction_margin_is_a_request_parameter_with_a_server_default() -> None:
    settings = load_settings(correction_margin=5.0)
    assert correction_config(common_pb2.RecognitionConfig(), decoding_for(settings)).margin == 5.0
    assert correction_config(common_pb2.RecognitionConfig(correction_margin=0.0), decoding_for(settings)).margin == 0.0
    with pytest.raises(ValueError, match="correction_margin"):
        correction_config(common_pb2.RecognitionConfig(correction_margin=-1.0), decoding_for(settings))
    # Chinese's own default, which a request's margin replaces as it does English's
    chinese = decoding_for(load_settings(correction_margin=5.0, correction_margin_zh=30.0))
    assert correction_config(common_pb2.RecognitionConfig(), chinese).margin_zh == 30.0
    assert correction_config(common_pb2.RecognitionConfig(correction_margin=0.0), chinese).margin_zh == 0.0


def _favouring(wanted: str, by: float) -> TextScorer:
    """A scorer of an utterance whose speech says `wanted`: texts holding it score `by` nats above the others."""
    return lambda texts: torch.tensor([by if wanted in t else 0.0 for t in texts])


def test_a_chinese_homophone_becomes_the_hotword_the_speech_supports() -> None:
    cfg = CorrectionConfig(margin=6.0, min_similarity=0.6)
    text = "请帮我给王小明打个电话。"
    assert correct_characters(text, ["王筱明"], _favouring("王筱明", 1.0), cfg) == "请帮我给王筱明打个电话。"
    # the speech against it by more than the margin: the model's own characters stay
    assert correct_characters(text, ["王筱明"], _favouring("王小明", 8.0), cfg) == text
    off = CorrectionConfig(margin=0.0, min_similarity=0.6)
    assert correct_characters(text, ["王筱明"], _favouring("王筱明", 1.0), off) == text


def test_chinese_correction_needs_a_sound_alike_run_and_leaves_phrases_heard_right() -> None:
    cfg = CorrectionConfig(margin=6.0, min_similarity=0.6)
    anything = _favouring("", 0.0)
    text = "明天去鼓浪屿看看张伟。"
    assert _sound_variants(text, _syllables(text), ["李建国"], 0.6) == []  # nothing sounds like it: a distractor
    assert correct_characters(text, ["李建国", "Kilbride Street"], anything, cfg) == text
    # 古浪鱼 sounds like the hotword 鼓浪屿; a run overlapping a phrase already written is never replaced
    assert correct_characters("明天去古浪鱼看看张伟。", ["鼓浪屿", "张伟"], _favouring("去鼓浪屿看", 1.0), cfg) == text
    assert all("张伟" in v for v, _, _ in _sound_variants(text, _syllables(text), ["张威", "张伟"], 0.6))
    assert _syllables("王筱明, ok") == ["wang", "xiao", "ming", ",", " ", "o", "k"]


def test_chinese_correction_candidates_are_runs_of_jieba_words_holding_a_rare_one() -> None:
    found = phrase_ngrams("明天订去鼓浪屿的船票")
    assert "鼓浪屿" in found and all(len(p) >= 2 and " " not in p for p in found)
    assert "明天" not in found  # common words alone are never candidates


def test_a_longer_phrase_may_hold_one_the_text_writes_and_runs_never_start_with_a_function_word() -> None:
    text = "宇文韩的生日是4月15号。"
    assert _sound_variants(text, _syllables(text), ["宇文", "宇文晗"], 0.6) == [("宇文晗的生日是4月15号。", "宇文晗", 1.0)]
    assert not any(p.startswith(("要", "和")) for p in phrase_ngrams("提醒我明天要和仝赟开会"))


def test_a_whole_name_wins_over_a_piece_of_it_when_both_pass() -> None:
    cfg = CorrectionConfig(margin=25.0, min_similarity=0.6)
    text = "打开停蓝电饭煲。"
    # the speech (tones) likes the piece a little better; the whole name passes the margin too
    scores = {"打开停澜电饭煲。": -1.0, "打开听澜电饭煲。": -3.0}
    scorer: TextScorer = lambda texts: torch.tensor([scores.get(t, -10.0) for t in texts])  # noqa: E731
    assert correct_characters(text, ["澜电饭煲", "听澜电饭煲"], scorer, cfg) == "打开听澜电饭煲。"


def test_the_closest_sound_wins_among_the_phrases_the_speech_lets_in() -> None:
    cfg = CorrectionConfig(margin=25.0, min_similarity=0.6)
    # yǎn zhōu heard as 严州: 鄞州 (yín) scores better with the decoder, 兖州 (yǎn) sounds the same
    scores = {"严州附近有什么好吃的？": 0.0, "鄞州附近有什么好吃的？": -2.0, "兖州附近有什么好吃的？": -5.0}
    scorer: TextScorer = lambda texts: torch.tensor([scores.get(t, -99.0) for t in texts])  # noqa: E731
    assert correct_characters("严州附近有什么好吃的？", ["鄞州", "兖州"], scorer, cfg) == "兖州附近有什么好吃的？"


def test_a_phrase_that_changes_common_characters_only_is_never_tried() -> None:
    text = "今天有什么新闻？"
    assert _sound_variants(text, _syllables(text), ["今天有小雨"], 0.6) == []  # 小雨 for 什么: nothing rare to bring
    text = "打开细和咖啡机。"
    assert _sound_variants(text, _syllables(text), ["羲和咖啡机"], 0.6)[0][0] == "打开羲和咖啡机。"  # 羲 is rare
    text = "打开扶摇进水器。"  # 净 is common, 净水器 a rare word
    assert _sound_variants(text, _syllables(text), ["扶摇净水器"], 0.6)[0][0] == "打开扶摇净水器。"
