"""WebSocket streaming (`/v1/stream`): the gRPC StreamingRecognize of services/gateway/streaming.py, as JSON.

Protocol (README "WebSocket streaming"):
- client -> server: first a text message, the config: {"session_id", "sample_rate" (16000), "encoding"
  ("pcm_s16le" | "pcm_f32le"), "interim_results" (true), "silence_ms", "language", "hotwords", "prompt",
  "history", "word_timestamps", "verbatim", "api_key"}; then binary messages of raw PCM, and text messages
  {"type": "end_of_turn"} (the turn ends now) or {"type": "end"} (finish the open turn, then close).
- server -> client: {"type": "ready", "session_id"} once the config is accepted; {"type": "interim" | "final",
  "turn_index", "text", "normalized_text", "confidence" (finals; null in interims), "stability", "words",
  "turn_start", "turn_end"} (finals add "turn_id", "language" and "alternatives"); on an error {"type": "error", "code",
  "message"} and a close with 4000 + the HTTP status (services/http/calls.py close_code). A normal end: 1000.
Limits are the gRPC stream's: idle, rate and length (SEEDASR_STREAM_IDLE_S, _STREAM_RATE, _MAX_STREAM_S).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Optional

import grpc
from google.protobuf import json_format
from starlette.websockets import WebSocket, WebSocketDisconnect

from seedasr.v1 import common_pb2, recognizer_pb2
from services.gateway.turn_worker import put_last
from services.guard import current_tenant
from services.http.calls import HttpCall, close_code, metadata_of, peer_of
from shared.bus import BusError, calling_active

if TYPE_CHECKING:
    from services.http.front import Front

log = logging.getLogger(__name__)
CONFIG_KEYS = {"type", "session_id", "sample_rate", "encoding", "interim_results", "silence_ms", "language",
               "hotwords", "prompt", "history", "word_timestamps", "verbatim", "api_key"}
_END = object()
FEED_ITEMS = 64


class ClientGone(Exception):
    pass


class Feed:
    """The client's messages for the stream's thread, at most FEED_ITEMS waiting (the receiving side waits for room:
    a client cannot queue audio faster than the stream uses it); ends when the client ends the stream, or fails
    with the error that cut it off (the client went away, a protocol error, the server's stop)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=FEED_ITEMS)
        self.stopped = threading.Event()  # nothing more will be read: puts give up

    async def put(self, item: Any) -> None:
        while not self.stopped.is_set():
            try:
                self.queue.put_nowait(item)
                return
            except queue.Full:
                await asyncio.sleep(0.01)

    def end(self) -> None:
        """The client is done: the open turn is finished, then the stream ends."""
        self._last(_END)

    def abort(self, error: BaseException) -> None:
        """The stream ends now, queued audio unread (nothing is committed for a turn nobody will see)."""
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                break
        self._last(error)

    def _last(self, item: Any) -> None:
        if self.stopped.is_set():
            return
        self.stopped.set()
        put_last(self.queue, item)

    def messages(self, first: recognizer_pb2.StreamingRecognizeRequest, on_ready: Callable[[], None]) -> Iterator[Any]:
        yield first
        on_ready()  # the stream's reader asks for more only once the config passed every check
        while True:
            item = self.queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def parse_config(text: str) -> tuple[recognizer_pb2.StreamingConfig, str]:
    """The config message as our StreamingConfig, and the API key it carries; INVALID_ARGUMENT when malformed."""
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError):
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be the JSON config") from None
    if not isinstance(raw, dict) or raw.get("type", "config") != "config":
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be a JSON object, the config")
    unknown = sorted(set(raw) - CONFIG_KEYS)
    if unknown:
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, f"unknown config keys {unknown}; known: {sorted(CONFIG_KEYS)}")
    try:
        config = json_format.ParseDict({k: raw[k] for k in ("language", "word_timestamps", "verbatim") if k in raw},
                                       common_pb2.RecognitionConfig())
        context = json_format.ParseDict({k: raw[k] for k in ("hotwords", "prompt", "history") if k in raw},
                                        common_pb2.RequestContext())
        cfg = json_format.ParseDict(
            {k: raw[k] for k in ("session_id", "sample_rate", "encoding", "silence_ms") if k in raw},
            recognizer_pb2.StreamingConfig())
    except json_format.ParseError as exc:
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, f"bad config: {exc}") from None
    cfg.config.CopyFrom(config)
    cfg.context.CopyFrom(context)
    if not isinstance(raw.get("interim_results", True), bool):
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, "interim_results must be true or false")
    cfg.interim_results = raw.get("interim_results", True)
    key = raw.get("api_key", "")
    return cfg, key if isinstance(key, str) else ""


def message_of(resp: recognizer_pb2.StreamingRecognizeResponse) -> dict[str, Any]:
    alts = resp.result.alternatives
    best = alts[0] if alts else common_pb2.Alternative()
    msg: dict[str, Any] = {
        "type": "final" if resp.is_final else "interim", "turn_index": resp.turn_index, "text": best.text,
        "normalized_text": best.normalized_text,
        "confidence": round(best.confidence, 4) if resp.is_final else None,  # interims are greedy: no confidence
        "stability": round(resp.stability, 4), "turn_start": round(resp.turn_start_s, 3),
        "turn_end": round(resp.turn_end_s, 3),
        "words": [{"word": w.word, "start": round(w.start_s, 3), "end": round(w.end_s, 3),
                   "confidence": round(w.confidence, 4)} for w in best.words],
    }
    if resp.is_final:
        msg["turn_id"] = resp.result.turn_id
        msg["language"] = resp.result.language
        msg["alternatives"] = [{"text": a.text, "confidence": round(a.confidence, 4)} for a in alts[1:]]
    return msg


