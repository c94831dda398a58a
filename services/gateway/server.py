"""Gateway: the public seedasr.v1.Recognizer service."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any, Optional

import grpc

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.convert import request_decoding
from services.gateway.limits import check_context, check_language, scoped, unscoped
from services.gateway.pipeline import Interim, Transcript, TurnPipeline
from services.gateway.streaming import StreamSession
from services.gateway.turn_worker import Inbox
from services.guard import current_tenant
from shared.audio import AudioError, AudioLimits, decode_audio
from shared.languages import parse_language
from shared.sessions import MAX_SESSION_ID, check_session_id
from shared.settings import Settings
from shared.turn_ids import belongs_to

log = logging.getLogger(__name__)
MAX_FEEDBACK_CHARS = 4000


class RecognizerService(recognizer_pb2_grpc.RecognizerServicer):
    def __init__(self, pipeline: TurnPipeline, settings: Settings) -> None:
        self.pipeline, self.settings = pipeline, settings
        self.decoding = pipeline.decoding
        self.limits = AudioLimits(max_seconds=settings.max_audio_s,
                                  max_bytes=settings.max_message_mb * 1024 * 1024)

    # ---- helpers -------------------------------------------------------------------------------
    def check(self, session_id: str, config: common_pb2.RecognitionConfig, ctx: common_pb2.RequestContext,
              context: Any) -> None:
        """What a recognition request must pass before any work (the HTTP front checks its requests here too)."""
        check_session_id(session_id, context, required=False, limit=MAX_SESSION_ID)
        self._validate(config, ctx, context)

    def _validate(self, config: common_pb2.RecognitionConfig, ctx: common_pb2.RequestContext, context: Any) -> None:
        check_language(config.language, context)
        check_context(ctx, self.settings, context)
        try:
            parse_language(config.language, self.pipeline.languages)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        try:
            request_decoding(config, self.decoding)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def _remaining(self, context: Any) -> Optional[float]:
        remaining = context.time_remaining() if hasattr(context, "time_remaining") else None
        return remaining if remaining and remaining < 1e6 else None

    def recognize_samples(self, samples: Any, session_id: str, config: common_pb2.RecognitionConfig,
                          req_ctx: common_pb2.RequestContext, timings: common_pb2.StageTimings,
                          context: Any) -> recognizer_pb2.RecognizeResponse:
        try:
            return self.pipeline.recognize(samples, scoped(session_id), config, req_ctx, timings, self._remaining(context),
                                           tenant=current_tenant.get())
        except grpc.RpcError as err:  # a peer's status passes through unchanged
            context.abort(err.code(), err.details())
            raise  # unreachable: abort raises

    def transcribe_samples(self, samples: Any, session_id: str, config: common_pb2.RecognitionConfig,
                           req_ctx: common_pb2.RequestContext, context: Any, draft: Sequence[int] = ()) -> Transcript:
        """A stream's turn, not yet committed; a peer's error ends the call with the peer's status. draft: an interim's
        tokens (Interim.tokens), which the decode follows as far as the whole turn confirms them."""
        try:
            return self.speculate_samples(samples, session_id, config, req_ctx, context, draft)
        except grpc.RpcError as err:
            context.abort(err.code(), err.details())
            raise  # unreachable: abort raises

    def speculate_samples(self, samples: Any, session_id: str, config: common_pb2.RecognitionConfig,
                          req_ctx: common_pb2.RequestContext, context: Any, draft: Sequence[int] = ()) -> Transcript:
        """A stream's turn as transcribe_samples makes it, but a peer's error is raised (grpc.RpcError), not ended
        the call with: a turn transcribed at a pause, before its end is known, may fail; the final is then
        transcribed as usual and reports the error."""
        return self.pipeline.transcribe(samples, scoped(session_id), config, req_ctx, common_pb2.StageTimings(),
                                        self._remaining(context), urgent=True, draft=draft)

    def commit_turn(self, done: Transcript, session_id: str, context: Any) -> recognizer_pb2.RecognizeResponse:
        try:
            return self.pipeline.commit(done, scoped(session_id), tenant=current_tenant.get(),
                                        deadline_s=self._remaining(context))
        except grpc.RpcError as err:
            context.abort(err.code(), err.details())
            raise  # unreachable: abort raises

    def partial_samples(self, samples: Any, session_id: str, config: common_pb2.RecognitionConfig,
                        req_ctx: common_pb2.RequestContext) -> Interim:
        """An interim result of a turn still being spoken (raises grpc.RpcError: interims are best effort)."""
        return self.pipeline.partial(samples, scoped(session_id), config, req_ctx, self.settings.deadline_s)

    # ---- RPCs ----------------------------------------------------------------------------------
    def Recognize(self, request: recognizer_pb2.RecognizeRequest, context: Any) -> recognizer_pb2.RecognizeResponse:
        self.check(request.session_id, request.config, request.context, context)
        t = time.perf_counter()
        try:
            samples = decode_audio(request.audio.content, encoding=request.audio.encoding,
                                   sample_rate=request.audio.sample_rate, channels=request.audio.channels or 1,
                                   limits=self.limits)
        except AudioError as exc:
            context.abort(getattr(grpc.StatusCode, exc.status), str(exc))
        timings = common_pb2.StageTimings(decode_audio_ms=(time.perf_counter() - t) * 1000)
        return self.recognize_samples(samples, request.session_id, request.config, request.context, timings, context)

    def StreamingRecognize(self, request_iterator: Iterator[recognizer_pb2.StreamingRecognizeRequest],
                           context: Any) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        # a reader thread takes the client's messages from the start: a stream that never sends its config is
        # timed out like one that stops sending audio
        inbox = Inbox(request_iterator)
        try:
            first = next(inbox.messages(self.settings.stream_idle_s, context), None)
            if first is None or first.WhichOneof("request") != "streaming_config":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must carry streaming_config")
                return
            cfg = first.streaming_config
            self.check(cfg.session_id, cfg.config, cfg.context, context)
            try:
                stream = StreamSession(self, cfg, context)
            except AudioError as exc:
                context.abort(getattr(grpc.StatusCode, exc.status), str(exc))
            yield from stream.run(inbox)
        finally:
            inbox.close()

    def AppendTurn(self, request: recognizer_pb2.AppendTurnRequest, context: Any) -> recognizer_pb2.AppendTurnResponse:
        return self._pass(self.pipeline.peers.context.AppendTurn, self._scope(request, context), context)

    def GetSession(self, request: recognizer_pb2.GetSessionRequest, context: Any) -> recognizer_pb2.GetSessionResponse:
        resp = self._pass(self.pipeline.peers.context.GetSession, self._scope(request, context), context)
        resp.session_id = unscoped(resp.session_id)
        return resp

    def DeleteSession(
        self, request: recognizer_pb2.DeleteSessionRequest, context: Any
    ) -> recognizer_pb2.DeleteSessionResponse:
        return self._pass(self.pipeline.peers.context.DeleteSession, self._scope(request, context), context)

    def _scope(self, request: Any, context: Any) -> Any:
        """A copy of a session request whose session_id is the tenant's (the caller's own is checked first)."""
        check_session_id(request.session_id, context, limit=MAX_SESSION_ID)
        scoped_request = type(request)()
        scoped_request.CopyFrom(request)
        scoped_request.session_id = scoped(request.session_id)
        return scoped_request

    def SubmitFeedback(
        self, request: recognizer_pb2.SubmitFeedbackRequest, context: Any
    ) -> recognizer_pb2.SubmitFeedbackResponse:
        if not request.turn_id or len(request.turn_id) > 64:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "turn_id must be the turn_id of a Recognize response")
        if not request.corrected_text.strip() or len(request.corrected_text) > MAX_FEEDBACK_CHARS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"corrected_text must be 1-{MAX_FEEDBACK_CHARS} characters")
        if not belongs_to(request.turn_id, current_tenant.get()):  # another tenant's turn, or no turn of ours
            context.abort(grpc.StatusCode.NOT_FOUND, f"no turn {request.turn_id!r} for this caller")
        try:
            self.pipeline.submit_feedback(request.turn_id, request.corrected_text, list(request.keywords),
                                          tenant=current_tenant.get())
        except LookupError as exc:  # embedded: the turn is unknown, scored at once
            context.abort(grpc.StatusCode.NOT_FOUND, f"no turn {request.turn_id!r} to score: {exc}")
        except Exception as exc:
            log.warning("feedback for %s not stored: %s", request.turn_id, exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, "feedback could not be stored; retry later")
        return recognizer_pb2.SubmitFeedbackResponse(accepted=True)

    def _pass(self, method: Any, request: Any, context: Any) -> Any:
        try:
            return method(request, timeout=self._remaining(context) or self.settings.deadline_s)
        except grpc.RpcError as err:
            context.abort(err.code(), err.details())
