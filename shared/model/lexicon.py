"""Word lexicon for beam search: a penalty for every finished word the lexicon does not hold.

On voices far from its training speakers the model spells what it hears ("useing", "shefsorry",
"surfire"): sentencepiece pieces can write any string, and the frozen LM's prior over pieces does
not stop a non-word the acoustics favour. A classic recogniser decodes through a pronunciation
lexicon; this is its soft form. A hypothesis pays `penalty` when a word ends (the next token starts
a new word, or the transcript ends) and that word is out of the lexicon. The penalty is added after
pruning, like phrase bias: it only reorders candidates the search already keeps.

Context words are never out of the lexicon, and neither is a word spelled like one (similarity
`near` or more, as phrase correction measures it): a rare name comes out of the search as a near
miss ("serias acony" for "serious economy") that phrase correction then puts right, and a penalty
would push the search to fuse or respell it ("seriazikony") past what correction recognises.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

WORD_START = "\u2581"


def load_words(path: Path) -> frozenset[str]:
    """One word per line, lowercase (bundle's lexicon.txt)."""
    return frozenset(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())


def normalize_word(word: str) -> str:
    return word.lower().strip(".,!?;:\"'")


class WordLexicon:
    """Per-hypothesis state is the unfinished word (a str); `penalties` gives (N,) score changes for
    tokens that end that word, `word_end` (V,) says which tokens do (word-initial pieces and eos)."""

    def __init__(self, words: frozenset[str], pieces: Sequence[str], special_ids: Iterable[int], eos_id: int,
                 penalty: float = 0.0) -> None:
        self.words = words
        self.penalty = penalty
        special = set(special_ids)
        self.pieces = [("" if i in special else p) for i, p in enumerate(pieces)]
        word_end = torch.tensor([p.startswith(WORD_START) for p in self.pieces])
        word_end[eos_id] = True
        self.word_end = word_end.float()  # (V,) 1 where a token ends the word before it
        self.context: frozenset[str] = frozenset()
        self.near_forms: tuple[str, ...] = ()
        self.near = 1.0
        self._known: dict[str, bool] = {}

    def for_request(self, penalty: float, context_phrases: Iterable[str] = (), near: float = 1.0) -> WordLexicon:
        """This lexicon with a request's penalty and context phrases (the piece tables are shared);
        words at least `near` alike a context word or phrase are free too (1.0: only the words themselves)."""
        out = copy.copy(self)
        phrases = [normalize_word(p) for p in context_phrases if p.strip()]
        out.penalty, out.near, out._known = penalty, near, {}
        out.context = frozenset(w for p in phrases for w in p.split())
        # each context word, and each phrase written as one word (the search may fuse it)
        out.near_forms = tuple(sorted(out.context | {p.replace(" ", "") for p in phrases}))
        return out

    def __bool__(self) -> bool:
        return self.penalty > 0 and bool(self.words)

    def known(self, word: str) -> bool:
        w = normalize_word(word)
        if w not in self._known:
            self._known[w] = not w or self._in_vocabulary(w) or self._near_context(w)
        return self._known[w]

    def _in_vocabulary(self, w: str) -> bool:
        if w in self.words or w in self.context:
            return True
        # "it's", "x-ray", "4th": known when every alphabetic part is
        parts = "".join(c if c.isalpha() else " " for c in w).split()
        return not w.isalpha() and all(p in self.words or p in self.context for p in parts)

    def _near_context(self, w: str) -> bool:
        return any(difflib.SequenceMatcher(None, w, form).ratio() >= self.near for form in self.near_forms)

    def penalties(self, states: Sequence[str]) -> torch.Tensor:
        """(N,): minus `penalty` where the unfinished word is out of the lexicon, else 0."""
        return torch.tensor([0.0 if self.known(s) else -self.penalty for s in states])

    def bonuses(self, states: Sequence[str], vocab: int) -> torch.Tensor:
        """(N, V): the score change of appending each token (only word-ending tokens pay)."""
        return self.penalties(states)[:, None] * self.word_end[None, :vocab]

    def advance(self, state: str, token: int) -> str:
        piece = self.pieces[token] if token < len(self.pieces) else ""
        if piece.startswith(WORD_START):
            return piece[len(WORD_START):]
        return state + piece
