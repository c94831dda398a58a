"""One decoding strategy per model family, chosen by the bundle's decoder type (`DECODING_STRATEGIES`, beside the
encoder and decoder registries of shared/model/asr.py): what a decode does around the beam search.

- `moe_lm` (our MoE LM, the LUISE bundle): the joint beam search with the CTC head's prefix scores; it writes the
  spoken form; phrase correction scored by CTC.
- `whisper` (Whisper's decoder: the shipped bundle and `seedasr bundle build`): the context as Whisper's prompt, the
  language given or identified, the written form per language, phrase correction scored by the decoder
  teacher-forced, word confidences and times from one teacher-forced pass (shared/model/whisper_align.py).

Both turn a request's context phrases into biasing (`phrase_biasing`) and lexicon penalties (`request_lexicon`)
the same way. AsrCore (shared/recognition.py) loads the model and serialises decodes; a strategy only decodes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np
import torch

from shared.languages import chinese_punctuation, parse_language, spaced, to_script
from shared.model.asr import SeedASR
from shared.model.beam_search import BeamConfig, joint_beam_search, joint_streams
from shared.model.biasing import Biasing, PhraseBiasing
from shared.model.byte_biasing import ByteBiasing, TokenBytes
from shared.model.ctc_prefix import CTCPrefixScorer
from shared.model.lexicon import WORD_START, WordLexicon
from shared.model.phrase_correction import CorrectionConfig, correct_characters, correct_phrases, ctc_text_scorer
from shared.model.whisper_align import align_transcripts
from shared.model.whisper_decoder import WHISPER_TOKENIZER_FILE, WhisperTokens
from shared.model.whisper_search import identify_language, whisper_beam_search, whisper_text_scorer
from shared.segments import Word
from shared.text import normalize_text
from shared.tokenizer import Tokenizer
from shared.written import (
    apply_spoken_edit,
    capitalise_addresses,
    capitalise_first_word,
    respell,
    spelling_map,
    spoken_words,
    without_annotations,
)
from shared.written_numbers import format_numbers


@dataclass
class NBestEntry:
    text: str  # as the decoder writes it: written form for Whisper, spoken form for our MoE LM
    score: float  # the search's joint score
    normalized: str = ""  # spoken form (shared/text.py)
    confidence: float = 0.0  # expected share of right words, in [0, 1]
    words: list[Word] = dataclasses.field(default_factory=list)  # with times: the best entry when asked
    # per word: (least token log-prob, mean token entropy, n-best agreement), what confidence is computed from
    features: list[tuple[float, float, float]] = dataclasses.field(default_factory=list)
    language: str = "en"  # the model's code of the language decoded, given or identified
    language_probability: float = 1.0  # identified: among OutputConfig.candidates; given: 1
    tokens: list[int] = dataclasses.field(default_factory=list)  # the decoder's, for a decoder that drafts


@dataclass(frozen=True)
class OutputConfig:
    """What a decode returns besides its n-best texts. audio_s: seconds of audio in the window (the rest of the
    encoder's frames are padding; 0 = all); word_times: align the best transcript's words to the audio; partial:
    an interim result (greedy, no correction, no alignment); confidence_weights: the word-confidence regression
    (confidence)."""

    audio_s: float = 0.0
    word_times: bool = False
    partial: bool = False
    threads: int = 0  # torch intra-op threads for this decode (0: the process's)
    confidence_weights: tuple[float, ...] = ()
    language: str = "en"  # the model's language code; "" identifies it among `candidates` (a multilingual decoder)
    candidates: tuple[str, ...] = ("en",)
    min_language_probability: float = 0.5  # an identification less sure than this takes candidates[0]
    script: Optional[str] = None  # OpenCC conversion of the written output (shared/languages.py: "t2s", "s2twp")

    def confidence(self, features: tuple[float, float, float]) -> float:
        """A word's (least token log-prob, mean token entropy, n-best agreement) -> P(right), the logistic regression
        whose weights and bias (confidence_weights) training/eval/calibrate.py fits; a bundle without them gets its
        least likely token's probability, uncalibrated."""
        if not self.confidence_weights:
            return math.exp(min(0.0, features[0]))
        *w, bias = self.confidence_weights
        z = bias + sum(wi * fi for wi, fi in zip(w, features))
        return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))


@dataclass(frozen=True)
class Phrases:
    """What a request's context gives a decode besides its text: biasing phrases (hotwords, rare context words),
    phrase-correction candidates, and context words as written (the transcript spells them alike)."""

    bias: Sequence[str] = ()
    correction: Sequence[str] = ()
    spellings: Sequence[str] = ()


