"""Word n-gram LM for shallow fusion in beam search: the bundle's word_lm.arpa.gz, read by KenLM.

The MoE LM scores sentencepiece pieces and is small; on voices far from its training speakers the
acoustics leave it choices between real words that a word n-gram ranks well ("through the door they
tell you" over "through the doordate all you"). Every word a hypothesis finishes adds
`weight * ln P(word | two words before) + bonus` (and the transcript's end `weight * ln P(</s> | ...)`);
the bonus offsets the per-word cost so that the search does not favour fewer, longer words.
The file is any ARPA model (training/export/word_lm.py builds the shipped one; KenLM's lmplz or SRILM
build one from a domain's text).
"""

from __future__ import annotations

import math
from pathlib import Path

import kenlm

LN10 = math.log(10.0)
WORD_LM_FILE = "word_lm.arpa.gz"  # in a bundle


class WordLM:
    """KenLM over an ARPA file; states are kenlm.State (hashable), scores natural logs."""

    def __init__(self, path: Path) -> None:
        config = kenlm.Config()
        config.show_progress = False  # a progress bar on stderr at every service start
        try:
            self.model = kenlm.Model(str(path), config)
        except (OSError, RuntimeError) as err:  # a broken file, or a kenlm built without zlib reading .gz
            raise ValueError(f"cannot read the word LM {path}: {err}") from err
        self._cache: dict[tuple[kenlm.State, str], tuple[float, kenlm.State]] = {}

    def begin(self) -> kenlm.State:
        state = kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def __contains__(self, word: str) -> bool:
        return word in self.model

    def score(self, state: kenlm.State, word: str) -> tuple[float, kenlm.State]:
        """ln P(word | state) and the state after it; words outside the model score as <unk>."""
        key = (state, word)
        hit = self._cache.get(key)
        if hit is None:
            out = kenlm.State()
            hit = (self.model.BaseScore(state, word, out) * LN10, out)
            if len(self._cache) > 200_000:  # a long-running server sees unbounded histories
                self._cache.clear()
            self._cache[key] = hit
        return hit

    def end(self, state: kenlm.State) -> float:
        return self.score(state, "</s>")[0]
