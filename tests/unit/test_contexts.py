"""Synthetic dialogue contexts: every entity they claim to mention is really in them."""

from __future__ import annotations

import random

import pytest

from tests.conftest import ROOT
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


@pytest.mark.weights
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


def test_keyword_misses_name_each_missed_keyword_with_both_transcripts() -> None:
    from training.eval.run import keyword_misses

    rows = [{"id": "a", "text": "call seana now", "keywords": ["seana"]},
            {"id": "b", "text": "drive to tara ganj", "keywords": ["tara ganj"]},
            {"id": "c", "text": "play music", "keywords": [], "distractor": True}]
    missed = keyword_misses(rows, ["call seana now", "drive to tara", "play music"],
                            ["call saina now", "drive to tara ganj", "play music"])
    assert missed == [{"id": "b", "keyword": "tara ganj", "text": "drive to tara ganj",
                       "with_context": "drive to tara", "without_context": "drive to tara ganj"}]


def test_served_run_is_the_context_run_at_the_served_settings() -> None:
    import dataclasses

    from shared.decoding import DecodingDefaults
    from training.eval.run import served_run

    served = DecodingDefaults.from_bundle(ROOT / "bundles" / "default")
    table = [{"setting": "no context", "alpha": None},
             *({"setting": f"a{a}b{b}", "alpha": a, "bias": b, "correction": served.correction_margin,
                "prune_k": served.context_prune_k} for a in (0.5, served.context_weight) for b in (0.0, served.bias_bonus))]
    assert served_run(table, served)["setting"] == f"a{served.context_weight}b{served.bias_bonus}"
    other = dataclasses.replace(served, context_weight=0.1)
    assert served_run(table, other)["setting"] == "a0.5b0.0"  # none served: the first context run