def phrase_biasing(phrases: Phrases, cfg: BeamConfig, encode: Callable[[str], list[int]]) -> Optional[PhraseBiasing]:
    """The token trie of the bias phrases (shared/model/biasing.py); None when there are none or the bonus is off."""
    ids = [encode(p) for p in phrases.bias if p]
    return PhraseBiasing(ids, cfg.bias_bonus) if ids and cfg.bias_bonus > 0 else None


def request_lexicon(lexicon: WordLexicon, cfg: BeamConfig, phrases: Phrases,
                    correction: Optional[CorrectionConfig]) -> Optional[WordLexicon]:
    """The bundle's word list for this request, None when no penalty applies: context words, and words spelled like
    them when phrase correction may put them right, are never out of the lexicon."""
    near = correction.min_similarity if correction is not None and correction.margin > 0 else 1.0
    found = lexicon.for_request(cfg.oov_penalty, [*phrases.bias, *phrases.correction], near, cfg.word_lm_weight,
                                cfg.word_bonus)
    return found if found else None


class DecodingStrategy(Protocol):
    lexicon: WordLexicon

    def decode(self, speech: np.ndarray, context_ids: Sequence[int], context: str, cfg: BeamConfig, phrases: Phrases,
               correction: Optional[CorrectionConfig], cancelled: Optional[Callable[[], bool]],
               output: OutputConfig, draft: Sequence[int] = ()) -> list[NBestEntry]: ...


@dataclass
class Loaded:
    """What a strategy is built from: the bundle and its loaded decoder half (AsrCore's)."""

    bundle_dir: Path
    meta: dict[str, Any]
    model: SeedASR
    lm: Any  # model.lm, possibly quantized in place
    tok: Tokenizer
    make_lexicon: Callable[[Sequence[str], Sequence[int], int], WordLexicon]  # (pieces, special ids, eos id)


class MoeLMStrategy:
    def __init__(self, loaded: Loaded) -> None:
        self.model, self.lm, self.tok = loaded.model, loaded.lm, loaded.tok
        self.lexicon = loaded.make_lexicon([self.tok.id_to_piece(i) for i in range(self.tok.vocab_size)],
                                           list(self.tok.special_ids), self.tok.eos_id)

    def decode(self, speech: np.ndarray, context_ids: Sequence[int], context: str, cfg: BeamConfig, phrases: Phrases,
               correction: Optional[CorrectionConfig], cancelled: Optional[Callable[[], bool]],
               output: OutputConfig, draft: Sequence[int] = ()) -> list[NBestEntry]:
        """Our MoE LM: it writes the spoken form; confidence from the search's score per token. It follows no draft
        (its CTC prefix scores would have to be replayed along it)."""
        if output.partial:
            cfg, correction = dataclasses.replace(cfg, beam_size=1, nbest=1), None
        with torch.inference_mode():
            sp = torch.from_numpy(np.array(speech, dtype=np.float32))  # a writable copy
            free = self.model.prefix_embeds(self.tok, sp, None)
            ctx = self.model.prefix_embeds(self.tok, sp, list(context_ids)) if context_ids else None
            ctc, logp = None, None
            if self.model.ctc is not None:
                logp = self.model.ctc_logits(sp[None])[0].log_softmax(-1)  # (S, V), cheap next to the LM
            if logp is not None and cfg.ctc_weight > 0:
                ctc = CTCPrefixScorer(logp, self.model.ctc_blank, self.tok.eos_id)
            bias = phrase_biasing(phrases, cfg, self.tok.encode)
            hyps = joint_beam_search(self.lm, free, ctx, self.tok.eos_id, cfg, ctc=ctc, bias=bias,
                                     lexicon=request_lexicon(self.lexicon, cfg, phrases, correction), cancelled=cancelled)
            nbest = [NBestEntry(self.tok.decode(h.tokens), h.score,
                                confidence=output.confidence((h.score / (len(h.tokens) + 1), 0.0, 1.0))) for h in hyps]
            if nbest and logp is not None and correction is not None and phrases.correction:
                nbest[0].text = correct_phrases(nbest[0].text, phrases.correction,
                                                ctc_text_scorer(logp, self.tok.encode, self.model.ctc_blank), correction)
        for entry in nbest:
            entry.normalized = entry.text
        return nbest


