"""One recognised turn: audio -> encoder -> context -> decoder -> session -> turn event.

The same code runs in the mesh (stubs over NATS or gRPC) and in the embedded server (in-process
stubs); it only sees objects with the RPC methods of the Encoder, Context and Decoder services.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from seedasr.v1 import common_pb2, events_pb2, internal_pb2, recognizer_pb2
from shared.decoding import decoding_for
from shared.events import FEEDBACK_SUBJECT, TURNS_SUBJECT, EventBus, sample_id_of
from shared.segments import Word, align_words, segment_audio
from shared.settings import Settings
from shared.telemetry import current_trace_id

log = logging.getLogger(__name__)


@dataclass
class Peers:
    encoder: Any
    context: Any
    decoder: Any


class TurnPipeline:
    def __init__(self, peers: Peers, events: EventBus, settings: Settings) -> None:
        self.peers, self.events, self.settings = peers, events, settings
        self.decoding = decoding_for(settings)  # the bundle's defaults (the gateway validates and windows with them)

    def recognize(
        self,
        samples: np.ndarray,
        session_id: str,
        config: common_pb2.RecognitionConfig,
        request_context: common_pb2.RequestContext,
        timings: common_pb2.StageTimings,
        deadline_s: Optional[float] = None,
        tenant: str = "",
    ) -> recognizer_pb2.RecognizeResponse:
        """Raises grpc.RpcError (from a peer) for the servicer to pass on."""
        t0 = time.perf_counter()
        cap = self.settings.deadline_s + self.settings.deadline_per_audio_s * len(samples) / 16_000
        deadline_at = t0 + min(deadline_s or cap, cap)

        def left() -> float:
            """What is left of the caller's deadline: every peer call gets that as its own deadline."""
            return max(0.05, deadline_at - time.perf_counter())

        use_context = not config.disable_context
        windows = segment_audio(samples, self.decoding.segment_s)
        pieces: list[list[common_pb2.Alternative]] = []
        words: list[Word] = []
        previous = ""
        context_text = ""
        for start, end in windows:
            ctx_ids: list[int] = []
            phrases: list[str] = []
            candidates: list[str] = []
            if use_context or previous:
                history = [] if not use_context else list(request_context.history)
                req_ctx = common_pb2.RequestContext(
                    history=history,
                    hotwords=request_context.hotwords if use_context else [],
                    prompt=request_context.prompt if use_context else "",
                )
                t = time.perf_counter()
                assembled = self.peers.context.Assemble(
                    internal_pb2.AssembleRequest(session_id=session_id if use_context else "", context=req_ctx,
                                                 previous_text=previous),
                    timeout=left(),
                )
                timings.context_ms += (time.perf_counter() - t) * 1000
                ctx_ids, context_text = list(assembled.token_ids), context_text or assembled.text
                phrases, candidates = list(assembled.bias_phrases), list(assembled.correction_phrases)
            pcm16 = (np.clip(samples[start:end], -1, 1) * 32767).astype("<i2").tobytes()
            t = time.perf_counter()
            encoded = self.peers.encoder.Encode(internal_pb2.EncodeRequest(pcm16=pcm16), timeout=left())
            timings.encode_ms += (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            decoded = self.peers.decoder.Decode(
                internal_pb2.DecodeRequest(speech=encoded.speech, context_ids=ctx_ids, config=config,
                                           bias_phrases=phrases, correction_phrases=candidates), timeout=left()
            )
            timings.decode_ms += (time.perf_counter() - t) * 1000
            alts = list(decoded.alternatives)
            pieces.append(alts)
            best = alts[0].text if alts else ""
            if config.word_timestamps:
                anchors = [Word(w.word, w.start_s, w.end_s) for w in encoded.ctc_words]
                offset = start / 16_000
                words += [Word(w.word, w.start_s + offset, w.end_s + offset)
                          for w in align_words(best, anchors, (end - start) / 16_000)]
            previous = best
        alternatives = merge_windows(pieces)
        if alternatives and config.word_timestamps:
            alternatives[0].words.extend(common_pb2.WordTiming(word=w.word, start_s=w.start_s, end_s=w.end_s) for w in words)
        turn_id = uuid.uuid4().hex
        if session_id and alternatives and alternatives[0].text:
            self.peers.context.AppendTurn(
                recognizer_pb2.AppendTurnRequest(
                    session_id=session_id, turn=common_pb2.Turn(role="user", text=alternatives[0].text, turn_id=turn_id)
                ),
                timeout=left(),
            )
        trace_id = current_trace_id()
        self.publish_turn(turn_id, session_id, alternatives, context_text, trace_id, len(samples) / 16_000, tenant)
        timings.total_ms = (time.perf_counter() - t0) * 1000 + timings.decode_audio_ms
        return recognizer_pb2.RecognizeResponse(turn_id=turn_id, alternatives=alternatives, timings=timings,
                                                audio_seconds=len(samples) / 16_000, trace_id=trace_id)

    def publish_turn(self, turn_id: str, session_id: str, alts: list[common_pb2.Alternative], context_text: str,
                     trace_id: str, seconds: float, tenant: str = "") -> None:
        event = events_pb2.TurnEvent(
            turn_id=turn_id, session_id=session_id, tenant=tenant, context=context_text, trace_id=trace_id,
            audio_seconds=seconds, created_unix=time.time(),
            nbest=[events_pb2.TurnEvent.Hypothesis(text=a.text, score=a.score) for a in alts])
        try:
            self.events.publish(TURNS_SUBJECT, event.SerializeToString(), msg_id=turn_id)
        except Exception:  # the user still gets the result; feedback on this turn cannot be scored
            log.exception("could not publish turn %s", turn_id)

    def submit_feedback(self, turn_id: str, corrected: str, keywords: list[str], tenant: str = "") -> None:
        """Raises on failure: feedback is acknowledged only once it is stored in the event stream."""
        event = events_pb2.FeedbackEvent(turn_id=turn_id, corrected_text=corrected, keywords=keywords, tenant=tenant,
                                         created_unix=time.time())
        self.events.publish(FEEDBACK_SUBJECT, event.SerializeToString(),
                            msg_id=sample_id_of(turn_id, corrected, keywords))


def merge_windows(pieces: list[list[common_pb2.Alternative]]) -> list[common_pb2.Alternative]:
    """Alternative i of a multi-window turn joins each window's i-th hypothesis (or its best)."""
    if len(pieces) == 1:
        return pieces[0]
    n = max((len(p) for p in pieces), default=0)
    merged = []
    for i in range(n):
        chosen = [p[min(i, len(p) - 1)] for p in pieces if p]
        merged.append(common_pb2.Alternative(text=" ".join(a.text for a in chosen if a.text),
                                             score=sum(a.score for a in chosen)))
    return merged
