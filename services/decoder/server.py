"""Decoder service: speech embeddings + context tokens -> n-best by joint beam search (MoE LM)."""

from __future__ import annotations

import time

import grpc

from seedasr.v1 import common_pb2, internal_pb2, internal_pb2_grpc
from services.convert import tensor_from_pb
from services.decoder.config import search_configs
from shared.context import MAX_BIAS_PHRASES, MAX_CORRECTION_PHRASES
from shared.decoding import DecodingDefaults
from shared.model.beam_search import SearchCancelled
from shared.recognition import AsrCore
from shared.settings import Settings

MAX_PHRASE_CHARS = 200


class DecoderService(internal_pb2_grpc.DecoderServicer):
    def __init__(self, core: AsrCore, settings: Settings) -> None:
        self.core, self.settings = core, settings
        self.decoding = DecodingDefaults.from_bundle(core.bundle_dir).overridden(settings)
        self.width = core.cfg.lm.d_model
        self.vocab = core.tok.vocab_size

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
        if len(request.bias_phrases) > MAX_BIAS_PHRASES or any(len(p) > MAX_PHRASE_CHARS for p in request.bias_phrases):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"at most {MAX_BIAS_PHRASES} bias_phrases of at most {MAX_PHRASE_CHARS} characters")
        if len(request.correction_phrases) > MAX_CORRECTION_PHRASES or any(
                len(p) > MAX_PHRASE_CHARS for p in request.correction_phrases):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"at most {MAX_CORRECTION_PHRASES} correction_phrases of at most {MAX_PHRASE_CHARS} characters")
        start = time.perf_counter()
        remaining = context.time_remaining()
        try:
            # the caller's deadline bounds the wait for the model and the search: late work is dropped
            nbest = self.core.decode(speech, list(request.context_ids), cfg, list(request.bias_phrases),
                                     list(request.correction_phrases), correction,
                                     cancelled=lambda: not context.is_active(),
                                     wait_s=remaining if remaining is not None and remaining < 1e6 else None)
        except SearchCancelled as exc:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"decode stopped: {exc}")
        return internal_pb2.DecodeResponse(
            alternatives=[common_pb2.Alternative(text=h.text, score=h.score) for h in nbest],
            decode_ms=(time.perf_counter() - start) * 1000,
        )
