"""Word lexicon for beam search: a penalty for every word the lexicon does not hold, charged as soon
as the word can no longer become one.

On voices far from its training speakers the model spells what it hears ("useing", "shefsorry",
"surfire"): sentencepiece pieces can write any string, and the frozen LM's prior over pieces does
not stop a non-word the acoustics favour. A classic recogniser decodes through a pronunciation
lexicon; this is its soft form. A hypothesis pays `penalty` for each piece that takes a word outside
every lexicon word's prefixes ("shefs" for "chef sorry") or grows a word already outside them, and,
for a word that stays a prefix but is not a word itself ("th"), once when it ends (the next token
starts a new word, or the transcript ends). Charging only at the end let the search put the end off:
a non-word already written grew into a longer fusion ("veryquiremphing") that paid once for several
words, so larger penalties made the WER worse. The penalty is added after pruning, like phrase bias: it only reorders
candidates the search already keeps.

Context words are never out of the lexicon, and neither is a word spelled like one (similarity
`near` or more, as phrase correction measures it; a prefix is measured against the context word's
prefix of its length): a rare name comes out of the search as a near miss ("serias acony" for
"serious economy") that phrase correction then puts right, and a penalty would push the search to
fuse or respell it ("seriazikony") past what correction recognises.

With a word n-gram LM (shared/model/word_lm.py) the same word ends also add its shallow-fusion score.
Context words score at least as a rare word (CONTEXT_WORD_LOGP), not as <unk>, so fusion does not undo
what context buys; words merely spelled like one do not (a floor for "firstrive", near "first
arrive", made the search fuse the phrase into one word that scored better than its two).
"""

from __future__ import annotations

import bisect
import copy
import difflib
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch

from shared.model.word_lm import WordLM

WORD_START = "\u2581"
CONTEXT_WORD_LOGP = math.log(1e-3)  # word-LM score floor of a context word (a rare word's, not <unk>'s)


def load_words(path: Path) -> frozenset[str]:
    """One word per line, lowercase (bundle's lexicon.txt)."""
    return frozenset(w.strip() for w in path.read_text(encoding="utf-8").splitlines() if w.strip())


def normalize_word(word: str) -> str:
    return word.lower().strip(".,!?;:\"'")


def _alpha_parts(w: str) -> list[str]:
    return "".join(c if c.isalpha() else " " for c in w).split()


class WordState(NamedTuple):
    """A hypothesis's unfinished word and whether it has paid the penalty already."""

    text: str = ""
    paid: bool = False
    lm: Any = None  # the word LM's state before this word (kenlm.State), None without fusion


