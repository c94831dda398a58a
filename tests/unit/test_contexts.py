"""Synthetic dialogue contexts: every entity they claim to mention is really in them."""

from __future__ import annotations

import random

from training.data.contexts import dialogue_context_with_entities
from training.data.text import EntityFaker


def test_every_mentioned_entity_is_in_the_turns_or_hotwords() -> None:
    rng, ents = random.Random(0), EntityFaker(0)
    for i in range(300):
        entity = ents.person() if i % 2 else None
        ctx, mentions = dialogue_context_with_entities(rng, ents, entity, rng.randint(0, 4))
        text = " | ".join([*ctx.turns, *ctx.hotwords])
        assert all(m in text for m in mentions), (mentions, text)
        assert entity is None or entity in mentions


def test_keyword_hit_takes_whole_words_and_possessives() -> None:
    from training.eval.run import keyword_hit

    assert keyword_hit("roy", "what is roy's phone number") and keyword_hit("mcdonald's", "open mcdonald's now")
    assert keyword_hit("o'riordan ltd", "find the nearest O'Riordan Ltd store")
    assert not keyword_hit("roy", "a royal visit") and not keyword_hit("roy's", "call roy")


def test_context_sft_rows_follow_the_no_context_share() -> None:
    from pathlib import Path

    from shared.tokenizer import Tokenizer
    from training.sft.train import contexts_for

    tok = Tokenizer(Path(__file__).resolve().parents[2] / "bundles" / "default" / "tokenizer.model")
    rows = [{"text": "call ada lovelace", "entities": ["ada lovelace"]}] * 600
    for share in (0.2, 0.5):
        ctxs = contexts_for(rows, tok, random.Random(1), EntityFaker(1), "context_sft", no_context_share=share)
        named = [c is not None and tok.decode(c).count("ada lovelace") > 0 for c in ctxs]
        assert abs(sum(c is None for c in ctxs) / len(rows) - share) < 0.06
        assert abs(sum(named) / len(rows) - 0.75 * (1 - share)) < 0.06  # the rest hold distractors only
    assert contexts_for(rows[:5], tok, random.Random(1), EntityFaker(1), "sft", 0.2) == [None] * 5
