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
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from wordfreq import zipf_frequency

from shared.context import RARE_ZIPF, RARE_ZIPF_ZH, chinese_words, has_chinese

INFLECTION_CHARS = 3  # -s, -es, -ed, -er, -ing, -'s


@dataclass
class CorrectionConfig:
    margin: float  # nats a variant may lose against the current text; 0 turns correction off
    min_similarity: float  # difflib ratio between the replaced span and the phrase (spelling; sound in Chinese)
    margin_zh: float = 0.0  # Chinese's margin (correct_characters); 0: off
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


# ---- languages written without spaces (Chinese): look-alike means sound-alike ----------------------------------

LONG_PHRASE_CHARS = 4
RARE_WORD_ZIPF_ZH = 3.0  # 净水器 2.2, 鄞州 1.5; 音箱 3.2, 小雨 3.6 (words a context phrase may bring whole)


def _syllables(text: str) -> list[str]:
    """One toneless pinyin syllable per character ("王晓明" -> ["wang", "xiao", "ming"]); a character that is not
    Chinese stands for itself. pypinyin reads polyphones in the text's context, so a whole text is read at once."""
    from pypinyin import lazy_pinyin

    def itself(chunk: str) -> Any:  # pypinyin takes a list for a chunk that is not Chinese: one item per character
        return list(chunk)

    out = lazy_pinyin(text, errors=itself)
    return out if len(out) == len(text) else [lazy_pinyin(c, errors=itself)[0] for c in text]


_INITIAL = re.compile(r"^(zh|ch|sh|[bpmfdtnlgkhjqxrzcsyw])?(.*)$")
# what speakers (and so a recogniser's homophones) mix up: flat and retroflex sibilants, n and l, front and back nasals
_ALIKE = {"zh": "z", "ch": "c", "sh": "s", "l": "n", "ang": "an", "eng": "en", "ing": "in", "iang": "ian", "uang": "uan"}


def _sounds(syllables: Sequence[str]) -> list[str]:
    """Syllables -> the units sound-alike compares: initial and final of each, merged where speakers mix them up
    ("zhang" -> ["z", "an"]); compared by units, "ming tian qu" shares one unit with "li jian guo", not half its
    letters."""
    out: list[str] = []
    for syllable in syllables:
        match = _INITIAL.match(syllable)
        if match is None or not syllable.isascii() or not syllable.isalpha():
            out.append(syllable)
            continue
        initial, final = match.groups()
        out += [_ALIKE.get(u, u) for u in (initial or "", final) if u]
    return out


def _rare_characters(phrase: str) -> set[str]:
    """The phrase's characters a context phrase exists to bring: rare ones (wordfreq's Chinese Zipf below
    RARE_ZIPF_ZH: a name's 筱 or 兖) and those of a rare word (below RARE_WORD_ZIPF_ZH: 净 of 净水器). A phrase that
    would change only common characters of common words (小雨 for 什么, 音箱 for 音量) rewrites what the model heard
    well enough, and context is not there for that."""
    return {c for word in chinese_words(phrase) for c in word
            if zipf_frequency(word, "zh") < RARE_WORD_ZIPF_ZH or zipf_frequency(c, "zh") < RARE_ZIPF_ZH}


def _starts(text: str, phrase: str) -> list[int]:
    """Where the text writes the phrase."""
    return [i for i in range(len(text) - len(phrase) + 1) if text.startswith(phrase, i)]


def _sound_variants(text: str, syllables: list[str], phrases: Sequence[str],
                    min_similarity: float) -> list[tuple[str, str, float]]:
    """(variant, phrase put in, similarity) for every way to put a Chinese phrase in place of a run of Chinese
    characters of the text that sounds like it (difflib ratio of their toneless pinyin's initials and finals, _sounds,
    >= min_similarity; the run has the phrase's length, or -1..+1 characters for phrases of LONG_PHRASE_CHARS or more)
    and lacks one of its rare characters, the most alike first. A homophone the model wrote in common characters
    (王小明 for the hotword 王筱明) is the case this exists for; runs that overlap a phrase the text already writes are
    left alone (but for a longer phrase holding it in the same place), so a phrase heard right is never traded."""
    starts = {p: at for p in phrases if p and (at := _starts(text, p))}
    out: dict[str, tuple[float, str]] = {}
    for phrase in phrases:
        if len(phrase) < 2 or not all(has_chinese(c) for c in phrase) or phrase in text:
            continue
        # a phrase the text writes holds its characters, unless this phrase holds it in the same place (宇文 of
        # 宇文晗 for 宇文韩)
        held = [False] * len(text)
        for p, at in starts.items():
            if p not in phrase:
                for a in at:
                    held[a : a + len(p)] = [True] * len(p)
        inside = [(p, phrase.find(p)) for p in starts if p in phrase]
        rare = _rare_characters(phrase)
        matcher = difflib.SequenceMatcher(autojunk=False)
        matcher.set_seq2(_sounds(_syllables(phrase)))
        # a character is a syllable, and the speech keeps its count: a run as long as the phrase, or one character
        # off for a long phrase only (with short ones, one character off put 药店 in place of 电 in 电话)
        lengths = range(len(phrase) - 1, len(phrase) + 2) if len(phrase) >= LONG_PHRASE_CHARS else (len(phrase),)
        for m in lengths:
            for i in range(len(text) - m + 1):
                span = text[i : i + m]
                if any(held[i : i + m]) or not all(has_chinese(c) for c in span) or not all(
                        a - i == offset for p, offset in inside for a in starts[p] if a < i + m and a + len(p) > i):
                    continue
                if all(c in span for c in rare):  # it would bring nothing rare
                    continue
                matcher.set_seq1(_sounds(syllables[i : i + m]))
                if matcher.quick_ratio() >= min_similarity and (similarity := matcher.ratio()) >= min_similarity:
                    variant = text[:i] + phrase + text[i + m :]
                    if similarity > out.get(variant, (0.0, ""))[0]:
                        out[variant] = (similarity, phrase)
    # the most alike first: where the speech scores two variants alike, the closer sound wins
    return [(v, out[v][1], out[v][0]) for v in sorted(out, key=lambda v: -out[v][0])]


def correct_characters(text: str, phrases: Sequence[str], score: TextScorer, cfg: CorrectionConfig) -> str:
    """correct_phrases for Chinese: text (written, no spaces between words) -> corrected text. A variant puts a
    phrase in place of a sound-alike run of characters and is kept, as in English, when the speech scores it at most
    `margin` below the current text."""
    if cfg.margin <= 0 or not text or not phrases:
        return text
    current = float(score([text])[0])
    if current == float("-inf"):
        return text
    for _ in range(cfg.max_subs):
        found = _sound_variants(text, _syllables(text), phrases, cfg.min_similarity)
        if not found:
            break
        scores = score([v for v, _, _ in found]).nan_to_num(nan=float("-inf"))
        passing = [k for k in range(len(found)) if float(scores[k]) >= current - cfg.margin]
        if not passing:
            break
        # the closest sound wins and the speech decides between equals: the score only gates (homophones are what
        # it cannot tell apart; 鄞州 scored above 兖州 for a spoken yǎn zhōu)
        best = max(passing, key=lambda k: (found[k][2], float(scores[k])))
        # a phrase inside a longer one is a piece of a name cut by the word splitter (澜电饭煲 of 听澜电饭煲): the
        # longer one wins wherever it passes too
        whole = [k for k in passing if found[best][1] in found[k][1]]
        best = max(whole, key=lambda k: (len(found[k][1]), found[k][2], float(scores[k])))
        text, current = found[best][0], float(scores[best])
    return text
