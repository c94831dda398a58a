"""Encoder service: 16 kHz PCM -> fbank -> LUISE -> converter (TensorRT | ONNX Runtime | torch)."""

from __future__ import annotations

import time

import grpc
import numpy as np

from seedasr.v1 import common_pb2, internal_pb2, internal_pb2_grpc
from services.convert import tensor_to_pb
from shared.engines import EncodeCancelled
from shared.recognition import AsrCore

MAX_SAMPLES = 16_000 * 60  # one window; the gateway splits longer audio


class EncoderService(internal_pb2_grpc.EncoderServicer):
    def __init__(self, core: AsrCore) -> None:
        if core.engine is None:
            raise ValueError("the encoder service needs an AsrCore with its encoder half loaded")
        self.core, self.engine_name = core, core.engine.name

    def Encode(self, request: internal_pb2.EncodeRequest, context: grpc.ServicerContext) -> internal_pb2.EncodeResponse:
        pcm = request.pcm16
        if not pcm or len(pcm) % 2:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "pcm16 must be a non-empty, even number of bytes")
        if len(pcm) // 2 > MAX_SAMPLES:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, f"at most {MAX_SAMPLES} samples per Encode call")
        if not 0 <= request.window_s <= 30:  # NaN fails too
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"window_s must be in [0, 30] s, got {request.window_s}")
        start = time.perf_counter()
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        if not context.is_active():
            context.abort(grpc.StatusCode.CANCELLED, "the caller went away before its audio was encoded")
        try:  # an interim whose turn ended stops here, leaving the cores to the final
            out, text, words = self.core.encode(samples, request.window_s, cancelled=lambda: not context.is_active())
        except EncodeCancelled as exc:
            context.abort(grpc.StatusCode.CANCELLED, str(exc))
        return internal_pb2.EncodeResponse(
            speech=tensor_to_pb(out.speech),
            ctc_text=text,
            ctc_words=[common_pb2.WordTiming(word=w.word, start_s=w.start_s, end_s=w.end_s) for w in words],
            engine=self.engine_name,
            encode_ms=(time.perf_counter() - start) * 1000,
        )
