"""Word n-gram LM: the Kneser-Ney ARPA we build is a distribution KenLM reads, and fusing it in beam
search turns a pair of real words the acoustics prefer into the pair the text makes likely."""

import math

import pytest
import torch

from shared.model.beam_search import BeamConfig, search
from shared.model.lexicon import CONTEXT_WORD_LOGP, WordLexicon, WordState
from shared.model.word_lm import WordLM
from training.export.word_lm import kneser_ney, training_sentences, write_word_lm

SENTENCES = ["the cat sat on the mat", "the dog sat", "a cat ran", "the cat ran away", "a dog ran on the mat",
             "san francisco is far", "we went to san francisco", "san francisco again", "i like the fog"]
# pieces: 0 <unk>, 1 ▁the, 2 ▁cat, 3 ▁cap, 4 ▁sat, 5 </s>
PIECES = ["<unk>", "\u2581the", "\u2581cat", "\u2581cap", "\u2581sat", "</s>"]
EOS, VOCAB = 5, 6


@pytest.fixture(scope="module")
def word_lm(tmp_path_factory) -> WordLM:
    path = tmp_path_factory.mktemp("lm") / "word_lm.arpa.gz"
    write_word_lm(path, SENTENCES)
    return WordLM(path)


def _prob_sum(lm: WordLM, history: list[str]) -> float:
    state = lm.begin()
    for word in history:
        state = lm.score(state, word)[1]
    vocab = {w for s in SENTENCES for w in s.split()} | {"</s>", "<unk>"}
    return sum(math.exp(lm.score(state, w)[0]) for w in vocab)


@pytest.mark.parametrize("history", [[], ["the"], ["the", "cat"], ["on", "the"], ["zebra", "cat"], ["sat", "zebra"]])
def test_every_history_gives_a_distribution(word_lm, history) -> None:
    assert _prob_sum(word_lm, history) == pytest.approx(1.0, abs=1e-3)


def test_kneser_ney_ranks_words_by_the_contexts_they_follow() -> None:
    unigrams = kneser_ney(SENTENCES)[0]
    # "francisco" is as frequent as "cat" but only ever follows "san"
    assert unigrams[("francisco",)][0] < unigrams[("cat",)][0]
    assert unigrams[("<unk>",)][0] < unigrams[("fog",)][0]


def test_lm_words_follow_the_text(word_lm) -> None:
    state = word_lm.score(word_lm.begin(), "the")[1]
    assert word_lm.score(state, "cat")[0] > word_lm.score(state, "cap")[0]
    assert "cat" in word_lm and "cap" not in word_lm


def _step(parents, last):
    """▁the, then ▁cap 0.55 / ▁cat 0.45 (both words), then ▁sat, then </s>."""
    rows = [None] if last is None else last.tolist()
    out = torch.full((len(rows), VOCAB), 1e-4)
    for i, tok in enumerate(rows):
        nxt = {None: {1: 0.9}, 1: {3: 0.55, 2: 0.45}, 2: {4: 0.9}, 3: {4: 0.9}}.get(tok, {EOS: 0.9})
        for t, p in nxt.items():
            out[i, t] = p
    return out.log()[None]


def test_fusion_picks_the_word_the_text_makes_likely(word_lm) -> None:
    cfg = BeamConfig(beam_size=4, nbest=2, max_tokens=6, prune_k=6, alpha=0.5, ctc_weight=0.5)
    words = frozenset({"the", "cat", "cap", "sat"})
    plain = WordLexicon(words, PIECES, {0, EOS}, EOS, word_lm=word_lm).for_request(1.0)
    assert search(_step, EOS, cfg, 0.0, lexicon=plain)[0].tokens == [1, 3, 4]  # "the cap sat"
    fused = WordLexicon(words, PIECES, {0, EOS}, EOS, word_lm=word_lm).for_request(1.0, lm_weight=0.5, word_bonus=1.0)
    best = search(_step, EOS, cfg, 0.0, lexicon=fused)
    assert best[0].tokens == [1, 2, 4]  # "the cat sat"
    # the search score is the acoustic score plus the fused word scores, </s> included
    state, lm_score = word_lm.begin(), 0.0
    for w in ["the", "cat", "sat", "</s>"]:
        logp, state = word_lm.score(state, w)
        lm_score += 0.5 * logp + (1.0 if w != "</s>" else 0.0)
    assert best[0].score == pytest.approx(math.log(0.9 * 0.45 * 0.9 * 0.9) + lm_score, abs=1e-4)


def test_context_words_score_as_rare_words_not_unknown_ones(word_lm) -> None:
    lex = WordLexicon(frozenset({"the"}), PIECES, {0, EOS}, EOS, word_lm=word_lm)
    plain = lex.for_request(1.0, lm_weight=1.0)
    with_context = lex.for_request(1.0, ["Zorblatt"], lm_weight=1.0)
    unknown = plain.fused(plain.initial()._replace(text="zorblatt"), False)
    assert unknown == pytest.approx(word_lm.score(word_lm.begin(), "<unk>")[0])
    named = with_context.fused(with_context.initial()._replace(text="zorblatt"), False)
    assert named == pytest.approx(max(unknown, CONTEXT_WORD_LOGP))
    assert with_context.fused(with_context.initial()._replace(text="cat"), False) == pytest.approx(
        plain.fused(plain.initial()._replace(text="cat"), False))  # words the LM knows keep their score


