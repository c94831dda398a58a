"""Recognition steps shared by the services and the embedded server: encode and decode (segmenting and
word timing, which need no model, are in shared/segments.py). Services wrap these in servicers; no
transport code lives here."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from shared.bundle import default_bundle_dir, load_bundle, read_bundle
from shared.context import context_text
from shared.decoding import decoding_for
from shared.engines import EncoderEngine, EncoderOutput, engine_kind, make_encoder_engine
from shared.features import encoder_features
from shared.languages import chinese_punctuation, parse_language, spaced, to_script
from shared.model.asr import HALVES, SeedASR, encoder_kind, pad_to_window
from shared.model.beam_search import BeamConfig, SearchCancelled, joint_beam_search, joint_streams
from shared.model.biasing import Biasing, PhraseBiasing
from shared.model.byte_biasing import ByteBiasing, TokenBytes
from shared.model.ctc_prefix import CTCPrefixScorer
from shared.model.lexicon import WordLexicon, load_words
from shared.model.moe_lm import MoeLM, share_identical_experts
from shared.model.phrase_correction import CorrectionConfig, correct_phrases, ctc_text_scorer
from shared.model.quantize import LINEAR_PRECISIONS, bf16_linears, quantize_linears
from shared.model.whisper_align import align_transcripts
from shared.model.whisper_decoder import WHISPER_TOKENIZER_FILE, WhisperDecoder, WhisperTokens
from shared.model.whisper_search import identify_language, whisper_beam_search, whisper_text_scorer
from shared.model.word_lm import WORD_LM_FILE, WordLM
from shared.segments import Word
from shared.settings import Settings
from shared.text import normalize_text
from shared.written import apply_spoken_edit, format_times, respell, spelling_map, spoken_words


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


class AsrCore:
    """A loaded bundle: the encoder engine for `encode`, the LM for `decode`. `half` loads one side only
    (the encoder service: "encoder"; the decoder service: "decoder"); with an ONNX or TensorRT engine the
    audio encoder's torch weights are never read. `warps`: the filterbank frequency warps each audio is
    encoded under (shared/features.py), the most confident kept. `lm_int8`: the decoder's output layer in int8,
    and its blocks' linears in `lm_blocks` ("int8", "bf16" or "fp32"; without lm_int8 the whole LM stays fp32);
    `encoder_int8`: the ONNX engine runs the int8 encoder."""

    def __init__(self, bundle_dir: Optional[str | Path] = None, engine: str = "auto", threads: int = 0,
                 warps: Sequence[float] = (1.0,), lm_int8: bool = False, half: str = "all",
                 lm_blocks: str = "int8", encoder_int8: bool = False) -> None:
        if not warps or any(not 0.5 <= w <= 2.0 for w in warps):
            raise ValueError(f"filterbank warps must be a non-empty list of values in [0.5, 2], got {list(warps)}")
        if half not in HALVES:
            raise ValueError(f"half must be one of {HALVES}, got {half!r}")
        if lm_blocks not in LINEAR_PRECISIONS:
            raise ValueError(f"lm_blocks must be one of {LINEAR_PRECISIONS}, got {lm_blocks!r}")
        self.warps, self.half = tuple(warps), half
        self.bundle_dir = Path(bundle_dir) if bundle_dir else default_bundle_dir()
        if threads:
            torch.set_num_threads(threads)
        self.cfg, self.tok, self.meta = read_bundle(self.bundle_dir)
        kind = engine_kind(engine, self.bundle_dir) if half != "decoder" else ""
        torch_encoder, runs_lm = kind == "torch", half != "encoder"
        load = "all" if torch_encoder and runs_lm else "encoder" if torch_encoder else "decoder" if runs_lm else ""
        self.model: Optional[SeedASR] = load_bundle(self.bundle_dir, load)[0] if load else None
        self.engine: Optional[EncoderEngine] = (
            make_encoder_engine(kind, self.model, self.bundle_dir, threads, encoder_int8) if half != "decoder" else None)
        self.lexicon: Optional[WordLexicon] = None
        self.whisper_tokens: Optional[WhisperTokens] = None
        if runs_lm:
            assert self.model is not None
            # the search's LM, in int8 in place: nothing here reads its fp32 linears again (the CTC head and prompt
            # embeddings use its embedding table, which stays fp32). Off unless asked (services ask through
            # SEEDASR_LM_INT8, default on), so library callers get the exact model
            share_identical_experts(self.model.lm)  # exact; before int8, which keeps the sharing
            self.lm = self.model.lm
            if lm_int8:
                if lm_blocks == "bf16":  # the router stays fp32: it picks the experts
                    bf16_linears(self.lm, skip=("head", "router"))
                self.lm = quantize_linears(self.lm, inplace=True, only=None if lm_blocks == "int8" else {"head"})
        if runs_lm and self.cfg.decoder_type == "whisper":
            from shared.model import whisper_weights as ww

            # a bundle built from the user's own checkpoint carries its tokenizer and alignment heads
            own_tokenizer = self.bundle_dir / WHISPER_TOKENIZER_FILE
            self.whisper_tokens = WhisperTokens(own_tokenizer if own_tokenizer.is_file() else
                                                ww.ct2_model_dir() / "tokenizer.json")
            self.pieces = self.whisper_tokens.pieces()
            self.lexicon = self._lexicon(self.pieces, (), self.whisper_tokens.eot)
            # the (block, head) pairs whose cross-attention follows the audio: word times (whisper_align.py)
            heads = self.meta["alignment_heads"] if "alignment_heads" in self.meta else json.loads(
                (ww.ct2_model_dir() / "config.json").read_text()).get("alignment_heads", [])
            self.alignment_heads = [(int(b), int(h)) for b, h in heads] or [  # Whisper's default: the upper half's
                (b, h) for b in range(self.lm.cfg.n_layers // 2, self.lm.cfg.n_layers) for h in range(self.lm.cfg.n_heads)]
        elif runs_lm:
            self.lexicon = self._lexicon([self.tok.id_to_piece(i) for i in range(self.tok.vocab_size)],
                                         self.tok.special_ids, self.tok.eos_id)
        self.lock = threading.Lock()  # torch intra-op threads already use the cores; serialize decodes
        self._token_bytes: Optional[TokenBytes] = None
        self._token_bytes_lock = threading.Lock()

    def token_bytes(self) -> TokenBytes:
        """The Whisper tokens' bytes and their lookups, built on the first request that needs them."""
        with self._token_bytes_lock:
            if self._token_bytes is None:
                assert self.whisper_tokens is not None
                self._token_bytes = TokenBytes(self.whisper_tokens.token_bytes())
            return self._token_bytes

    @classmethod
    def from_settings(cls, settings: Settings, half: str = "all") -> AsrCore:
        """The model as a process runs it, under its bundle's decoding defaults and the server's settings: the
        encoder and decoder services each load only their half."""
        decoding = decoding_for(settings)
        return cls(settings.model or None, settings.engine, settings.threads, decoding.warps, decoding.lm_int8, half,
                   decoding.lm_blocks, decoding.encoder_int8)

    def _lexicon(self, pieces: Sequence[str], special_ids: Iterable[int], eos_id: int) -> WordLexicon:
        """The bundle's word list and word LM (each optional) over the decoder's pieces."""
        lexicon_file, word_lm_file = self.bundle_dir / "lexicon.txt", self.bundle_dir / WORD_LM_FILE
        return WordLexicon(load_words(lexicon_file) if lexicon_file.exists() else frozenset(), pieces, special_ids,
                           eos_id, word_lm=WordLM(word_lm_file) if word_lm_file.exists() else None)

    # ---- encoder side --------------------------------------------------------------------------
    def encode(self, samples: np.ndarray) -> tuple[EncoderOutput, str, list[Word]]:
        """16 kHz float32 (N,) -> speech embeddings, CTC greedy text and its word timings.

        Test-time vocal tract length normalisation: the audio is encoded under each of self.warps (one
        batch) and the encoding whose CTC posteriors are surest (lowest mean entropy) is kept, so a voice
        unlike the training voices is read through the filterbank that makes it most familiar. A `whisper`
        encoder reads Whisper's own log-mel frames, unwarped: it was pretrained on real voices."""
        if self.engine is None:
            raise RuntimeError("this AsrCore loaded the decoder half only: it cannot encode")
        samples = pad_to_window(samples, self.cfg.window_s)
        feats = encoder_features(samples, encoder_kind(self.cfg.encoder_type).features, self.warps,
                                 self.cfg.encoder.n_mels)  # (K, T, F)
        if len(feats) == 1:
            out = self.engine.encode(feats[0])
        else:
            outs = self.engine.encode_batch(feats)
            out = outs[most_confident(outs)]
        text, words = self.ctc_greedy(out.ctc_logp)
        return out, text, words

    def ctc_greedy(self, ctc_logp: np.ndarray) -> tuple[str, list[Word]]:
        """ctc_logp (S, V) at the converter's rate -> greedy text and word timings (none without a CTC head:
        one column)."""
        if ctc_logp.shape[-1] == 1:
            return "", []
        blank = self.cfg.ctc_blank
        frame_s = self.cfg.frame_s
        best = ctc_logp.argmax(-1)
        pieces: list[tuple[int, int]] = []  # (token, frame)
        prev = -1
        for t, tokid in enumerate(best.tolist()):
            if tokid != prev and tokid != blank:
                pieces.append((tokid, t))
            prev = tokid
        words: list[Word] = []
        for tokid, t in pieces:
            piece = self.tok.id_to_piece(tokid)
            if tokid in self.tok.special_ids or piece.startswith("<0x"):
                continue
            if piece.startswith("\u2581") or not words:
                words.append(Word(piece.lstrip("\u2581"), t * frame_s, (t + 1) * frame_s))
            else:
                words[-1].word += piece
                words[-1].end_s = (t + 1) * frame_s
        words = [w for w in words if w.word]
        return " ".join(w.word for w in words), words

    # ---- decoder side --------------------------------------------------------------------------
    def decode(self, speech: np.ndarray, context_ids: Sequence[int], cfg: BeamConfig,
               bias_phrases: Sequence[str] = (), correction_phrases: Sequence[str] = (),
               correction: Optional[CorrectionConfig] = None,
               cancelled: Optional[Callable[[], bool]] = None, wait_s: Optional[float] = None,
               context: str = "", spellings: Sequence[str] = (), output: OutputConfig = OutputConfig(),
               ) -> list[NBestEntry]:
        """speech (S, D_lm) -> n-best, best first. Empty context_ids decodes context-free; bias_phrases
        (hotwords, rare context words) earn cfg.bias_bonus per token when spelled out whole; words outside
        the bundle's lexicon and the context cost cfg.oov_penalty (shared/model/lexicon.py); then
        correction_phrases may replace look-alike spans of the best text (shared/model/phrase_correction.py;
        it keeps its search score). `cancelled` stops the search (SearchCancelled) when the caller is gone;
        a decode that cannot start within `wait_s` (others hold the model) raises SearchCancelled too.
        context: the context as written, for a decoder that reads it as text (else it is read from context_ids);
        spellings: context words as written, which the transcript then spells the same way (shared/written.py)."""
        if self.half == "encoder":
            raise RuntimeError("this AsrCore loaded the encoder half only: it cannot decode")
        # A transcript has at most about one token per 80 ms speech position: this bounds runaway loops.
        cfg = dataclasses.replace(cfg, max_tokens=min(cfg.max_tokens, 10 + len(speech)))
        if not self.lock.acquire(timeout=-1 if wait_s is None else max(0.0, wait_s)):
            raise SearchCancelled(f"the model stayed busy for {wait_s:.1f} s")
        threads = torch.get_num_threads()
        if output.threads and output.threads != threads:  # decodes hold the lock: only this one runs on them
            torch.set_num_threads(output.threads)
        try:
            if self.whisper_tokens is not None:
                return self._decode_whisper(speech, context or context_text(self.tok, context_ids), cfg, bias_phrases,
                                            correction_phrases, correction, cancelled, spellings, output)
            return self._decode(speech, context_ids, cfg, bias_phrases, correction_phrases, correction, cancelled, output)
        finally:
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
            self.lock.release()

    def _decode(self, speech: np.ndarray, context_ids: Sequence[int], cfg: BeamConfig, bias_phrases: Sequence[str],
                correction_phrases: Sequence[str], correction: Optional[CorrectionConfig],
                cancelled: Optional[Callable[[], bool]], output: OutputConfig) -> list[NBestEntry]:
        """Our MoE LM: it writes the spoken form; confidence from the search's score per token."""
        if output.partial:
            cfg, correction = dataclasses.replace(cfg, beam_size=1, nbest=1), None
        assert self.model is not None and self.lexicon is not None and isinstance(self.lm, MoeLM)
        with torch.inference_mode():
            sp = torch.from_numpy(np.array(speech, dtype=np.float32))  # a writable copy
            free = self.model.prefix_embeds(self.tok, sp, None)
            ctx = self.model.prefix_embeds(self.tok, sp, list(context_ids)) if context_ids else None
            ctc, logp = None, None
            if self.model.ctc is not None:
                logp = self.model.ctc_logits(sp[None])[0].log_softmax(-1)  # (S, V), cheap next to the LM
            if logp is not None and cfg.ctc_weight > 0:
                ctc = CTCPrefixScorer(logp, self.model.ctc_blank, self.tok.eos_id)
            phrases = [self.tok.encode(p) for p in bias_phrases if p]
            bias = PhraseBiasing(phrases, cfg.bias_bonus) if phrases and cfg.bias_bonus > 0 else None
            # context words, and words spelled like them, are never out of the lexicon
            near = correction.min_similarity if correction is not None and correction.margin > 0 else 1.0
            lexicon = self.lexicon.for_request(cfg.oov_penalty, [*bias_phrases, *correction_phrases], near,
                                               cfg.word_lm_weight, cfg.word_bonus)
            hyps = joint_beam_search(self.lm, free, ctx, self.tok.eos_id, cfg, ctc=ctc, bias=bias,
                                     lexicon=lexicon if lexicon else None, cancelled=cancelled)
            nbest = [NBestEntry(self.tok.decode(h.tokens), h.score,
                                confidence=output.confidence((h.score / (len(h.tokens) + 1), 0.0, 1.0))) for h in hyps]
            if nbest and logp is not None and correction is not None and correction_phrases:
                nbest[0].text = correct_phrases(nbest[0].text, correction_phrases,
                                                ctc_text_scorer(logp, self.tok.encode, self.model.ctc_blank), correction)
        for entry in nbest:
            entry.normalized = entry.text
        return nbest

    def _decode_whisper(self, speech: np.ndarray, context: str, cfg: BeamConfig, bias_phrases: Sequence[str],
                        correction_phrases: Sequence[str], correction: Optional[CorrectionConfig],
                        cancelled: Optional[Callable[[], bool]], spellings: Sequence[str],
                        output: OutputConfig) -> list[NBestEntry]:
        """A `whisper` decoder: the context goes to Whisper's prompt as text; transcripts come out in written form.
        Phrase correction compares context phrases with the spoken form and scores its variants by the decoder given
        the context, teacher-forced, in place of a CTC head (without the context its LM ranks a rare name too low for
        any margin that keeps distractors out: TUNING.md); what it changes goes back into the written words. Then
        one teacher-forced pass of the n-best gives word confidences and the best one's word times
        (shared/model/whisper_align.py)."""
        assert self.whisper_tokens is not None and isinstance(self.lm, WhisperDecoder)
        tokens = self.whisper_tokens
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
            variants = dict.fromkeys(v for p in bias_phrases if p for v in (p, p.title()))
            bias: Optional[Biasing] = None
            if variants and cfg.bias_bonus > 0:
                # a language written without spaces: by the bytes spelled, since BPE merges cross its word edges
                bias = (PhraseBiasing([tokens.encode(p, lead_space=True) for p in variants], cfg.bias_bonus) if lead
                        else ByteBiasing(list(variants), self.token_bytes(), cfg.bias_bonus))
            assert self.lexicon is not None
            near = correction.min_similarity if correction is not None and correction.margin > 0 else 1.0
            lexicon = self.lexicon.for_request(cfg.oov_penalty, [*bias_phrases, *correction_phrases], near,
                                               cfg.word_lm_weight, cfg.word_bonus) if english else None
            hyps = whisper_beam_search(self.lm, audio, tokens, context or None, cfg, bias=bias, cancelled=cancelled,
                                       audio_kv=audio_kv, lexicon=lexicon if lexicon else None, language=language)
            nbest: dict[str, NBestEntry] = {}  # spellings that differ only in case or punctuation are one alternative
            for h in hyps:
                written = tokens.decode(h.tokens)
                if english:
                    written = format_times(written)
                elif language == "zh":
                    written = chinese_punctuation(to_script(written, script))
                nbest.setdefault(normalize_text(written, language),
                                 NBestEntry(written, h.score, language=language, language_probability=probability))
            entries = list(nbest.values())
            if english and entries and correction is not None and correction.margin > 0 and correction_phrases:
                scorer = whisper_text_scorer(self.lm, audio_kv, tokens, context or None)
                spoken = " ".join(spoken_words(entries[0].text)[0])
                corrected = correct_phrases(spoken, correction_phrases, scorer, correction)
                if corrected != spoken:
                    entries[0].text = apply_spoken_edit(entries[0].text, corrected)
            known = spelling_map(spellings)
            for entry in entries:
                if english:
                    entry.text = respell(entry.text, [*bias_phrases, *correction_phrases], known)
                entry.normalized = normalize_text(entry.text, language)
            if entries and not output.partial:
                self._align(entries, audio_kv, context, cfg.alpha, output, len(audio), language)
        return entries[:wanted]

    def _align(self, entries: list[NBestEntry], audio_kv: list[tuple[torch.Tensor, torch.Tensor]], context: str,
               alpha: float, output: OutputConfig, frames: int, language: str = "en") -> None:
        """Word confidences of every entry, word times of the best one (one teacher-forced pass of them all)."""
        assert self.whisper_tokens is not None and isinstance(self.lm, WhisperDecoder)
        tokens = self.whisper_tokens
        prompts, alpha = joint_streams(tokens.prompt(language),
                                       tokens.prompt(language, previous=context) if context else None, alpha)
        room = self.lm.cfg.max_tokens - max(len(p) for p in prompts) - 1
        lead = spaced(language)
        texts = [tokens.encode(e.text, lead_space=lead)[:room] if e.text.strip() else [] for e in entries]
        frame_s = self.cfg.frame_s  # seconds per encoder frame (Whisper's: 0.02)
        if output.audio_s > 0:
            frames = max(1, min(frames, math.ceil(output.audio_s / frame_s)))
        aligned = align_transcripts(self.lm, audio_kv, prompts, alpha, texts, tokens.eot, self.pieces,
                                    self.alignment_heads, frames, frame_s, tokens.decode,
                                    times_for=1 if output.word_times else 0, spaced=lead)
        spoken = [set(e.normalized.split()) for e in entries]
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


def most_confident(outputs: Sequence[EncoderOutput]) -> int:
    """Index of the encoding whose CTC posteriors have the lowest mean entropy per frame."""
    entropies = [float(-(np.exp(o.ctc_logp) * o.ctc_logp).sum(-1).mean()) for o in outputs]
    return int(np.argmin(entropies))
