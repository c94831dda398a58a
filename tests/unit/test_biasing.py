"""Phrase biasing: whole phrases keep their bonus, partial ones give it back, pruning still rules."""

import math

import pytest
import torch

from seedasr.v1 import common_pb2
from services.decoder.config import beam_config
from shared.context import ContextInput, assemble_context, drop_contained, rare_runs
from shared.decoding import decoding_for
from shared.model.beam_search import BeamConfig, search
from shared.model.biasing import BiasState, PhraseBiasing
from shared.model.ctc_prefix import CTCPrefixScorer
from shared.settings import load_settings
from shared.tokenizer import Tokenizer
from tests.conftest import ROOT

EOS, VOCAB = 5, 6
# A bigram "LM": next-token probabilities given the last token (None = first step).
BIGRAM = {None: {1: 0.6, 3: 0.3}, 1: {2: 0.6, EOS: 0.3}, 2: {EOS: 0.9}, 3: {4: 0.7}, 4: {EOS: 0.9}}


def bigram_step(streams: int = 1):
    def step(parents, last):
        rows = [None] if last is None else last.tolist()
        out = torch.full((len(rows), VOCAB), 1e-3)
        for i, tok in enumerate(rows):
            for nxt, p in BIGRAM.get(tok, {EOS: 0.9}).items():
                out[i, nxt] = p
        return out.log()[None].expand(streams, -1, -1)

    return step


def run(phrases, bonus, streams=1, prune_k=8, past_prune=False):
    bias = PhraseBiasing(phrases, bonus) if phrases else None
    cfg = BeamConfig(beam_size=4, nbest=4, max_tokens=6, prune_k=prune_k, phrases_past_prune=past_prune, alpha=0.5,
                     ctc_weight=0.5)
    return search(bigram_step(streams), EOS, cfg, 0.5, bias=bias)


def test_bonus_per_token_is_kept_only_for_whole_phrases() -> None:
    bias = PhraseBiasing([[3, 4], [3, 4, 1]], 2.0)
    st = bias.advance(BiasState(), 3)
    assert st.gained == 2.0
    row = bias.bonuses([st], VOCAB)[0]
    assert row[4] == 2.0 and row[EOS] == -2.0 and row[1] == -2.0  # 1 leaves the path: the 2.0 goes back
    st = bias.advance(st, 4)  # "3 4" is a whole phrase: kept, and "3 4 1" may still follow
    assert st.gained == 0.0 and bias.bonuses([st], VOCAB)[0][EOS] == 0.0
    st = bias.advance(st, 1)  # "3 4 1" complete, back at the root
    assert st.node == 0 and st.gained == 0.0 and len(st.done) == 2


def test_a_phrase_said_again_earns_nothing_more() -> None:
    """A decoder that loops ("kilbride street kilbride street ...") must not be paid for it."""
    bias = PhraseBiasing([[3, 4], [2]], 2.0)
    st = bias.advance(bias.advance(BiasState(), 3), 4)
    assert bias.bonuses([st], VOCAB)[0][3] == 2.0  # the first token of a said phrase still gains (it is taken back below)
    st = bias.advance(st, 3)
    assert bias.bonuses([st], VOCAB)[0][4] == -2.0  # completing it again gives back what its start gained
    st = bias.advance(bias.advance(st, 4), 2)
    assert bias.bonuses([st], VOCAB)[0][2] == 0.0  # a one-token phrase said already


def test_bias_picks_a_phrase_the_model_ranks_second_and_never_a_partial_one() -> None:
    plain = run(None, 0.0)
    assert plain[0].tokens == [1, 2]
    biased = run([[3, 4]], 1.0)
    assert biased[0].tokens == [3, 4]
    assert math.isclose(biased[0].score, math.log(0.3 * 0.7 * 0.9) + 2.0, rel_tol=1e-5)
    # only the start of a longer phrase is said: its bonus is taken back when the hypothesis ends
    assert run([[3, 4, 1]], 1.0)[0].tokens == [1, 2]
    assert [h.tokens for h in run([[3, 4]], 0.0)] == [h.tokens for h in plain]


def test_bias_cannot_bring_in_tokens_the_context_free_pass_pruned() -> None:
    assert run([[3, 4]], 3.0, streams=2, prune_k=1)[0].tokens == [1, 2]
    assert run([[3, 4]], 3.0, streams=2, prune_k=2)[0].tokens == [3, 4]


def test_phrases_past_prune_keeps_a_phrase_the_pruning_would_cut() -> None:
    """A decoder without a CTC head (the `whisper` one) lets a phrase's tokens through at their own joint score:
    the phrase wins where its score and bonus beat the rest, a phrase nobody's model believes still does not."""
    assert run([[3, 4]], 3.0, streams=2, prune_k=1, past_prune=True)[0].tokens == [3, 4]
    assert run([[3, 4]], 3.0, streams=2, prune_k=1, past_prune=False)[0].tokens == [1, 2]
    assert run([[2, 4]], 0.5, streams=2, prune_k=1, past_prune=True)[0].tokens == [1, 2]  # 2 then 4: too unlikely


