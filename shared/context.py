"""Context assembly: session turns + request context -> the decoder's context tokens.

The same function builds context for LM pretraining, context SFT, evaluation and serving, so the
model always sees one format:  prompt <turn> hotwords <turn> turn ... <turn> newest turn
Explicit request context (prompt, hotwords) is kept first; turns are taken newest first until the
token budget is spent, then laid out oldest to newest.

It also picks the biasing phrases of the decoder (shared/model/biasing.py): every hotword, and every
run of rare words (wordfreq Zipf frequency below RARE_ZIPF: names, places, products) in the prompt and
the turns used, since those are what a recogniser gets wrong and context is there to fix.
Phrase correction (shared/model/phrase_correction.py) takes a wider list from the same sources: every
hotword and every word n-gram holding a word that is not common, entities made of ordinary words
("phillips walker", "first arrive") included; the speech decides which of them was said.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from wordfreq import zipf_frequency

from shared.text import normalize_text
from shared.tokenizer import Tokenizer
from shared.written import context_spellings, with_end_mark

RARE_ZIPF = 3.5  # below this a word is rare (3 = once per million words); "meeting" is 5.2, "ullrich" 2.0
RARE_ZIPF_ZH = 4.0  # a Chinese word (jieba's): 王小明 2.4, 鼓浪屿 1.1, 欧阳 3.7; 打电话 4.7, 机票 4.1
MAX_BIAS_PHRASES = 64
# correction candidates: n-grams of up to CORRECTION_MAX_WORDS words with a word below CORRECTION_ZIPF
# ("walker" 4.4, "daniel" 4.6), not starting or ending with a function word (above FUNCTION_ZIPF: "the" 7.7).
# On context_eval rows 30-150 (6th run's bundle, margin 12) n-grams of 3, 4 or 5 words gave the same recall;
# with the 8th run's bundle a Zipf bound of 5.0 gave 1 point more recall than 4.5, no insertions either way.
CORRECTION_ZIPF = 5.0
CORRECTION_MAX_WORDS = 4
FUNCTION_ZIPF = 6.0
MAX_CORRECTION_PHRASES = 256
MAX_SPELLINGS = 512


@dataclass
class ContextInput:
    turns: Sequence[str] = ()  # oldest first, already role-free text
    hotwords: Sequence[str] = ()
    prompt: str = ""
    # long audio: the recogniser's own text of the previous window, the newest turn; never a source of
    # bias phrases (its misrecognised words would be boosted again: long-form WER 87% -> 91% when it was)
    previous_text: str = ""
    # per turn: True where the recogniser wrote it (a session's recognised user turns). Like
    # previous_text, such turns are context but never bias phrases: a misheard "callton" would be boosted
    recognised: Sequence[bool] = ()


@dataclass
class AssembledContext:
    token_ids: list[int]
    text: str
    turns_used: int
    bias_phrases: list[str] = field(default_factory=list)
    correction_phrases: list[str] = field(default_factory=list)
    # the same parts as written (casing, punctuation): a decoder prompted with text writes in the style of its prompt
    # (a lower-case context made Whisper write "kilbride street" in lower case too)
    written_text: str = ""
    spellings: list[str] = field(default_factory=list)  # context words as written (shared/written.py)


def has_chinese(text: str) -> bool:
    """Whether the text holds a Chinese (CJK unified or compatibility) character."""
    return any("\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff" for c in text)


def chinese_words(text: str) -> list[str]:
    """jieba's segmentation (its own dictionary and HMM, which keeps names such as 王小明 whole; wordfreq's smaller
    dictionary splits them)."""
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return [w.strip() for w in jieba.lcut(text) if w.strip()]


def rare_runs(text: str, rare_zipf: float = RARE_ZIPF) -> list[str]:
    """The maximal runs of rare words in (normalised) text: "call maren kessel now" -> ["maren kessel"]. Chinese has
    no spaces: its words come from wordfreq's segmenter (jieba) and a run is joined without them
    ("请给王小明打电话" -> ["王小明"])."""
    chinese = has_chinese(text)
    words = chinese_words(text) if chinese else text.split()
    runs: list[str] = []
    run: list[str] = []
    for word in [*words, ""]:
        cjk = chinese and has_chinese(word)
        if word and any(c.isalpha() for c in word) and zipf_frequency(word, "zh" if cjk else "en") < (
                RARE_ZIPF_ZH if cjk else rare_zipf):
            run.append(word)
        elif run:
            runs.append(("" if chinese else " ").join(run))
            run = []
    return runs


def drop_contained(phrases: list[str]) -> list[str]:
    """The phrases that are not a run of words inside another: biasing pays per spelled phrase, so with
    both "kilbride" and "kilbride street" the repetition "kilbride kilbride street" earned the most bonus. Chinese
    phrases, written without spaces, by their characters."""
    padded = [p if has_chinese(p) else f" {p} " for p in phrases]
    return [p for p, q in zip(phrases, padded) if not any(q in other and q != other for other in padded)]


def phrase_ngrams(text: str) -> list[str]:
    """Correction candidates of (normalised) text: "the nearest store is perry inc" -> [..., "perry", "perry inc", ...].
    Chinese: runs of up to CORRECTION_MAX_WORDS of jieba's words, all Chinese characters, holding a rare word
    ("订去鼓浪屿的船票" -> ["鼓浪屿", "去鼓浪屿", ...])."""
    if has_chinese(text):
        return _chinese_ngrams(text)
    words = text.split()
    zipf = [zipf_frequency(w, "en") for w in words]
    out = []
    for n in range(1, CORRECTION_MAX_WORDS + 1):
        for i in range(len(words) - n + 1):
            if zipf[i] <= FUNCTION_ZIPF and zipf[i + n - 1] <= FUNCTION_ZIPF and min(zipf[i : i + n]) < CORRECTION_ZIPF:
                out.append(" ".join(words[i : i + n]))
    return out


def _spoken(text: str) -> str:
    """A context part's spoken form: English's normaliser for Latin text; text in another script (Chinese, Cyrillic,
    Greek...) as written, whitespace tidied, since the English normaliser would drop it whole (the language is only
    known once the decoder has identified it)."""
    if any(c.isalpha() and ord(c) > 0x24F for c in text):
        return " ".join(text.split())
    return normalize_text(text)


def assemble_context(tok: Tokenizer, ctx: ContextInput, budget: int) -> AssembledContext:
    pieces: list[list[int]] = []
    texts: list[str] = []
    used = 0

    def room(ids: list[int]) -> bool:
        return used + len(ids) + 1 <= budget

    head: list[tuple[list[int], str, str]] = []
    hotwords = [h.strip() for h in ctx.hotwords if _spoken(h)]
    for text, written in ((ctx.prompt, ctx.prompt), (" ".join(_spoken(h) for h in hotwords), ", ".join(hotwords))):
        norm = _spoken(text)
        if norm:
            full = tok.encode(norm)
            ids = full[: max(0, budget - used - 1)]
            if ids:
                head.append((ids, norm, written.strip() if len(ids) == len(full) else tok.decode(ids)))
                used += len(ids) + 1
    own = [i < len(ctx.recognised) and bool(ctx.recognised[i]) for i in range(len(ctx.turns))]
    chosen: list[tuple[list[int], str, str]] = []
    biasable: list[str] = []  # newest first
    for turn, recognised in reversed([*zip(ctx.turns, own), (ctx.previous_text, True)]):  # newest first
        norm = _spoken(turn)
        if not norm:
            continue
        ids = tok.encode(norm)
        if not room(ids):
            break
        chosen.append((ids, norm, turn.strip()))
        used += len(ids) + 1
        if not recognised:
            biasable.append(norm)
    written_parts: list[str] = []
    for ids, text, written in head + list(reversed(chosen)):
        pieces.append(ids)
        texts.append(text)
        written_parts.append(written.strip())
    # parts read as sentences; the last one as written, since the transcript follows it (with an end mark added
    # there, 3 of 100 keywords on the context dev set came out differently: TUNING.md)
    written_parts = [with_end_mark(p) for p in written_parts[:-1]] + written_parts[-1:]
    token_ids: list[int] = []
    for i, ids in enumerate(pieces):
        if i:
            token_ids.append(tok.turn_id)
        token_ids.extend(ids)
    phrases = [_spoken(h) for h in ctx.hotwords]
    for text in [_spoken(ctx.prompt), *biasable]:
        phrases += rare_runs(text)
    phrases = drop_contained(list(dict.fromkeys(p for p in phrases if p)))[:MAX_BIAS_PHRASES]
    # Correction costs no LM tokens, so its candidates come from every turn, past the budget too
    # (an entity named seven turns ago is still one the user may say).
    every_turn = [_spoken(t) for t, recognised in zip(ctx.turns, own) if not recognised][::-1]  # newest first
    candidates = [_spoken(h) for h in ctx.hotwords]
    for text in [_spoken(ctx.prompt), *every_turn]:
        candidates += phrase_ngrams(text)
    candidates = list(dict.fromkeys(p for p in candidates if p))[:MAX_CORRECTION_PHRASES]
    # spellings: hotwords as given, then the prompt's and the user-supplied turns' words, never the recogniser's own
    spellings = [w for h in hotwords for w in h.split()]
    rare = {w for p in phrases for w in p.split()}
    for text in [ctx.prompt, *(t for t, recognised in zip(ctx.turns, own) if not recognised)]:
        spellings += context_spellings(text, rare)
    return AssembledContext(token_ids, " | ".join(texts), len(chosen), phrases, candidates,
                            " ".join(written_parts), list(dict.fromkeys(spellings))[:MAX_SPELLINGS])


def context_text(tok: Tokenizer, ids: Sequence[int]) -> str:
    """Assembled context ids -> the text a decoder that reads context as words is given (Whisper's <|startofprev|>
    prompt): its parts, split at <turn>, joined by ". ". Serving and the Whisper decoder's context SFT both use it."""
    parts: list[list[int]] = [[]]
    for i in ids:
        if i == tok.turn_id:
            parts.append([])
        else:
            parts[-1].append(int(i))
    return ". ".join(t for t in (tok.decode(p).strip() for p in parts) if t)


def _chinese_ngrams(text: str) -> list[str]:
    """As for English: runs holding a rare word, neither starting nor ending with a function word (要, 和, 的)."""
    words = chinese_words(text)
    zipf = [zipf_frequency(w, "zh") for w in words]
    rare = [all(has_chinese(c) for c in w) and z < RARE_ZIPF_ZH for w, z in zip(words, zipf)]
    out = []
    for n in range(1, CORRECTION_MAX_WORDS + 1):
        for i in range(len(words) - n + 1):
            run = words[i : i + n]
            if (any(rare[i : i + n]) and all(has_chinese(c) for w in run for c in w)
                    and zipf[i] <= FUNCTION_ZIPF and zipf[i + n - 1] <= FUNCTION_ZIPF):
                out.append("".join(run))
    return [p for p in out if len(p) >= 2]
