"""Text-only training examples in the prompt format, with pseudo-speech in the speech span.

Pseudo-speech is made from the sentence itself: its token embeddings repeated 1-3 times with blank
(<pad>) embeddings between them, some tokens substituted or dropped, Gaussian noise added, then
layer-normalised like the converter's output. LM pretraining uses it so the LM reads the speech span
before SFT freezes it; context SFT mixes it in (with the LM training) to teach copying from context.

Copying is taught by making the entity hard to hear: when the context names the entity, its span of
the pseudo-speech is usually garbled (most tokens substituted, some dropped), so only the context can
restore it; a share of examples garble the entity while the context holds only distractors, so the LM
does not learn to paste any context entity into a garbled span.
"""

from __future__ import annotations

import random
from typing import Optional

import torch

from shared.context import assemble_context
from shared.model.asr import Batch, SeedASR
from shared.tokenizer import Tokenizer
from training.data.contexts import dialogue_context
from training.data.text import EntityFaker, entity_sentence
from training.recipe import CONTEXT_BUDGET

REPEATS = (1, 1, 1, 2, 2, 3)  # positions per token: about 80 ms speech positions per BPE piece
TextExample = tuple[Optional[list[int]], list[int], range]  # context ids, target ids, garbled span


def find_span(ids: list[int], part: list[int]) -> range:
    """Where `part` occurs in `ids` (the first time), or an empty range."""
    for i in range(len(ids) - len(part) + 1):
        if part and ids[i : i + len(part)] == part:
            return range(i, i + len(part))
    return range(0)


def pseudo_ids(ids: list[int], blank: int, first_normal: int, vocab: int, rng: random.Random,
               garbled: range = range(0)) -> list[int]:
    """Token ids -> CTC-like position ids: repeats and blanks, substitutions, deletions.

    Tokens at positions in `garbled` are substituted at a rate of 0.5-1.0 and dropped at 0.15."""
    sub_rate, del_rate = rng.uniform(0.0, 0.25), rng.uniform(0.0, 0.08)
    hard_sub = rng.uniform(0.5, 1.0)
    seq = [blank] * rng.randint(0, 6)
    for i, t in enumerate(ids):
        hard = i in garbled
        if rng.random() < (0.15 if hard else del_rate):
            continue
        if rng.random() < (hard_sub if hard else sub_rate):
            t = rng.randrange(first_normal, vocab)
        seq += [blank] * rng.choice((0, 0, 1, 1, 2)) + [t] * rng.choice(REPEATS)
    return seq + [blank] * rng.randint(1, 6)


def pseudo_speech(ids: list[int], embed: torch.Tensor, blank: int, first_normal: int, rng: random.Random,
                  garbled: range = range(0)) -> torch.Tensor:
    """Token ids -> (S, D) pseudo-speech: the embeddings of `pseudo_ids`, noised and layer-normalised."""
    seq = pseudo_ids(ids, blank, first_normal, embed.shape[0], rng, garbled)
    x = embed[torch.tensor(seq, device=embed.device)]
    rms = x.detach().pow(2).mean().sqrt()
    x = x + torch.randn_like(x) * rms * rng.uniform(0.2, 1.0)
    return torch.nn.functional.layer_norm(x, x.shape[-1:])


def text_examples(tok: Tokenizer, corpus: list[str], rng: random.Random, ents: EntityFaker, n: int,
                  entity_share: float = 0.55) -> list[TextExample]:
    """n examples: at the default entity_share, 45% entity in context (garbled 70% of the time), 10% garbled
    entity with distractor context only, 10% corpus sentence with distractors, 35% without context."""
    out: list[TextExample] = []
    for _ in range(n):
        r = rng.random()
        garble = False
        if r < entity_share:
            sent, entity, _ = entity_sentence(ents, rng)
            in_context = r < entity_share * 9 / 11
            garble = rng.random() < 0.7 if in_context else True
            ctx = dialogue_context(rng, ents, entity if in_context else None, rng.randint(0 if in_context else 1, 4))
        elif r < entity_share + 0.1:
            sent, entity = rng.choice(corpus), ""
            ctx = dialogue_context(rng, ents, None, rng.randint(1, 4))
        else:
            sent, entity, ctx = rng.choice(corpus), "", None
        target = tok.encode(sent)[:60]
        span = find_span(target, tok.encode(entity)) if garble else range(0)
        out.append((assemble_context(tok, ctx, CONTEXT_BUDGET).token_ids if ctx else None, target, span))
    return out


def text_batch(model: SeedASR, tok: Tokenizer, examples: list[TextExample], rng: random.Random) -> Batch:
    """Teacher-forcing batch of text examples with pseudo-speech made from the LM's own embeddings."""
    first_normal = max(tok.special_ids) + 1  # substitutions draw ordinary tokens only
    embed = model.lm.embed.weight
    spans = [pseudo_speech(t, embed, model.cfg.ctc_blank, first_normal, rng, g) for _, t, g in examples]
    lens = torch.tensor([len(sp) for sp in spans])
    speech = torch.nn.utils.rnn.pad_sequence(spans, batch_first=True)
    return model.build_batch(tok, speech, lens, [c for c, _, _ in examples], [t for _, t, _ in examples])


@torch.no_grad()
def copy_gain(model: SeedASR, tok: Tokenizer, rng: random.Random, ents: EntityFaker, n: int = 64) -> dict:
    """How much the LM copies from context: mean log P per token of a garbled entity span, with the
    context naming the entity and without context, on the same pseudo-speech (n fresh sentences)."""
    rows: list[tuple[list[int], list[int], range]] = []
    while len(rows) < n:
        sent, entity, _ = entity_sentence(ents, rng)
        target = tok.encode(sent)[:60]
        span = find_span(target, tok.encode(entity))
        if span:
            ctx = dialogue_context(rng, ents, entity, rng.randint(0, 4))
            rows.append((assemble_context(tok, ctx, CONTEXT_BUDGET).token_ids, target, span))
    seed, was_training = rng.randrange(1 << 30), model.training
    model.eval()
    out = {}
    free: list[TextExample] = [(None, t, s) for _, t, s in rows]
    with_ctx: list[TextExample] = list(rows)
    for name, examples in (("with_context", with_ctx), ("without_context", free)):
        torch.manual_seed(seed)  # the same pseudo-speech noise for both
        batch = text_batch(model, tok, examples, random.Random(seed))
        logp = model.lm(batch.embeds, batch.valid)[0].log_softmax(-1)
        total, count = 0.0, 0
        for i, (_, _, span) in enumerate(examples):
            labelled = (batch.labels[i] != -100).nonzero().flatten()  # position of target token j = labelled[j]
            for j in span:
                total += float(logp[i, labelled[j], batch.labels[i, labelled[j]]])
                count += 1
        out[name] = total / max(count, 1)  # unrounded: a tiny model's two means can agree to 3 decimals
    model.train(was_training)
    return out