def ctc_of(tokens: list[int], blank: int = 0) -> CTCPrefixScorer:
    """CTC posteriors (T, V) that clearly say `tokens`, one frame each, blanks in between."""
    frames = [t for tk in tokens for t in (tk, blank)]
    logp = torch.full((len(frames), VOCAB), 1e-4)  # peaky, as trained CTC heads are
    for i, tk in enumerate(frames):
        logp[i, tk] = 0.9
    return CTCPrefixScorer((logp / logp.sum(-1, keepdim=True)).log(), blank, EOS)


def test_with_ctc_a_phrase_the_lm_pruned_wins_only_where_the_speech_says_it() -> None:
    cfg = BeamConfig(beam_size=4, nbest=4, max_tokens=6, prune_k=1, ctc_weight=0.5, alpha=0.5)

    def decode(phrases, said):
        bias = PhraseBiasing(phrases, 3.0) if phrases else None
        return search(bigram_step(2), EOS, cfg, 0.5, ctc=ctc_of(said), bias=bias)[0].tokens

    assert decode(None, [3, 4]) != [3, 4]  # the LM pruned 3: without the phrase it cannot come back
    assert decode([[3, 4]], [3, 4]) == [3, 4]  # the phrase's tokens are CTC-scored and the speech says them
    assert decode([[3, 4]], [1, 2]) == [1, 2]  # a phrase nobody said is not inserted


@pytest.mark.weights
def test_context_gives_hotwords_and_rare_runs_of_the_turns_used_as_bias_phrases() -> None:
    assert rare_runs("you have a meeting with maren kessel tomorrow") == ["maren kessel"]
    tok = Tokenizer(ROOT / "bundles" / "default" / "tokenizer.model")
    ctx = ContextInput(turns=["your last trip was to bezdruzice", "i found ukow in your contacts"],
                       hotwords=["Michelle"], prompt="a car assistant")
    assert assemble_context(tok, ctx, 200).bias_phrases == ["michelle", "ukow", "bezdruzice"]
    assert assemble_context(tok, ctx, 30).bias_phrases == ["michelle", "ukow"]  # the older turn did not fit
    # long audio: the previous window's own (maybe misrecognised) words are context, not bias phrases
    long = assemble_context(tok, ContextInput(turns=["i found ukow in your contacts"], previous_text="call zarnik"), 200)
    assert long.text.endswith("call zarnik") and long.bias_phrases == ["ukow"]
    # a session's recognised user turns likewise: only the assistant's turn gives phrases
    session = ContextInput(turns=["call tomas robel", "i found ukow in your contacts", "callton as roble"],
                           recognised=[True, False, True])
    assembled = assemble_context(tok, session, 200)
    assert assembled.turns_used == 3 and assembled.bias_phrases == ["ukow"]
    # a phrase inside a longer one is left out: the two together paid most for "kilbride kilbride street"
    demo = ContextInput(turns=["Your pharmacy on Kilbride Street closes at six."], hotwords=["Kilbride Street"])
    assert assemble_context(tok, demo, 200).bias_phrases == ["kilbride street"]
    assert drop_contained(["kilbride", "kilbride street", "street", "bride", "ukow"]) == ["kilbride street", "bride", "ukow"]


def test_a_repetition_gains_nothing_over_the_spoken_phrase() -> None:
    """With phrases [1] and [1, 2] a trie that paid every completion would give the repeated [1, 1, 2] three
    bonuses and the spoken [1, 2] two (why drop_contained drops [1]); a phrase pays once per hypothesis."""
    def total(phrases: list[list[int]], tokens: list[int]) -> float:
        bias, st, gained = PhraseBiasing(phrases, 1.0), BiasState(), 0.0
        for t in tokens:
            gained += float(bias.bonuses([st], VOCAB)[0, t])
            st = bias.advance(st, t)
        return gained + float(bias.bonuses([st], VOCAB)[0, EOS])

    assert total([[1], [1, 2]], [1, 1, 2]) <= total([[1], [1, 2]], [1, 2])
    assert total([[1, 2]], [1, 1, 2]) <= total([[1, 2]], [1, 2])


def test_bias_bonus_is_a_request_parameter_with_a_server_default() -> None:
    settings = load_settings(bias_bonus=3.0)
    assert beam_config(common_pb2.RecognitionConfig(), decoding_for(settings)).bias_bonus == 3.0
    assert beam_config(common_pb2.RecognitionConfig(bias_bonus=0.0), decoding_for(settings)).bias_bonus == 0.0
    with pytest.raises(ValueError, match="bias_bonus"):
        beam_config(common_pb2.RecognitionConfig(bias_bonus=-1.0), decoding_for(settings))
