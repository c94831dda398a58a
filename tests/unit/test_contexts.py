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
