"""Out-of-lexicon penalty: non-words pay on each piece outside the lexicon's prefixes (a prefix that is
not a word, when it ends), context words never do, and in beam search a real word the model ranks
second beats a non-word."""

import math

import pytest
import torch

from seedasr.v1 import common_pb2
from services.decoder.config import beam_config
from shared.decoding import decoding_for
from shared.model.beam_search import BeamConfig, search
from shared.model.lexicon import WordLexicon, WordState
from shared.settings import load_settings
from training.export.lexicon import build_lexicon

# pieces: 0 <unk>, 1 "▁use", 2 "ing", 3 "▁us", 4 "▁the", 5 </s>
PIECES = ["<unk>", "\u2581use", "ing", "\u2581us", "\u2581the", "</s>"]
EOS, VOCAB = 5, 6
WORDS = frozenset({"use", "us", "the"})


def lexicon(penalty: float = 2.0, context=(), near: float = 1.0) -> WordLexicon:
    return WordLexicon(WORDS, PIECES, {0, EOS}, EOS).for_request(penalty, context, near)


def test_a_non_word_pays_on_every_piece_outside_the_lexicon() -> None:
    lex = lexicon()
    assert lex.advance(lex.initial(), 1).text == "use"
    use = lex.advance(lex.initial(), 1)
    assert not use.paid and lex.advance(use, 2) == ("useing", True, None)
    # "use" + "ing" leaves every lexicon word's prefixes: the piece pays; ending "use" is free
    assert lex.bonuses([use], torch.zeros(1, VOCAB), EOS)[0].tolist() == [0.0, 0.0, -2.0, 0.0, 0.0, 0.0]
    useing = lex.advance(use, 2)
    # a word that has paid pays again for each piece it grows by, not when it ends
    assert lex.bonuses([useing], torch.zeros(1, VOCAB), EOS)[0].tolist() == [0.0, 0.0, -2.0, 0.0, 0.0, 0.0]
    # a prefix that is not a word ("th" of "the") pays when it ends; a word-initial non-word at once
    th = WordState("th")
    assert lex.alive("th") and not lex.known("th")
    assert lex.cost(th, 4) == 2.0 and lex.cost(th, EOS) == 2.0
    assert lex.cost(WordState(), 4) == 0.0
    only_candidates = torch.full((1, VOCAB), float("-inf"))
    only_candidates[0, 2] = 0.0
    assert lex.bonuses([use], only_candidates, EOS)[0, 2] == -2.0  # a kept candidate pays
    only_candidates = torch.full((1, VOCAB), float("-inf"))
    only_candidates[0, 1] = 0.0
    assert lex.bonuses([use], only_candidates, EOS)[0, 2] == 0.0  # pruned tokens are not looked at, "ing" included
    assert lex.bonuses([use], only_candidates, EOS)[0, 1] == 0.0


def test_fusing_a_non_word_tail_costs_as_much_as_separate_non_words() -> None:
    lex = lexicon()
    fused = WordState("useing", True)
    # growing a paid non-word by a piece costs the same as starting a new non-word after it
    assert lex.cost(fused, 2) == 2.0
    assert lex.cost(WordState("us"), 2) == 2.0  # "using" is not in this lexicon


def test_context_words_and_compounds_of_known_words_are_free() -> None:
    lex = lexicon(context=["Zorblatt Quux"])
    assert lex.known("zorblatt") and lex.known("Quux,") and not lex.known("zorblat")
    assert lex.known("us-the") and not lex.known("us-thee")
    assert not lexicon(penalty=0.0)  # off


def test_near_misses_of_context_phrases_are_left_for_phrase_correction() -> None:
    lex = lexicon(context=["serious economy"], near=0.6)
    # split or fused, a near miss stays free so the search keeps it and correction can fix it
    assert lex.known("serias") and lex.known("acony") and lex.known("seriuseconomy")
    assert not lex.known("useing") and not lex.known("quolp")


def _step(parents, last):
    """First step ▁use 0.6 / ▁us 0.4, then ing, then </s>: the non-word "useing" outranks "using"."""
    rows = [None] if last is None else last.tolist()
    out = torch.full((len(rows), VOCAB), 1e-4)
    for i, tok in enumerate(rows):
        nxt = {None: {1: 0.6, 3: 0.4}, 1: {2: 0.9}, 3: {2: 0.9}, 2: {EOS: 0.9}}.get(tok, {EOS: 0.9})
        for t, p in nxt.items():
            out[i, t] = p
    return out.log()[None]


def test_penalty_turns_a_non_word_into_the_word_the_model_ranked_second() -> None:
    cfg = BeamConfig(beam_size=4, nbest=2, max_tokens=5, prune_k=6, alpha=0.5, ctc_weight=0.5)
    plain = search(_step, EOS, cfg, 0.0)
    assert plain[0].tokens == [1, 2]  # "useing"
    lex = WordLexicon(WORDS, PIECES, {0, EOS}, EOS, 2.0)
    assert search(_step, EOS, cfg, 0.0, lexicon=lex)[0].tokens == [1, 2]  # both are non-words: order kept
    lex = WordLexicon(WORDS | {"using"}, PIECES, {0, EOS}, EOS, 2.0)
    best = search(_step, EOS, cfg, 0.0, lexicon=lex)
    assert best[0].tokens == [3, 2]  # "▁us ing" spells "using": in the lexicon
    assert math.isclose(best[0].score, math.log(0.4 * 0.9 * 0.9), rel_tol=1e-4)
    assert math.isclose(best[1].score, math.log(0.6 * 0.9 * 0.9) - 2.0, rel_tol=1e-4)


def test_oov_penalty_is_a_request_parameter_with_a_server_default() -> None:
    settings = load_settings(oov_penalty=3.0)
    assert beam_config(common_pb2.RecognitionConfig(), decoding_for(settings)).oov_penalty == 3.0
    assert beam_config(common_pb2.RecognitionConfig(oov_penalty=0.0), decoding_for(settings)).oov_penalty == 0.0
    with pytest.raises(ValueError, match="oov_penalty"):
        beam_config(common_pb2.RecognitionConfig(oov_penalty=-1.0), decoding_for(settings))


def test_bundle_lexicon_is_general_english(tmp_path) -> None:
    words = build_lexicon(top=5000, system_words=tmp_path / "missing")
    assert {"the", "using", "weather", "tomorrow"} <= set(words) and "useing" not in words
    assert words == sorted(words) and all(w == w.lower() for w in words)