def test_without_a_word_lm_fusion_is_off() -> None:
    lex = WordLexicon(frozenset({"the"}), PIECES, {0, EOS}, EOS).for_request(0.0, lm_weight=0.5)
    assert not lex.fusing and not lex


def test_the_shipped_lm_is_built_from_training_text_only() -> None:
    from training.data.text import is_dev

    sents = training_sentences(50)
    assert len(sents) > 1000 and not any(is_dev(s) for s in sents)


def test_a_broken_lm_file_is_a_clear_error(tmp_path) -> None:
    bad = tmp_path / "word_lm.arpa"
    bad.write_text("not an ARPA file\n")
    with pytest.raises(ValueError, match="cannot read the word LM"):
        WordLM(bad)


def test_the_search_loop_adds_what_cost_and_fused_say(word_lm) -> None:
    lex = WordLexicon(frozenset({"the", "cat", "sat"}), PIECES, {0, EOS}, EOS, word_lm=word_lm)
    lex = lex.for_request(2.0, ["Zorblatt"], lm_weight=0.5, word_bonus=1.0)
    start = lex.initial()
    states = [start, lex.advance(start, 1), lex.advance(lex.advance(start, 1), 3), start._replace(text="zorblatt")]
    scores = torch.zeros(len(states), VOCAB)
    scores[0, 4] = float("-inf")  # a pruned candidate gets nothing
    got = lex.bonuses(states, scores, EOS)
    for r, state in enumerate(states):
        for c in range(VOCAB):
            ends = c in (1, 2, 3, 4, EOS)
            want = 0.0 if scores[r, c] == float("-inf") else -lex.cost(state, c) + (lex.fused(state, c == EOS) if ends else 0.0)
            assert float(got[r, c]) == pytest.approx(want, abs=1e-5), (r, c)


def test_no_word_list_means_no_penalty(word_lm) -> None:
    lex = WordLexicon(frozenset(), PIECES, {0, EOS}, EOS, word_lm=word_lm).for_request(4.0, lm_weight=0.5)
    assert lex.fusing and lex.penalty == 0.0 and lex.cost(WordState("qqq", True), 2) == 0.0


# a vocabulary where words end, continue into non-words and fuse: ▁the ▁cat ▁ca t ▁sat ▁on ▁mat ▁a ▁dog s </s>
RANDOM_PIECES = ["<unk>", "\u2581the", "\u2581cat", "\u2581ca", "t", "\u2581sat", "\u2581on", "\u2581mat", "\u2581a",
                 "\u2581dog", "s", "</s>"]


@pytest.mark.parametrize("seed", range(12))
def test_lexicon_scored_lazily_picks_what_scoring_every_candidate_picks(word_lm, seed, monkeypatch) -> None:
    """The search adds lexicon and word-LM bonuses only to candidates that can still make the beam
    (beam_search._with_lexicon); with bonuses on every candidate it must find the same n-best."""
    import shared.model.beam_search as beam_search

    eos, vocab = len(RANDOM_PIECES) - 1, len(RANDOM_PIECES)
    table = torch.randn(vocab + 1, vocab, generator=torch.Generator().manual_seed(seed)) * 2

    def step(parents, last):
        rows = [vocab] if last is None else last.tolist()
        return table[rows].log_softmax(-1)[None]

    words = frozenset(w for s in SENTENCES for w in s.split())
    lex = WordLexicon(words, RANDOM_PIECES, {0, eos}, eos, word_lm=word_lm).for_request(3.0, lm_weight=0.5, word_bonus=4.0)
    cfg = BeamConfig(beam_size=4, nbest=4, max_tokens=8, prune_k=vocab, alpha=0.5, ctc_weight=0.5)
    lazy = search(step, eos, cfg, 0.0, lexicon=lex)
    monkeypatch.setattr(beam_search, "_with_lexicon", lambda total, lx, ws, e, k: total + lx.bonuses(ws, total, e))
    eager = search(step, eos, cfg, 0.0, lexicon=lex)
    assert [h.tokens for h in lazy] == [h.tokens for h in eager]
    assert [h.score for h in lazy] == pytest.approx([h.score for h in eager], abs=1e-5)


def test_no_bonus_exceeds_the_bound_the_lazy_search_prunes_with(word_lm) -> None:
    eos = len(RANDOM_PIECES) - 1
    words = frozenset(w for s in SENTENCES for w in s.split())
    lex = WordLexicon(words, RANDOM_PIECES, {0, eos}, eos, word_lm=word_lm).for_request(3.0, lm_weight=0.5, word_bonus=4.0)
    states, frontier = [], [lex.initial()]
    for _ in range(3):  # every state three pieces deep
        states += frontier
        frontier = [lex.advance(s, t) for s in frontier for t in range(1, eos)]
    bonuses = lex.bonuses(states, torch.zeros(len(states), len(RANDOM_PIECES)), eos)
    assert float(bonuses.max()) <= lex.max_bonus
    assert float(bonuses.max()) > lex.max_bonus - 1.0  # a likely word ("the" after "on") comes close
    assert WordLexicon(words, RANDOM_PIECES, {0, eos}, eos).for_request(3.0).max_bonus == 0.0  # penalties only
