"""Phrase biasing for beam search: a bonus for tokens that spell a context phrase.

The context-conditioned stream only helps once the LM has learned to copy from its prompt; a
production recogniser also needs hotwords to work before that. Biasing phrases (request hotwords,
rare words of the dialogue history: shared/context.py) go into a token trie. A hypothesis that
follows a trie path gains `bonus` per token; leaving the path before a phrase ends takes the gained
bonus back, so only complete phrases keep it (the usual context-graph rule), and each phrase keeps it
once per hypothesis (a decoder that repeats itself gains nothing by it). The bonus is added to
the joint scores after pruning. Without a CTC scorer it can only pick among the context-free top
prune_k, unless the search lets phrase tokens past the pruning (BeamConfig.phrases_past_prune: a
decoder that has no CTC head, shared/model/whisper_search.py). With one, the tokens that would
continue or start a phrase (`candidates`) are CTC-scored too, at the LM score of the prune boundary:
a rare name the LM ranks low can win where the speech supports it, while the acoustics keep a name
nobody said out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class BiasState:
    node: int = 0  # trie node, 0 is the root
    gained: float = 0.0  # bonus gained on the current, unfinished path
    done: frozenset[int] = frozenset()  # the final nodes of the phrases this hypothesis has spelled whole


class Biasing(Protocol):
    """What the beam search asks of a biaser: PhraseBiasing (token trie) or ByteBiasing (shared/model/byte_biasing.py,
    for languages written without spaces)."""

    def __bool__(self) -> bool: ...
    def bonuses(self, states: Sequence[BiasState], vocab: int) -> torch.Tensor: ...
    def candidates(self, states: Sequence[BiasState], pad: int) -> torch.Tensor: ...
    def advance(self, st: BiasState, token: int) -> BiasState: ...


class PhraseBiasing:
    """A trie over token-id phrases: per-hypothesis states and the (N, V) bonus of every next token."""

    def __init__(self, phrases: Sequence[Sequence[int]], bonus: float) -> None:
        self.bonus = bonus
        self.children: list[dict[int, int]] = [{}]
        self.final: list[bool] = [False]
        for phrase in phrases:
            node = 0
            for token in phrase:
                if token not in self.children[node]:
                    self.children.append({})
                    self.final.append(False)
                    self.children[node][token] = len(self.children) - 1
                node = self.children[node][token]
            if node:
                self.final[node] = True

    def __bool__(self) -> bool:
        return bool(self.children[0]) and self.bonus > 0

    def bonuses(self, states: Sequence[BiasState], vocab: int) -> torch.Tensor:
        """(N, V): the score change of appending each token to each hypothesis (eos included:
        ending a hypothesis mid-phrase takes its gain back)."""
        out = torch.empty(len(states), vocab)
        root = list(self.children[0])
        for i, st in enumerate(states):
            row = out[i]
            row.fill_(-st.gained)
            row[root] += self.bonus  # leaving the path, then starting a phrase afresh
            for token, child in self.children[0].items() if st.done else ():
                if child in st.done:  # a one-token phrase said already
                    row[token] = -st.gained
            for token, child in self.children[st.node].items():
                # spelling a phrase a second time earns nothing: the bonus must not pay for a decoder's loops
                row[token] = -st.gained if child in st.done else self.bonus
        return out

    def candidates(self, states: Sequence[BiasState], pad: int) -> torch.Tensor:
        """(N, E): the tokens that continue each hypothesis's phrase or start a new one, padded with `pad`."""
        root = list(self.children[0])
        rows = [root + [t for t in self.children[st.node] if t not in self.children[0]] if st.node else root
                for st in states]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)

    def advance(self, st: BiasState, token: int) -> BiasState:
        node = self.children[st.node].get(token)
        gained = st.gained
        if node is None:
            node, gained = self.children[0].get(token), 0.0
            if node is None:
                return BiasState(done=st.done)
        gained += self.bonus
        done = st.done
        if self.final[node]:
            # a whole phrase: its bonus is kept (once: bonuses); a longer phrase may still follow from here
            gained, done = 0.0, done | {node}
            if not self.children[node]:
                node = 0
        return BiasState(node, gained, done)
