"""Decoder service: speech embeddings + context tokens -> n-best by joint beam search (MoE LM)."""

from __future__ import annotations

import logging
import time

import grpc

from seedasr.v1 import common_pb2, internal_pb2, internal_pb2_grpc
from services.convert import tensor_from_pb
from services.decoder.config import search_configs
from shared.context import MAX_BIAS_PHRASES, MAX_CORRECTION_PHRASES, MAX_SPELLINGS
from shared.decoding import DecodingDefaults, bundle_languages
from shared.languages import parse_language
from shared.model.beam_search import SearchCancelled
from shared.recognition import AsrCore, NBestEntry, OutputConfig
from shared.settings import Settings

log = logging.getLogger(__name__)
MAX_PHRASE_CHARS = 200
MAX_CONTEXT_CHARS = 20_000  # the context service assembles a few hundred tokens' worth
MAX_DRAFT_TOKENS = 448  # a transcript of one window: Whisper's positions


def alternative_pb(entry: NBestEntry) -> common_pb2.Alternative:
    return common_pb2.Alternative(
        text=entry.text, score=entry.score, normalized_text=entry.normalized, confidence=entry.confidence,
        words=[common_pb2.WordTiming(word=w.word, start_s=w.start_s, end_s=w.end_s, confidence=w.confidence)
               for w in entry.words])


def identification_candidates(asked: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    """SEEDASR_LANGUAGES as the model's codes (aliases resolved, repeats dropped; the first stays first: it is the
    fallback of an unsure identification); codes the model lacks are logged and left out. A one-language model (or
    a list with nothing the model knows) has only its first language."""
    out: list[str] = []
    for tag in asked:
        try:
            language = parse_language(tag, known)
        except ValueError:
            log.warning("SEEDASR_LANGUAGES: %r is not a language of this bundle; left out", tag)
            continue
        if language is not None and language.code not in out:
            out.append(language.code)
    return tuple(out) or known[:1]


class DecoderService(internal_pb2_grpc.DecoderServicer):
    def __init__(self, core: AsrCore, settings: Settings) -> None:
        self.core, self.settings = core, settings
        self.decoding = DecodingDefaults.from_bundle(core.bundle_dir).overridden(settings)
        self.confidence = self.decoding.confidence  # checked at start: a bad bundle or setting stops the service
        self.width = core.cfg.lm.d_model
        self.vocab = core.tok.vocab_size
        self.lm_vocab = core.cfg.lm.vocab_size  # the decoder's own tokens (a draft's), not the context tokenizer's
        self.languages = bundle_languages(core.bundle_dir)
        self.candidates = identification_candidates(settings.language_candidates, self.languages)

    def Decode(self, request: internal_pb2.DecodeRequest, context: grpc.ServicerContext) -> internal_pb2.DecodeResponse:
        try:
            speech = tensor_from_pb(request.speech)
            cfg, correction = search_configs(request.config, self.decoding, with_context=bool(request.context_ids))
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        if speech.ndim != 2 or speech.shape[1] != self.width or speech.shape[0] == 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"speech must be (S>0, {self.width}), got {speech.shape}")
        if any(not 0 <= i < self.vocab for i in request.context_ids):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"context_ids must be in [0, {self.vocab})")
        if len(request.draft_tokens) > MAX_DRAFT_TOKENS or any(not 0 <= i < self.lm_vocab for i in request.draft_tokens):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"at most {MAX_DRAFT_TOKENS} draft_tokens, each in [0, {self.lm_vocab})")
        if len(request.bias_phrases) > MAX_BIAS_PHRASES or any(len(p) > MAX_PHRASE_CHARS for p in request.bias_phrases):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"at most {MAX_BIAS_PHRASES} bias_phrases of at most {MAX_PHRASE_CHARS} characters")
        if len(request.correction_phrases) > MAX_CORRECTION_PHRASES or any(
                len(p) > MAX_PHRASE_CHARS for p in request.correction_phrases):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"at most {MAX_CORRECTION_PHRASES} correction_phrases of at most {MAX_PHRASE_CHARS} characters")
        if len(request.spellings) > MAX_SPELLINGS or any(len(p) > MAX_PHRASE_CHARS for p in request.spellings):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"at most {MAX_SPELLINGS} spellings of at most {MAX_PHRASE_CHARS} characters")
        if len(request.context_text) > MAX_CONTEXT_CHARS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"context_text is longer than {MAX_CONTEXT_CHARS} characters")
        if not 0.0 <= request.audio_s <= 3600.0:  # NaN fails too
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"audio_s must be in [0, 3600], got {request.audio_s}")
        try:
            language = parse_language(request.config.language, self.languages)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        code = language.code if language else ("" if len(self.candidates) > 1 else self.candidates[0])
        output = OutputConfig(audio_s=request.audio_s, word_times=request.config.word_timestamps,
                              partial=request.partial,
                              threads=self.settings.urgent_threads if request.urgent else 0,
                              language=code, candidates=self.candidates, script=language.script if language else None,
                              min_language_probability=self.settings.language_min_probability,
                              **({"confidence_weights": self.confidence} if self.confidence else {}))
        start = time.perf_counter()
        remaining = context.time_remaining()
        try:
            # the caller's deadline bounds the wait for the model and the search: late work is dropped
            nbest = self.core.decode(speech, list(request.context_ids), cfg, list(request.bias_phrases),
                                     list(request.correction_phrases), correction,
                                     cancelled=lambda: not context.is_active(),
                                     wait_s=remaining if remaining is not None and remaining < 1e6 else None,
                                     context=request.context_text, spellings=list(request.spellings), output=output,
                                     draft=list(request.draft_tokens))
        except SearchCancelled as exc:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"decode stopped: {exc}")
        return internal_pb2.DecodeResponse(
            alternatives=[alternative_pb(h) for h in nbest],
            decode_ms=(time.perf_counter() - start) * 1000,
            language=nbest[0].language if nbest else (code or self.candidates[0]),
            language_probability=nbest[0].language_probability if nbest else 0.0,
            tokens=nbest[0].tokens if nbest and request.partial else [],
        )