class WhisperStrategy:
    def __init__(self, loaded: Loaded) -> None:
        from shared.model import whisper_weights as ww

        self.lm, self.frame_s = loaded.lm, loaded.model.frame_s
        # a bundle built from the user's own checkpoint carries its tokenizer and alignment heads
        own_tokenizer = loaded.bundle_dir / WHISPER_TOKENIZER_FILE
        self.tokens = WhisperTokens(own_tokenizer if own_tokenizer.is_file() else ww.ct2_model_dir() / "tokenizer.json")
        self.pieces = self.tokens.pieces()
        self.lexicon = loaded.make_lexicon(self.pieces, (), self.tokens.eot)
        # the (block, head) pairs whose cross-attention follows the audio: word times (whisper_align.py)
        heads = loaded.meta["alignment_heads"] if "alignment_heads" in loaded.meta else json.loads(
            (ww.ct2_model_dir() / "config.json").read_text()).get("alignment_heads", [])
        n_layers, n_heads = self.lm.cfg.n_layers, self.lm.cfg.n_heads
        self.alignment_heads = [(int(b), int(h)) for b, h in heads] or [  # Whisper's default: the upper half's
            (b, h) for b in range(n_layers // 2, n_layers) for h in range(n_heads)]
        self._token_bytes: Optional[TokenBytes] = None
        self._token_bytes_lock = threading.Lock()

    def token_bytes(self) -> TokenBytes:
        """The tokens' bytes and their lookups (byte biasing), built on the first request that needs them."""
        with self._token_bytes_lock:
            if self._token_bytes is None:
                self._token_bytes = TokenBytes(self.tokens.token_bytes())
            return self._token_bytes

    def decode(self, speech: np.ndarray, context_ids: Sequence[int], context: str, cfg: BeamConfig, phrases: Phrases,
               correction: Optional[CorrectionConfig], cancelled: Optional[Callable[[], bool]],
               output: OutputConfig, draft: Sequence[int] = ()) -> list[NBestEntry]:
        """A `whisper` decoder: the context goes to Whisper's prompt as text; transcripts come out in written form.
        Phrase correction compares context phrases with the spoken form and scores its variants by the decoder given
        the context, teacher-forced, in place of a CTC head (without the context its LM ranks a rare name too low for
        any margin that keeps distractors out: TUNING.md); what it changes goes back into the written words. Then
        one teacher-forced pass of the n-best gives word confidences and the best one's word times
        (shared/model/whisper_align.py). draft: an interim's tokens for this audio, which the search follows while the
        audio confirms them (cfg.draft_margin; beam_search.Draft); the returned entries carry their tokens, an
        interim's to be the next final's draft."""
        tokens = self.tokens
        wanted = cfg.nbest
        if output.partial:
            cfg, correction = dataclasses.replace(cfg, beam_size=1, nbest=1), None
        else:  # every ended beam: how many of them agree on a word is what its confidence rests on most
            cfg = dataclasses.replace(cfg, nbest=max(cfg.nbest, cfg.beam_size))
        with torch.inference_mode():
            audio = torch.from_numpy(np.array(speech, dtype=np.float32))
            audio_kv = self.lm.audio_keys(audio[None])  # once, for the search, the corrector and the alignment
            language, probability = output.language, 1.0
            if not language:
                probs = identify_language(self.lm, audio_kv, tokens, output.candidates)
                language = max(probs, key=probs.__getitem__)
                if probs[language] < output.min_language_probability:  # unsure (a short turn): the first candidate
                    language = output.candidates[0] if output.candidates[0] in probs else language
                probability = probs[language]
            # the written-form rules, phrase correction, the lexicon and the word LM are English's
            english, lead = language == "en", spaced(language)
            # an identified language is written as its bare tag is (zh: simplified); a caller's tag (zh-TW) says otherwise
            bare = parse_language(language, (language,))
            script = output.script if output.script is not None else (bare.script if bare else None)
            # as given and capitalised: Whisper spells names with capitals, the phrases arrive in spoken form
            variants = Phrases(list(dict.fromkeys(v for p in phrases.bias if p for v in (p, p.title()))))
            # a language written without spaces: by the bytes spelled, since BPE merges cross its word edges
            bias: Optional[Biasing] = (
                phrase_biasing(variants, cfg, lambda p: tokens.encode(p, lead_space=True)) if lead
                else ByteBiasing(variants.bias, self.token_bytes(), cfg.bias_bonus) if variants.bias and cfg.bias_bonus > 0
                else None)
            lexicon = request_lexicon(self.lexicon, cfg, phrases, correction) if english else None
            # the draft's last word is the beam's to choose: the interim heard it cut off
            draft = list(draft)[: self._last_word_start(draft, lead)] if not output.partial else []
            hyps = whisper_beam_search(self.lm, audio, tokens, context or None, cfg, bias=bias, cancelled=cancelled,
                                       audio_kv=audio_kv, lexicon=lexicon, language=language, draft=draft)
            nbest: dict[str, NBestEntry] = {}  # spellings that differ only in case or punctuation are one alternative
            for h in hyps:
                written = without_annotations(tokens.decode(h.tokens))
                if english:
                    written = capitalise_addresses(format_numbers(written))
                elif language == "zh":
                    written = chinese_punctuation(to_script(written, script))
                written = capitalise_first_word(written)
                nbest.setdefault(normalize_text(written, language),
                                 NBestEntry(written, h.score, language=language, language_probability=probability,
                                            tokens=list(h.tokens)))
            entries = list(nbest.values())
            if english and entries and correction is not None and correction.margin > 0 and phrases.correction:
                scorer = whisper_text_scorer(self.lm, audio_kv, tokens, context or None)
                spoken = " ".join(spoken_words(entries[0].text)[0])
                corrected = correct_phrases(spoken, phrases.correction, scorer, correction)
                if corrected != spoken:
                    entries[0].text = apply_spoken_edit(entries[0].text, corrected)
            elif language == "zh" and entries and correction is not None and correction.margin_zh > 0:
                # by sound, per character: a rare name comes out as a common homophone (王小明 for 王筱明)
                candidates = list(dict.fromkeys(to_script(p, script) for p in [*phrases.bias, *phrases.correction]))
                if candidates:
                    scorer = whisper_text_scorer(self.lm, audio_kv, tokens, context or None, language=language)
                    entries[0].text = correct_characters(entries[0].text, candidates, scorer,
                                                         dataclasses.replace(correction, margin=correction.margin_zh))
            known = spelling_map(phrases.spellings)
            for entry in entries:
                if english:
                    entry.text = respell(entry.text, [*phrases.bias, *phrases.correction], known)
                entry.normalized = normalize_text(entry.text, language)
            if entries and not output.partial:
                self._align(entries, wanted, audio_kv, context, cfg.alpha, output, len(audio), language)
        return entries[:wanted]

    def _last_word_start(self, draft: Sequence[int], spaced_language: bool) -> int:
        """Where the draft's last word begins (its last token that starts with a space); in a language written
        without spaces, its last two tokens (a character or two)."""
        if not spaced_language:
            return max(0, len(draft) - 2)
        starts = [i for i, t in enumerate(draft) if 0 <= t < len(self.pieces) and self.pieces[t].startswith(WORD_START)]
        return starts[-1] if starts else 0

    def _align(self, entries: list[NBestEntry], wanted: int, audio_kv: list[tuple[torch.Tensor, torch.Tensor]],
               context: str, alpha: float, output: OutputConfig, frames: int, language: str = "en") -> None:
        """Word confidences of the first `wanted` entries (those returned), word times of the best one: one
        teacher-forced pass of them. Every entry still counts in a word's agreement (the other beams saying it)."""
        tokens = self.tokens
        spoken = [set(e.normalized.split()) for e in entries]
        entries = entries[:wanted]
        prompts, alpha = joint_streams(tokens.prompt(language),
                                       tokens.prompt(language, previous=context) if context else None, alpha)
        room = self.lm.cfg.max_tokens - max(len(p) for p in prompts) - 1
        lead = spaced(language)
        texts = [tokens.encode(e.text, lead_space=lead)[:room] if e.text.strip() else [] for e in entries]
        frame_s = self.frame_s  # seconds per encoder frame (Whisper's: 0.02)
        if output.audio_s > 0:
            frames = max(1, min(frames, math.ceil(output.audio_s / frame_s)))
        aligned = align_transcripts(self.lm, audio_kv, prompts, alpha, texts, tokens.eot, self.pieces,
                                    self.alignment_heads, frames, frame_s, tokens.decode,
                                    times_for=1 if output.word_times else 0, spaced=lead)
        for k, (entry, words) in enumerate(zip(entries, aligned)):
            words = [w for w in words if w.word]  # an empty transcript has no words
            others = spoken[:k] + spoken[k + 1 :]
            entry.features = [(w.min_logp, w.entropy, nbest_agreement(w.word, others, language)) for w in words]
            entry.words = [Word(w.word, w.start_s, w.end_s, output.confidence(f)) for w, f in zip(words, entry.features)]
            entry.confidence = float(np.mean([w.confidence for w in entry.words])) if entry.words else 0.0
        for entry in entries[1:] if output.word_times else entries:
            entry.words = [Word(w.word, 0.0, 0.0, w.confidence) for w in entry.words]


def nbest_agreement(word: str, others: Sequence[set[str]], language: str = "en") -> float:
    """The share of the other alternatives (their spoken words) that also say this written word; 1 when there are
    none (a search that ended one way only)."""
    pieces = normalize_text(word, language).split()
    if not others:
        return 1.0
    return sum(all(p in o for p in pieces) for o in others) / len(others)


# decoder type (shared/model/asr.py's registry) -> its decoding strategy
DECODING_STRATEGIES: dict[str, Callable[[Loaded], DecodingStrategy]] = {"moe_lm": MoeLMStrategy, "whisper": WhisperStrategy}
