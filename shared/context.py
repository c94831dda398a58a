"""Context assembly: session turns + request context -> the decoder's context tokens.

The same function builds context for LM pretraining, context SFT, evaluation and serving, so the
model always sees one format:  prompt <turn> hotwords <turn> turn ... <turn> newest turn
Explicit request context (prompt, hotwords) is kept first; turns are taken newest first until the
token budget is spent, then laid out oldest to newest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shared.text import normalize_text
from shared.tokenizer import Tokenizer


@dataclass
class ContextInput:
    turns: Sequence[str] = ()  # oldest first, already role-free text
    hotwords: Sequence[str] = ()
    prompt: str = ""


@dataclass
class AssembledContext:
    token_ids: list[int]
    text: str
    turns_used: int


def assemble_context(tok: Tokenizer, ctx: ContextInput, budget: int) -> AssembledContext:
    pieces: list[list[int]] = []
    texts: list[str] = []
    used = 0

    def room(ids: list[int]) -> bool:
        return used + len(ids) + 1 <= budget

    head: list[tuple[list[int], str]] = []
    for text in (ctx.prompt, " ".join(normalize_text(h) for h in ctx.hotwords)):
        norm = normalize_text(text)
        if norm:
            ids = tok.encode(norm)[: max(0, budget - used - 1)]
            if ids:
                head.append((ids, norm))
                used += len(ids) + 1
    chosen: list[tuple[list[int], str]] = []
    for turn in reversed(list(ctx.turns)):  # newest first
        norm = normalize_text(turn)
        if not norm:
            continue
        ids = tok.encode(norm)
        if not room(ids):
            break
        chosen.append((ids, norm))
        used += len(ids) + 1
    for ids, text in head + list(reversed(chosen)):
        pieces.append(ids)
        texts.append(text)
    token_ids: list[int] = []
    for i, ids in enumerate(pieces):
        if i:
            token_ids.append(tok.turn_id)
        token_ids.extend(ids)
    return AssembledContext(token_ids, " | ".join(texts), len(chosen))
