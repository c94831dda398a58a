"""Phrase biasing by the bytes the tokens spell, for languages written without spaces (Chinese).

A byte-level BPE splits a run of Chinese characters by its merges, which cross word edges: "请给王小明打电话" may
be spelled "请", "给王", "小", "明打", "电话", so the tokens of "王小明" said alone are not a path the decoder takes
in a sentence and a token trie (shared/model/biasing.py) never pays. Here the phrases are an Aho-Corasick automaton
over their UTF-8 bytes, and a hypothesis's state is the longest phrase prefix its text ends with, whatever tokens
spelled it. The rule is the token trie's, counted in characters: each character of a phrase gains `bonus`, leaving a
phrase before its end takes the gain back, and each phrase keeps its gain once per hypothesis.

Same interface as PhraseBiasing (bonuses, candidates, advance over BiasState), so the beam search takes either.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Sequence

import torch

from shared.model.biasing import BiasState

_MAX_SUFFIX = 32  # bytes of a token's end looked up as a phrase start (Whisper's longest token is shorter)


def _characters(data: bytes) -> float:
    """UTF-8 bytes -> how many characters they spell, a last incomplete one by its share of its bytes."""
    whole = data.decode("utf-8", "ignore")
    rest = len(data) - len(whole.encode())
    if not rest:
        return float(len(whole))
    lead = data[len(data) - rest]
    width = 4 if lead >= 0xF0 else 3 if lead >= 0xE0 else 2
    return len(whole) + rest / width


class TokenBytes:
    """The bytes each token id spells, with lookups by exact bytes, by prefix and by suffix (built once per
    tokenizer: the suffix index holds every token end of up to _MAX_SUFFIX bytes)."""

    def __init__(self, spelled: Sequence[bytes]) -> None:
        self.spelled = list(spelled)
        self.exact: dict[bytes, list[int]] = {}
        self.by_suffix: dict[bytes, list[int]] = {}
        for i, data in enumerate(self.spelled):
            if not data:
                continue
            self.exact.setdefault(data, []).append(i)
            for n in range(1, min(len(data), _MAX_SUFFIX) + 1):
                self.by_suffix.setdefault(data[-n:], []).append(i)
        self.sorted = sorted((data, i) for i, data in enumerate(self.spelled) if data)
        self.keys = [data for data, _ in self.sorted]

    def starting_with(self, prefix: bytes) -> list[int]:
        lo = bisect.bisect_left(self.keys, prefix)
        hi = bisect.bisect_left(self.keys, prefix + b"\xff" * 64)  # no token is that long
        return [i for _, i in self.sorted[lo:hi]]


class ByteBiasing:
    def __init__(self, phrases: Sequence[str], token_bytes: TokenBytes, bonus: float) -> None:
        self.bonus, self.tokens = bonus, token_bytes
        self.goto: list[dict[int, int]] = [{}]
        self.prefix: list[bytes] = [b""]
        self.final: list[bool] = [False]
        for phrase in dict.fromkeys(p.strip() for p in phrases if p.strip()):
            node = 0
            for byte in phrase.encode():
                if byte not in self.goto[node]:
                    self.goto.append({})
                    self.prefix.append(self.prefix[node] + bytes([byte]))
                    self.final.append(False)
                    self.goto[node][byte] = len(self.goto) - 1
                node = self.goto[node][byte]
            self.final[node] = True
        self.fail = [0] * len(self.goto)
        order = deque(self.goto[0].values())
        while order:  # breadth first: a node's failure link is set before its children's
            node = order.popleft()
            for byte, child in self.goto[node].items():
                back = self.fail[node]
                while back and byte not in self.goto[back]:
                    back = self.fail[back]
                self.fail[child] = self.goto[back].get(byte, 0) if self.goto[back].get(byte, 0) != child else 0
                order.append(child)
        # a partial match's gain: its characters, a character's first bytes by their share of it (a rare character
        # is spelled by two or three byte tokens, the first of which must make the beam too)
        self.value = [0.0 if self.final[n] else bonus * _characters(p) for n, p in enumerate(self.prefix)]
        self.full = [bonus * _characters(p) for p in self.prefix]
        self._candidates: dict[int, list[int]] = {}
        # tokens that begin a phrase from any state: those that end with its first whole characters ("给王"), and
        # those that are exactly its first bytes (a rare character spelled by two byte tokens); not every token that
        # ends with a character's lead byte, which would let hundreds of tokens past the pruning at each step
        self._starters = sorted({t for n in range(1, len(self.goto)) for t in
                                 (token_bytes.by_suffix.get(self.prefix[n], []) if self.full[n] > 0 else
                                  token_bytes.exact.get(self.prefix[n], []))})

    def __bool__(self) -> bool:
        return bool(self.goto[0]) and self.bonus > 0

    def _feed(self, node: int, data: bytes) -> tuple[int, list[int]]:
        """The automaton after `data` from `node`, and the phrase ends (final nodes) passed on the way."""
        ends = []
        for byte in data:
            while node and byte not in self.goto[node]:
                node = self.fail[node]
            node = self.goto[node].get(byte, 0)
            back = node
            while back:
                if self.final[back]:
                    ends.append(back)
                back = self.fail[back]
        return node, ends

    def _step(self, st: BiasState, token: int) -> tuple[BiasState, float]:
        node, ends = self._feed(st.node, self.tokens.spelled[token] if token < len(self.tokens.spelled) else b"")
        new = [e for e in dict.fromkeys(ends) if e not in st.done]
        gained = self.value[node]
        return BiasState(node, gained, st.done | frozenset(new)), sum(self.full[e] for e in new) + gained - st.gained

    def candidates_of(self, node: int) -> list[int]:
        """Tokens that continue the phrase prefix at `node` (ending inside it, at its end, or past it) or start one."""
        if node not in self._candidates:
            found: set[int] = set(self._starters)
            stack = [(node, b"")]
            while stack:
                at, path = stack.pop()
                if path:
                    found.update(self.tokens.exact.get(path, []))
                    if self.final[at]:  # the phrase ends inside the token: "明打"
                        found.update(self.tokens.starting_with(path))
                if len(path) < _MAX_SUFFIX:
                    stack += [(child, path + bytes([b])) for b, child in self.goto[at].items()]
            self._candidates[node] = sorted(found)
        return self._candidates[node]

    def bonuses(self, states: Sequence[BiasState], vocab: int) -> torch.Tensor:
        """(N, V): the score change of appending each token to each hypothesis."""
        out = torch.empty(len(states), vocab)
        for i, st in enumerate(states):
            out[i].fill_(-st.gained)
            for token in self.candidates_of(st.node):
                if token < vocab:
                    out[i, token] = self._step(st, token)[1]
        return out

    def candidates(self, states: Sequence[BiasState], pad: int) -> torch.Tensor:
        rows = [self.candidates_of(st.node) for st in states]
        width = max(len(r) for r in rows)
        return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long)

    def advance(self, st: BiasState, token: int) -> BiasState:
        return self._step(st, token)[0]
