"""Dialogue contexts for entity utterances: what a real assistant would hold.

Given the entity an utterance says, build history turns (user and assistant), a contact list or
hotwords, an assistant description, and distractor entities the utterance does not say.
Used by LM pretraining (text only), context SFT and the context evaluation sets.
"""

from __future__ import annotations

import random

from shared.context import ContextInput
from training.data.text import EntityFaker

ASSISTANT_TURNS = [  # every one names its entity: a turn chosen to mention one must not drop it
    "i found {e} in your contacts", "your last trip was to {e}", "you have a meeting with {e} tomorrow",
    "the nearest store is {e}", "i added {e} to your list", "your prescription for {e} is due",
    "{e} sent you a message",
]
FILLER_TURNS = ["who would you like to call", "sure what should the message say", "okay what else can i do for you"]
USER_TURNS = [
    "i need to talk to {e}", "what about {e}", "remind me about {e} later", "how about {e}",
    "i was thinking of {e}", "is {e} open today", "tell me more about {e}",
]
PROMPTS = ["a voice assistant on a phone", "an in car assistant", "a smart speaker in the kitchen",
           "a pharmacy helpline assistant", "a travel booking assistant", ""]


def dialogue_context(rng: random.Random, ents: EntityFaker, entity: str | None, n_distractors: int) -> ContextInput:
    """Context holding `entity` (when given) among `n_distractors` other entities."""
    return dialogue_context_with_entities(rng, ents, entity, n_distractors)[0]


def dialogue_context_with_entities(rng: random.Random, ents: EntityFaker, entity: str | None,
                                   n_distractors: int) -> tuple[ContextInput, list[str]]:
    """The context and every entity it mentions (for insertion metrics)."""
    mentions = [ents.person() if rng.random() < 0.5 else rng.choice([ents.city(), ents.company(), ents.product()])
                for _ in range(n_distractors)]
    if entity:
        mentions.insert(rng.randint(0, len(mentions)), entity)
    turns: list[str] = []
    hotwords: list[str] = []
    cities: list[str] = []  # extra places the assistant named: distractors too
    for m in mentions:
        where = rng.random()
        if where < 0.25:
            hotwords.append(m)
        else:
            turns.append(rng.choice(ASSISTANT_TURNS if where < 0.7 else USER_TURNS).format(e=m))
        if rng.random() < 0.3:
            cities.append(ents.city())
            turns.append(rng.choice(ASSISTANT_TURNS).format(e=cities[-1]))
        if rng.random() < 0.2:
            turns.append(rng.choice(FILLER_TURNS))
    return ContextInput(turns=turns, hotwords=hotwords, prompt=rng.choice(PROMPTS)), mentions + cities