class WordLexicon:
    """Per-hypothesis state is a WordState; `bonuses` gives the (N, V) score change of appending each
    candidate token, `advance` the state after it. Word-initial pieces and eos end the word before them."""

    def __init__(self, words: frozenset[str], pieces: Sequence[str], special_ids: Iterable[int], eos_id: int,
                 penalty: float = 0.0, word_lm: Optional[WordLM] = None) -> None:
        self.words = words
        self.word_lm = word_lm
        self.lm_weight = 0.0  # shallow-fusion weight of the word LM (for_request)
        self.word_bonus = 0.0
        self.sorted_words = tuple(sorted(words))  # prefix lookups by bisection
        self.penalty = penalty
        special = set(special_ids)
        self.pieces = [("" if i in special else p) for i, p in enumerate(pieces)]
        self.ends_word = [p.startswith(WORD_START) for p in self.pieces]
        self.ends_word[eos_id] = True
        self.context: frozenset[str] = frozenset()
        self.sorted_context: tuple[str, ...] = ()
        self.near_forms: tuple[str, ...] = ()
        self.near = 1.0
        self._known: dict[str, bool] = {}
        self._alive: dict[str, bool] = {}
        self._starts: dict[int, float] = {}

    def for_request(self, penalty: float, context_phrases: Iterable[str] = (), near: float = 1.0,
                    lm_weight: float = 0.0, word_bonus: float = 0.0) -> WordLexicon:
        """This lexicon with a request's penalty and context phrases (the word tables are shared);
        words at least `near` alike a context word or phrase are free too (1.0: only the words themselves).
        lm_weight > 0 fuses the word LM, if the bundle has one, with word_bonus per finished word."""
        out = copy.copy(self)
        out.lm_weight, out.word_bonus = (lm_weight, word_bonus) if self.word_lm is not None else (0.0, 0.0)
        phrases = [normalize_word(p) for p in context_phrases if p.strip()]
        # without a word list every word would be out of it: no penalty then
        out.penalty, out.near, out._known, out._alive, out._starts = penalty if self.words else 0.0, near, {}, {}, {}
        out.context = frozenset(w for p in phrases for w in p.split())
        out.sorted_context = tuple(sorted(out.context))
        # each context word, and each phrase written as one word (the search may fuse it)
        out.near_forms = tuple(sorted(out.context | {p.replace(" ", "") for p in phrases}))
        return out

    def __bool__(self) -> bool:
        return (self.penalty > 0 and bool(self.words)) or self.fusing

    @property
    def fusing(self) -> bool:
        return self.word_lm is not None and self.lm_weight > 0

    # ---- words ---------------------------------------------------------------------------------
    @staticmethod
    def _memo(cache: dict[str, bool], word: str, test: Callable[[str], bool]) -> bool:
        hit = cache.get(word)  # keyed by the raw spelling: the search asks about the same strings again and again
        if hit is None:
            w = normalize_word(word)
            hit = cache[word] = not w or test(w)
        return hit

    def known(self, word: str) -> bool:
        """A finished word is free: in the lexicon or the context, or spelled like a context word."""
        return self._memo(self._known, word, lambda w: self._in_vocabulary(w) or self._near_context(w))

    def _in_vocabulary(self, w: str) -> bool:
        if w in self.words or w in self.context:
            return True
        # "it's", "x-ray", "4th": known when every alphabetic part is
        return not w.isalpha() and all(p in self.words or p in self.context for p in _alpha_parts(w))

    def _near_context(self, w: str) -> bool:
        return any(difflib.SequenceMatcher(None, w, form).ratio() >= self.near for form in self.near_forms)

    # ---- prefixes ------------------------------------------------------------------------------
    def alive(self, prefix: str) -> bool:
        """Can this unfinished word still become a free one?"""
        return self._memo(self._alive, prefix, lambda w: self._prefix_in_vocabulary(w) or self._near_context_prefix(w))

    def _starts_a_word(self, p: str) -> bool:
        for table in (self.sorted_words, self.sorted_context):
            i = bisect.bisect_left(table, p)
            if i < len(table) and table[i].startswith(p):
                return True
        return False

    def _prefix_in_vocabulary(self, w: str) -> bool:
        if self._starts_a_word(w):
            return True
        if w.isalpha():
            return False
        parts = _alpha_parts(w)  # "x-ra": "x" a word, "ra" a word's start
        if not parts:
            return True  # digits or symbols alone: left to the end-of-word check
        done, last = (parts[:-1], parts[-1]) if w[-1].isalpha() else (parts, "")
        return all(p in self.words or p in self.context for p in done) and (not last or self._starts_a_word(last))

    def _near_context_prefix(self, w: str) -> bool:
        return any(difflib.SequenceMatcher(None, w, form[: len(w)]).ratio() >= self.near for form in self.near_forms)

    # ---- search interface ----------------------------------------------------------------------
    def initial(self) -> WordState:
        return WordState(lm=self.word_lm.begin() if self.fusing and self.word_lm is not None else None)

    def _lm_word(self, state: WordState) -> tuple[float, Any]:
        """Fused score of finishing state's word and the word LM's state after it."""
        assert self.word_lm is not None
        word = normalize_word(state.text)
        logp, after = self.word_lm.score(state.lm, word)
        if word in self.context:  # not a near miss of one: the floor would pay the search to fuse into it
            logp = max(logp, CONTEXT_WORD_LOGP)
        return self.lm_weight * logp + self.word_bonus, after

    def _fused_ends(self, state: WordState) -> tuple[float, float]:
        """The word LM's score change when state's word ends, and when the transcript ends with it."""
        if not self.fusing or state.lm is None:
            return 0.0, 0.0
        assert self.word_lm is not None
        score, after = self._lm_word(state) if state.text else (0.0, state.lm)
        return score, score + self.lm_weight * self.word_lm.end(after)

    def fused(self, state: WordState, ends_transcript: bool) -> float:
        return self._fused_ends(state)[ends_transcript]

    def _ends(self, token: int) -> bool:
        return token < len(self.ends_word) and self.ends_word[token]

    def _end_cost(self, state: WordState) -> float:
        """Penalty of ending state's word: a prefix of lexicon words that is not one itself."""
        return 0.0 if state.paid or not self.penalty or self.known(state.text) else self.penalty

    def _piece_cost(self, state: WordState, token: int) -> float:
        """Penalty of a piece that continues state's word. Every piece of a non-word pays: one charge
        for a whole fused tail would make fusing cheap."""
        piece = self.pieces[token] if token < len(self.pieces) else ""
        dead = bool(piece) and self.penalty > 0 and (state.paid or not self.alive(state.text + piece))
        return self.penalty if dead else 0.0

    def cost(self, state: WordState, token: int) -> float:
        """The penalty appending `token` to a hypothesis in `state` incurs (0 or a multiple of penalty)."""
        if self._ends(token):
            return self._end_cost(state) + self._start_cost(token)
        return self._piece_cost(state, token)

    @property
    def max_bonus(self) -> float:
        """No candidate's bonus exceeds this: penalties are costs, and a finished word adds
        lm_weight * log P (at most 0) + word_bonus; the transcript's end adds lm_weight * log P(</s>)."""
        if not self.fusing:
            return 0.0
        return math.inf if self.lm_weight < 0 else max(0.0, self.word_bonus)

    def bonuses(self, states: Sequence[WordState], scores: torch.Tensor, eos_id: int) -> torch.Tensor:
        """scores (N, V) -> (N, V) score changes of each candidate (finite score) token: minus its
        lexicon cost, plus the word LM's score of the word it ends (what -cost + fused say, one token
        at a time)."""
        rows, cols = torch.isfinite(scores).nonzero(as_tuple=True)
        out = torch.zeros_like(scores)
        if rows.numel():
            out[rows, cols] = self.bonuses_at(states, rows, cols, eos_id).to(scores.dtype)
        return out

    def bonuses_at(self, states: Sequence[WordState], rows: torch.Tensor, cols: torch.Tensor, eos_id: int) -> torch.Tensor:
        """The score changes (M,) of appending token cols[i] to hypothesis rows[i]. This is the search's
        hot loop, so what a row or a token shares is worked out once."""
        per_row: dict[int, tuple[float, float]] = {}  # row -> (change when a word ends, when the transcript does)
        values: list[float] = []
        for r, c in zip(rows.tolist(), cols.tolist()):
            state = states[r]
            if self._ends(c):
                ends = per_row.get(r)
                if ends is None:
                    word, transcript = self._fused_ends(state)
                    paid = self._end_cost(state)
                    ends = per_row[r] = (word - paid, transcript - paid)
                values.append(ends[c == eos_id] - self._start_cost(c))
            else:
                values.append(-self._piece_cost(state, c))
        return torch.tensor(values, dtype=torch.float32)

    def _start_cost(self, token: int) -> float:
        """Penalty of the word a word-initial piece starts (0 for eos)."""
        hit = self._starts.get(token)
        if hit is None:
            piece = self.pieces[token] if token < len(self.pieces) else ""
            hit = self._starts[token] = 0.0 if self.alive(piece[len(WORD_START):]) else self.penalty
        return hit

    def advance(self, state: WordState, token: int) -> WordState:
        piece = self.pieces[token] if token < len(self.pieces) else ""
        if piece.startswith(WORD_START):
            text = piece[len(WORD_START):]
            lm = self._lm_word(state)[1] if self.fusing and state.text else state.lm
            return WordState(text, not self.alive(text), lm)
        text = state.text + piece
        return WordState(text, state.paid or not self.alive(text), state.lm)