async def serve_stream(ws: WebSocket, front: Front) -> None:
    await ws.accept()
    call = HttpCall(peer_of(ws))
    idle = front.settings.stream_idle_s
    try:
        first = await asyncio.wait_for(ws.receive(), timeout=idle)
        if first["type"] == "websocket.disconnect":
            return
        if first.get("text") is None:
            raise BusError(grpc.StatusCode.INVALID_ARGUMENT, "the first message must be the JSON config (text)")
        cfg, key = parse_config(first["text"])
        tenant, client = front.guard.enter("stream", metadata_of(ws, key), call.peer())
    except TimeoutError:
        await _close(ws, BusError(grpc.StatusCode.DEADLINE_EXCEEDED, f"no config within {idle:g} s"))
        return
    except BusError as err:
        await _close(ws, err)
        return
    feed = Feed()
    loop = asyncio.get_running_loop()

    def send(message: dict[str, Any]) -> None:  # from the stream's thread
        if call.gone:
            raise ClientGone
        try:
            asyncio.run_coroutine_threadsafe(ws.send_text(json.dumps(message)), loop).result(timeout=idle)
        except Exception:
            call.gone = True
            raise ClientGone from None

    front.feeds.add(feed)  # a drain ends it (services/http/server.py)
    worker = loop.run_in_executor(front.streams, _run, front, tenant, cfg, feed, call, send)
    receiver = asyncio.ensure_future(_receive(ws, feed, call))
    try:
        done, _ = await asyncio.wait({worker, receiver}, return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        if receiver in done and receiver.exception() is not None:  # a protocol error: stop now
            call.gone = True
            feed.abort(BusError(grpc.StatusCode.CANCELLED, "protocol error"))
            await _close(ws, receiver.exception())  # type: ignore[arg-type]
            await worker
            return
        if receiver in done and call.gone:  # the client went away: nothing it sent is finished or committed
            feed.abort(BusError(grpc.StatusCode.CANCELLED, "the client went away"))
            await worker
            return
        feed.end()  # the client said "end" (the open turn is finished first), or the stream ended by itself
        error = await worker
        receiver.cancel()
        if not call.gone:
            await _close(ws, error, 1001 if front.draining else 1000)
    except asyncio.CancelledError:  # the server's stop ran out of grace: end the stream's thread before leaving
        call.gone = True
        feed.abort(BusError(grpc.StatusCode.CANCELLED, "the server stopped"))
        receiver.cancel()
        await asyncio.shield(worker)
        raise
    finally:
        front.feeds.discard(feed)
        front.guard.leave("stream", client)


async def _receive(ws: WebSocket, feed: Feed, call: HttpCall) -> None:
    """Client messages into the feed until it ends the stream or goes; raises BusError on a protocol error."""
    while True:
        try:
            message = await ws.receive()
        except (WebSocketDisconnect, RuntimeError):
            message = {"type": "websocket.disconnect"}
        if message["type"] == "websocket.disconnect":
            call.gone = True
            return
        if message.get("bytes") is not None:
            await feed.put(recognizer_pb2.StreamingRecognizeRequest(audio_chunk=message["bytes"]))
            continue
        try:
            kind = json.loads(message.get("text") or "").get("type")
        except (ValueError, AttributeError, RecursionError):
            kind = None
        if kind == "end_of_turn":
            await feed.put(recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True))
        elif kind == "end":
            return
        else:
            raise BusError(grpc.StatusCode.INVALID_ARGUMENT,
                           'text messages after the config are {"type": "end_of_turn"} or {"type": "end"}')


def _run(front: Front, tenant: str, cfg: recognizer_pb2.StreamingConfig, feed: Feed, call: HttpCall,
         send: Callable[[dict[str, Any]], None]) -> Optional[BaseException]:
    """The stream's thread: the gateway's StreamingRecognize over the feed; returns the error that ended it."""
    tokens = current_tenant.set(tenant), calling_active.set(call.is_active)
    first = recognizer_pb2.StreamingRecognizeRequest(streaming_config=cfg)
    try:
        def ready() -> None:
            send({"type": "ready", "session_id": cfg.session_id})

        with front.guard.inflight:
            for resp in front.service.StreamingRecognize(feed.messages(first, ready), call):
                send(message_of(resp))
        return None
    except ClientGone:
        return None
    except grpc.RpcError as err:
        return err
    except Exception as exc:
        log.exception("stream failed")
        return exc
    finally:
        feed.abort(BusError(grpc.StatusCode.CANCELLED, "the stream ended"))  # frees the reader if it still waits
        current_tenant.reset(tokens[0])
        calling_active.reset(tokens[1])


async def _close(ws: WebSocket, error: Optional[BaseException], normal: int = 1000) -> None:
    """Closes with `normal` (1000, or 1001 when the server is stopping) or, after an error, 4000 + its status."""
    try:
        if error is None:
            await ws.close(normal)
            return
        if isinstance(error, grpc.RpcError):
            code, message = error.code(), error.details() or ""
        else:
            code, message = grpc.StatusCode.INTERNAL, "internal error; the server log has the details"
        await ws.send_text(json.dumps({"type": "error", "code": code.name, "message": message}))
        await ws.close(close_code(code), message.encode()[:120].decode(errors="ignore"))
    except (RuntimeError, WebSocketDisconnect):  # the client has gone already
        pass
