"""The joint beam search over a Whisper-style decoder: cached and uncached scorers agree, greedy equals
greedy_decode, context only moves what it should, specials are never written."""

import dataclasses

import torch

from shared.model.beam_search import BeamConfig
from shared.model.biasing import PhraseBiasing
from shared.model.whisper_decoder import WhisperDecoder, WhisperDecoderConfig, greedy_decode
from shared.model.whisper_search import allowed_logp, whisper_beam_search

VOCAB, EOT = 40, 30  # ids above EOT are specials: start of transcript 31, start of previous 32
TINY = WhisperDecoderConfig(vocab_size=VOCAB, d_model=32, n_heads=4, n_layers=2, max_tokens=40)


class TinyTokens:
    """WhisperTokens' interface over a made-up vocabulary: a word's id is its length."""

    eot = EOT
    blank: int | None = 0

    def encode(self, text: str, lead_space: bool = True) -> list[int]:
        return [min(len(w), EOT - 1) for w in text.split()]

    def prompt(self, language: str = "en", previous: str | None = None, max_previous: int = 223) -> list[int]:
        return [32, *self.encode(previous)[-max_previous:], 31] if previous else [31]


def _decoder() -> WhisperDecoder:
    torch.manual_seed(3)
    dec = WhisperDecoder(TINY).eval()
    with torch.no_grad():  # make </s> likely enough that hypotheses end inside the budget
        dec.embed.weight[EOT] *= 3
    return dec


def _assert_cached_matches_uncached(dec, audio, tok, context, cfg, **kwargs) -> list:
    """The cached search's n-best (tokens and scores) is the uncached reference's; returns the cached one."""
    cached = whisper_beam_search(dec, audio, tok, context, cfg, **kwargs)
    uncached = whisper_beam_search(dec, audio, tok, context, cfg, cached=False, **kwargs)
    assert [h.tokens for h in cached] == [h.tokens for h in uncached]
    for a, b in zip(cached, uncached):
        assert abs(a.score - b.score) < 1e-4
    return cached


def test_cached_and_uncached_scorers_find_the_same_nbest() -> None:
    dec, audio, tok = _decoder(), torch.randn(12, 32), TinyTokens()
    cfg = BeamConfig(beam_size=3, nbest=3, max_tokens=8, alpha=0.5, prune_k=6, ctc_weight=0.5)
    bias = PhraseBiasing([[4, 5]], 1.5)
    for context in (None, "seven words of some context here"):
        cached = _assert_cached_matches_uncached(dec, audio, tok, context, cfg, bias=bias)
        assert all(t < EOT for h in cached for t in h.tokens)


def test_greedy_context_free_search_is_greedy_decoding() -> None:
    """Up to where the search stops: a beam of one ends a hypothesis once an ended one outscores it."""
    dec, audio, tok = _decoder(), torch.randn(12, 32), TinyTokens()
    tok.blank = None  # greedy_decode does not rule out a leading bare space
    cfg = BeamConfig(beam_size=1, nbest=1, max_tokens=8, alpha=0.9, prune_k=8, ctc_weight=0.5)
    best = whisper_beam_search(dec, audio, tok, None, cfg)[0]
    greedy = greedy_decode(dec, audio[None], tok.prompt(), EOT, max_new=8)
    assert best.tokens and best.tokens == greedy[: len(best.tokens)]


def test_a_bias_bonus_writes_the_phrase() -> None:
    dec, audio, tok = _decoder(), torch.randn(12, 32), TinyTokens()
    cfg = BeamConfig(beam_size=4, nbest=1, max_tokens=8, alpha=0.5, prune_k=VOCAB, ctc_weight=0.5)
    plain = whisper_beam_search(dec, audio, tok, None, cfg)[0].tokens
    phrase = [t for t in range(1, 6) if t not in plain[:1]][:2]
    biased = whisper_beam_search(dec, audio, tok, None, cfg, bias=PhraseBiasing([phrase], 20.0))[0].tokens
    assert any(biased[i : i + 2] == phrase for i in range(len(biased) - 1))


def test_the_text_scorer_sums_the_searchs_own_token_scores() -> None:
    """whisper_text_scorer (phrase correction's judge without a CTC head) gives log P(text </s> | audio) as the
    search's context-free stream scores it, for a padded batch as for each text alone; an empty text scores -inf."""
    from shared.model.whisper_search import allowed_logp, whisper_text_scorer

    dec, audio, tok = _decoder(), torch.randn(12, 32), TinyTokens()
    texts = ["aa bbb c", "dddd", "ee f gg hhh iii", ""]
    with torch.inference_mode():
        audio_kv = dec.audio_keys(audio[None])
    scores = whisper_text_scorer(dec, audio_kv, tok)(texts)
    for text, got in zip(texts[:3], scores[:3]):
        ids = tok.encode(text) + [EOT]
        want = sum(float(allowed_logp(dec(torch.tensor([tok.prompt() + ids[:i]]), audio[None])[:, -1], EOT, False, None)[0, t])
                   for i, t in enumerate(ids))
        assert abs(float(got) - want) < 1e-4
        assert abs(float(whisper_text_scorer(dec, audio_kv, tok)([text])[0]) - want) < 1e-4
    assert scores[3] == float("-inf")


