"""Context phrase correction: put a context phrase in place of a look-alike span when the speech agrees.

Beam search can only write a rare name its streams rank within reach; a name the model has never
heard often comes out as a look-alike ("call toom ashroble" for "call tomasz wrobel"). After the
search, every context phrase (hotwords and word n-grams of the context: shared/context.py) is tried in
place of each span of the best hypothesis that is spelled like it (difflib ratio >= min_similarity,
spaces ignored), leaving the phrases the hypothesis already spells where they are. A scorer of the
speech then scores the whole utterance, log P(text | speech): the CTC head summed over alignments
(ctc_text_scorer), or a decoder given the context, teacher-forced (shared/model/whisper_search.py). A variant
is kept when it scores at most `margin` below the current text. The margin is the prior that a phrase of the context
is what was said; the acoustics keep a name nobody said out: a distractor rarely looks like any span,
and where it does the speech rarely supports it.
Up to `max_subs` substitutions, best first.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from wordfreq import zipf_frequency

from shared.context import RARE_ZIPF

INFLECTION_CHARS = 3  # -s, -es, -ed, -er, -ing, -'s


@dataclass
class CorrectionConfig:
    margin: float = 0.0  # nats a variant may lose against the current text; 0 turns correction off
    min_similarity: float = 0.6  # difflib ratio between the replaced span and the phrase, spaces ignored
    max_subs: int = 2


def ctc_log_likelihood(logp: torch.Tensor, targets: Sequence[Sequence[int]], blank: int) -> torch.Tensor:
    """logp (T, V) CTC log-probabilities of one utterance, N token sequences -> (N,) log P(sequence)."""
    n = len(targets)
    lens = torch.tensor([len(t) for t in targets])
    flat = torch.tensor([i for t in targets for i in t], dtype=torch.long)
    loss = F.ctc_loss(logp[:, None].expand(-1, n, -1), flat, torch.full((n,), logp.shape[0]), lens,
                      blank=blank, reduction="none")
    return -loss  # -inf where no alignment fits (a text longer than the speech)


def _spelled_out(words: list[str], phrases: Sequence[str]) -> list[tuple[int, list[str]]]:
    """(start, words) of every place where the text already spells a phrase exactly."""
    out = []
    for phrase in phrases:
        p = phrase.split()
        out += [(i, p) for i in range(len(words) - len(p) + 1) if p and words[i : i + len(p)] == p]
    return out


def _keeps(spelled: list[tuple[int, list[str]]], i: int, m: int, new: list[str]) -> bool:
    """Whether replacing words[i:i+m] by `new` keeps every exactly spelled phrase it touches.

    A phrase the text already spells is speech-backed context. A look-alike phrase may hold it and
    respell the words around it ("grahnen eriksson hb" -> "grahn and eriksson hb"), but words on one
    side of it may not vanish or appear from nothing: "call bet kilbride street" -> "kilbride street
    closes" would trade two spoken words for a context word nobody said."""
    for start, p in spelled:
        if start + len(p) <= i or start >= i + m:
            continue  # no overlap
        if start < i or start + len(p) > i + m:
            return False  # the span cuts the phrase
        at = next((j for j in range(len(new) - len(p) + 1) if new[j : j + len(p)] == p), -1)
        if at < 0 or (at > 0) != (start > i) or (at + len(p) < len(new)) != (start + len(p) < i + m):
            return False
    return True


def _inflects(span: list[str], new: list[str]) -> bool:
    """Whether a one-word phrase only re-inflects a common word of the span ("call" or "to call" ->
    "calling", "street" -> "streets"): that is another word the search could already spell, not a
    look-alike of a name it could not, so the context's prior must not decide it (the demo's "remind
    me to calling kilbride street", from the assistant's "Calling Tomasz Wrobel")."""
    if len(new) != 1:
        return False
    return any(_suffixed(w, new[0]) and zipf_frequency(w, "en") >= RARE_ZIPF for w in span)


def _suffixed(a: str, b: str) -> bool:
    """Whether one word is the other plus an ending of up to INFLECTION_CHARS letters ("call", "calling");
    "a" and "anderson" are not: a short word begins too many names."""
    short, long = sorted((a, b), key=len)
    return len(short) >= 3 and long.startswith(short) and len(long) - len(short) <= INFLECTION_CHARS


def _variants(words: list[str], phrases: Sequence[str], min_similarity: float) -> list[list[str]]:
    """Every way to replace a span of words that is spelled like a phrase and keeps the phrases the
    text already spells in place. Spans have the phrase's length -2..+1 words: a long name often
    comes out as fewer, fused words ("carlijnder spaendonc")."""
    text = f" {' '.join(words)} "
    spelled = _spelled_out(words, phrases)
    out: list[list[str]] = []
    for phrase in phrases:
        new = phrase.split()
        if not new or f" {phrase} " in text:
            continue
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2("".join(new))  # difflib caches what it learns about seq2
        for m in range(max(1, len(new) - 2), len(new) + 2):
            for i in range(len(words) - m + 1):
                if not _keeps(spelled, i, m, new):
                    continue
                matcher.set_seq1("".join(words[i : i + m]))
                # the quick upper bounds first: most spans are nothing like the phrase; the word-frequency
                # lookups of _inflects only for the few that are
                if (matcher.real_quick_ratio() >= min_similarity and matcher.quick_ratio() >= min_similarity
                        and matcher.ratio() >= min_similarity and not _inflects(words[i : i + m], new)):
                    out.append(words[:i] + new + words[i + m :])
    return out


# texts -> (N,) log P(text | speech) of one utterance: the CTC head's (ctc_text_scorer) or a decoder's, teacher-forced
TextScorer = Callable[[list[str]], torch.Tensor]


def ctc_text_scorer(logp: torch.Tensor, encode: Callable[[str], list[int]], blank: int) -> TextScorer:
    """logp (T, V) an utterance's CTC log-probabilities -> a scorer of texts by the CTC head (texts that encode to
    nothing score -inf)."""

    def score(texts: list[str]) -> torch.Tensor:
        ids = [encode(t) for t in texts]
        out = torch.full((len(texts),), float("-inf"))
        keep = [i for i, t in enumerate(ids) if t]
        if keep:
            out[keep] = ctc_log_likelihood(logp, [ids[i] for i in keep], blank)
        return out

    return score


def correct_phrases(text: str, phrases: Sequence[str], score: TextScorer, cfg: CorrectionConfig) -> str:
    """text: the best hypothesis; score: log P(text | speech) of texts of its utterance -> corrected text."""
    words = text.split()
    if cfg.margin <= 0 or not words or not phrases:
        return text
    current = float(score([text])[0])
    if current == float("-inf"):
        return text
    for _ in range(cfg.max_subs):
        variants = _variants(words, phrases, cfg.min_similarity)
        if not variants:
            break
        scores = score([" ".join(v) for v in variants]).nan_to_num(nan=float("-inf"))  # nan never wins
        best = int(scores.argmax())
        if float(scores[best]) < current - cfg.margin:
            break
        words, current = variants[best], float(scores[best])
    return " ".join(words)