def _tiny_lexicon(words: set[str], penalty: float):
    """A word lexicon over TinyTokens' pieces: id i writes a word of i letters a ("aaa" for 3); 0 is the bare space."""
    from shared.model.lexicon import WORD_START, WordLexicon

    pieces = [WORD_START + "a" * i for i in range(EOT)] + [""] * (VOCAB - EOT)
    return WordLexicon(frozenset(words), pieces, range(EOT, VOCAB), EOT).for_request(penalty)


def test_a_lexicon_scores_the_same_in_cached_and_uncached_search() -> None:
    dec, audio, tok = _decoder(), torch.randn(12, 32), TinyTokens()
    cfg = BeamConfig(beam_size=3, nbest=3, max_tokens=8, alpha=0.5, prune_k=VOCAB, ctc_weight=0.5)
    lexicon = _tiny_lexicon({"aa", "aaa", "aaaaa"}, 3.0)
    for context in (None, "seven words of some context here"):
        _assert_cached_matches_uncached(dec, audio, tok, context, cfg, lexicon=lexicon)


def test_a_lexicon_penalty_keeps_the_transcript_to_its_words() -> None:
    dec, audio, tok = _decoder(), torch.randn(12, 32), TinyTokens()
    cfg = BeamConfig(beam_size=4, nbest=1, max_tokens=8, alpha=0.5, prune_k=VOCAB, ctc_weight=0.5)
    plain = whisper_beam_search(dec, audio, tok, None, cfg)[0].tokens
    words = {"a" * t for t in (2, 3) if t not in plain} or {"aa"}  # words the plain search does not write
    held = whisper_beam_search(dec, audio, tok, None, cfg, lexicon=_tiny_lexicon(words, 50.0))[0].tokens
    assert held and all("a" * t in words for t in held)
    assert held != plain


def _counting(dec: WhisperDecoder) -> list[int]:
    """Counts the decoder's runs from now on (one per search step, one for the prompts)."""
    calls: list[int] = []
    run = WhisperDecoder.run.__get__(dec)

    def counted(*args, **kwargs):
        calls.append(1)
        return run(*args, **kwargs)

    dec.run = counted  # type: ignore[method-assign]
    return calls


def test_a_draft_that_is_not_confirmed_changes_nothing() -> None:
    """A draft whose first token the audio does not rank first (or not by the margin) is dropped at once: the n-best,
    scores included, is the plain search's."""
    dec, tok = _decoder(), TinyTokens()
    cfg = BeamConfig(beam_size=3, nbest=3, max_tokens=8, alpha=0.5, prune_k=6, ctc_weight=0.5, draft_margin=1.0)
    for seed in range(4):
        torch.manual_seed(seed)
        audio = torch.randn(12, 32)
        for context in (None, "seven words of some context here"):
            plain = whisper_beam_search(dec, audio, tok, context, cfg)
            wrong = [t for t in range(1, EOT) if t != plain[0].tokens[0]][:3]
            unsure = dataclasses.replace(cfg, draft_margin=1e6)
            for got in (whisper_beam_search(dec, audio, tok, context, cfg, draft=wrong),
                        whisper_beam_search(dec, audio, tok, context, unsure, draft=plain[0].tokens)):
                assert [h.tokens for h in got] == [h.tokens for h in plain]
                assert all(abs(a.score - b.score) < 1e-4 for a, b in zip(got, plain))


def _teacher_forced(dec: WhisperDecoder, audio: torch.Tensor, tok: TinyTokens, ids: list[int], budget: int) -> float:
    """log P(ids </s> | audio) as the context-free search scores it, one token at a time (an end forced at the
    search's token budget costs nothing)."""
    with torch.inference_mode():
        return sum(float(allowed_logp(dec(torch.tensor([tok.prompt() + ids[:i]]), audio[None])[:, -1], EOT, i == 0,
                                      tok.blank)[0, t]) for i, t in enumerate([*ids, EOT][:budget]))


def test_a_confirmed_draft_is_followed_at_its_own_scores_in_fewer_steps() -> None:
    """The draft's tokens the audio ranks first by the margin are taken without a beam, scored as the search scores
    them: every hypothesis's score is its tokens' teacher-forced log-probability, and the decoder runs fewer times."""
    dec, tok = _decoder(), TinyTokens()
    cfg = BeamConfig(beam_size=3, nbest=3, max_tokens=8, alpha=0.5, prune_k=VOCAB, ctc_weight=0.5, draft_margin=0.01)
    followed = 0
    for seed in range(6):
        torch.manual_seed(seed)
        audio = torch.randn(12, 32)
        greedy = whisper_beam_search(dec, audio, tok, None, dataclasses.replace(cfg, beam_size=1, nbest=1))[0].tokens
        plain_calls = _counting(dec)
        whisper_beam_search(dec, audio, tok, None, cfg)
        draft_calls = _counting(dec)
        got = whisper_beam_search(dec, audio, tok, None, cfg, draft=greedy)
        del dec.run  # the instance's counters: the class's run again
        for h in got:
            assert abs(_teacher_forced(dec, audio, tok, h.tokens, cfg.max_tokens) - h.score) < 1e-4
        if len(greedy) > 1:
            followed += 1
            assert len(draft_calls) < len(plain_calls) - len(plain_calls) // 4
    assert followed
