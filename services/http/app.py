"""The HTTP front: OpenAI's audio API, WebSocket streaming, the live page and /metrics, in one FastAPI app.

Every route calls the gateway's own servicer (services/gateway/server.py) through a CallContext, so requests
are checked, recognised, committed to their session and published exactly as over gRPC; API keys, tenants and
admission control are the gRPC server's own (one `Guard` per process). Errors are OpenAI-shaped:
{"error": {"message", "type", "param", "code"}} with the HTTP status of the gRPC code.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import grpc
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from seedasr.v1 import common_pb2, recognizer_pb2
from services.guard import current_tenant
from services.http import formats
from services.http.calls import HttpCall, http_status, metadata_of, peer_of
from services.http.front import Front
from services.http.limits import BodyLimit, RequestMetrics
from services.http.media import decode_media
from services.http.stream import serve_stream
from shared.audio import AudioError, AudioLimits
from shared.bus import BusError, calling_active
from shared.settings import Settings

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
OPENAI_MODEL_ALIASES = ("whisper-1",)  # what OpenAI clients send by default; served by the loaded bundle
FORM_OVERHEAD = 256 * 1024  # multipart boundaries and the text fields beside the file


def create_app(front: Front) -> FastAPI:
    app = FastAPI(title="Seed-ASR Mesh", version="1", docs_url="/docs", redoc_url=None)
    front.started = front.started or time.time()
    front.streams = ThreadPoolExecutor(front.settings.max_streams, thread_name_prefix="ws")
    app.state.front = front
    _errors(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    s = front.settings
    limits = AudioLimits(max_seconds=s.max_audio_s, max_bytes=s.max_upload_mb << 20)

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "draining" if front.draining else "serving"}, 503 if front.draining else 200)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    def models(request: Request) -> dict[str, Any]:
        _authenticate(front, request)
        return {"object": "list", "data": [_model(front, front.model_id)]}

    @app.get("/v1/models/{model_id}")
    def model(model_id: str, request: Request) -> dict[str, Any]:
        _authenticate(front, request)
        if model_id not in (front.model_id, *OPENAI_MODEL_ALIASES):
            raise BusError(grpc.StatusCode.NOT_FOUND, f"no model {model_id!r}; this server serves {front.model_id!r}")
        return _model(front, model_id)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        # key and admission before the body is read: a refused upload costs neither its transfer nor a decode
        tenant, client = front.guard.enter("call", metadata_of(request), peer_of(request))
        call = HttpCall(peer_of(request))
        try:
            with front.guard.inflight:
                form = await request.form(max_files=1, max_fields=300)
                try:
                    parsed = _transcription_form(front, form)
                    upload = form.get("file")
                    if not isinstance(upload, UploadFile):
                        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, "a 'file' part with the audio is required")
                    data = await upload.read()
                finally:
                    await form.close()
                watch = asyncio.ensure_future(_watch_disconnect(request, call))
                try:
                    resp = await run_in_threadpool(_recognize, front, call, tenant, parsed, data, limits)
                finally:
                    watch.cancel()
        finally:
            front.guard.leave("call", client)
        out = _render(resp, parsed)
        # OpenAI's header for the time the request spent in processing (here: audio decode to committed result)
        out.headers["openai-processing-ms"] = f"{resp.timings.total_ms:.1f}"
        out.headers["x-turn-id"] = resp.turn_id
        return out

    @app.get("/v1/sessions/{session_id}")
    def get_session(session_id: str, request: Request) -> dict[str, Any]:
        resp = _session_call(front, request, "GetSession", recognizer_pb2.GetSessionRequest(session_id=session_id))
        return {"session_id": resp.session_id,
                "turns": [{"role": t.role, "text": t.text, "turn_id": t.turn_id, "created_unix": t.created_unix}
                          for t in resp.turns]}

    @app.delete("/v1/sessions/{session_id}")
    def delete_session(session_id: str, request: Request) -> dict[str, Any]:
        resp = _session_call(front, request, "DeleteSession", recognizer_pb2.DeleteSessionRequest(session_id=session_id))
        return {"session_id": session_id, "deleted": resp.deleted}

    @app.websocket("/v1/stream")
    async def stream(ws: WebSocket) -> None:
        await serve_stream(ws, front)

    app.add_middleware(BodyLimit, max_bytes=(s.max_upload_mb << 20) + FORM_OVERHEAD, paths=("/v1/audio/",))
    app.add_middleware(RequestMetrics)
    return app


# ---- requests --------------------------------------------------------------------------------------------
@dataclass
class Transcription:
    session_id: str
    config: common_pb2.RecognitionConfig
    context: common_pb2.RequestContext
    response_format: str
    words: bool


def _transcription_form(front: Front, form: Any) -> Transcription:
    """The form fields OpenAI defines, and ours (session_id, hotwords, verbatim); INVALID_ARGUMENT when wrong."""
    def text_field(name: str, default: str = "") -> str:
        value = form.get(name, default)
        if not isinstance(value, str):
            raise BusError(grpc.StatusCode.INVALID_ARGUMENT, f"{name!r} must be a text field")
        return value.strip()

    model = text_field("model")
    if model and model not in (front.model_id, *OPENAI_MODEL_ALIASES):
        raise BusError(grpc.StatusCode.NOT_FOUND, f"no model {model!r}; this server serves {front.model_id!r} "
                       f"(also as {', '.join(OPENAI_MODEL_ALIASES)})")
    response_format = text_field("response_format", "json") or "json"
    if response_format not in formats.FORMATS:
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"response_format {response_format!r} is not one of {', '.join(formats.FORMATS)}")
    granularities = [g for key in ("timestamp_granularities[]", "timestamp_granularities")
                     for g in form.getlist(key) if isinstance(g, str)]
    unknown = sorted(set(granularities) - set(formats.GRANULARITIES))
    if unknown:
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, f"timestamp_granularities {unknown} not in {formats.GRANULARITIES}")
    temperature = text_field("temperature", "0") or "0"
    try:
        if not 0.0 <= float(temperature) <= 1.0:
            raise ValueError
    except ValueError:
        raise BusError(grpc.StatusCode.INVALID_ARGUMENT, "temperature must be a number in [0, 1]") from None
    hotwords = [h.strip() for key in ("hotwords", "hotwords[]") for value in form.getlist(key) if isinstance(value, str)
                for h in value.split(",") if h.strip()]
    words = "word" in granularities
    timed = words or response_format in ("verbose_json", "srt", "vtt")  # segments are cut at word times
    config = common_pb2.RecognitionConfig(language=text_field("language"), word_timestamps=timed,
                                          verbatim=text_field("verbatim").lower() in ("1", "true"))
    return Transcription(text_field("session_id"), config,
                         common_pb2.RequestContext(prompt=text_field("prompt"), hotwords=hotwords),
                         response_format, words)


async def _watch_disconnect(request: Request, call: HttpCall) -> None:
    """Marks the call gone when the client disconnects (the body is read: the next message is the disconnect),
    so an in-process decode stops at its next step."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    call.gone = True


def _recognize(front: Front, call: HttpCall, tenant: str, t: Transcription, data: bytes,
               limits: AudioLimits) -> recognizer_pb2.RecognizeResponse:
    """In a worker thread: the checks, the decode and the gateway's own recognition."""
    tokens = current_tenant.set(tenant), calling_active.set(call.is_active)
    try:
        front.service.check(t.session_id, t.config, t.context, call)
        started = time.perf_counter()
        samples = decode_media(data, limits)
        timings = common_pb2.StageTimings(decode_audio_ms=(time.perf_counter() - started) * 1000)
        resp: recognizer_pb2.RecognizeResponse = front.service.recognize_samples(
            samples, t.session_id, t.config, t.context, timings, call)
        return resp
    finally:
        current_tenant.reset(tokens[0])
        calling_active.reset(tokens[1])


def _render(resp: recognizer_pb2.RecognizeResponse, t: Transcription) -> Response:
    if t.response_format == "text":
        text = resp.alternatives[0].text if resp.alternatives else ""
        return PlainTextResponse(text + "\n")
    if t.response_format in ("srt", "vtt"):
        media = "text/vtt" if t.response_format == "vtt" else "application/x-subrip"
        return PlainTextResponse(formats.as_subtitles(resp, t.response_format), media_type=media)
    if t.response_format == "verbose_json":
        return JSONResponse(formats.as_verbose_json(resp, t.words))
    return JSONResponse(formats.as_json(resp))


def _authenticate(front: Front, request: Request) -> str:
    tenant, _ = front.guard.enter(None, metadata_of(request), peer_of(request))
    return tenant


def _session_call(front: Front, request: Request, method: str, message: Any) -> Any:
    tenant = _authenticate(front, request)
    token = current_tenant.set(tenant)
    try:
        return getattr(front.service, method)(message, HttpCall(peer_of(request)))
    finally:
        current_tenant.reset(token)


def _model(front: Front, model_id: str) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": int(front.started), "owned_by": "seedasr"}


def served_model_id(settings: Settings) -> str:
    """The bundle's name from its config.json (the gateway may run without the weights), else "seedasr"."""
    from shared.bundle_store import default_bundle_dir

    bundle = Path(settings.model) if settings.model else default_bundle_dir()
    try:
        return str(json.loads((bundle / "config.json").read_text()).get("name") or "seedasr")
    except (OSError, ValueError):
        return "seedasr"


# ---- errors ----------------------------------------------------------------------------------------------
def error_body(status: int, message: str, code: Optional[str] = None, param: Optional[str] = None) -> dict[str, Any]:
    kind = {401: "authentication_error", 404: "not_found_error", 429: "rate_limit_error"}.get(
        status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _errors(app: FastAPI) -> None:
    @app.exception_handler(BusError)
    async def bus_error(_request: Request, exc: BusError) -> JSONResponse:
        status = http_status(exc.code())
        return JSONResponse(error_body(status, exc.details(), exc.code().name.lower()), status)

    @app.exception_handler(AudioError)
    async def audio_error(_request: Request, exc: AudioError) -> JSONResponse:
        status = 413 if exc.status == "RESOURCE_EXHAUSTED" else 400
        return JSONResponse(error_body(status, str(exc), "invalid_audio", "file"), status)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(error_body(exc.status_code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(_request: Request, _exc: ClientDisconnect) -> Response:
        return Response(status_code=499)  # nobody reads it; nginx's code for a client that closed first

    @app.exception_handler(Exception)
    async def bug(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("HTTP request failed", exc_info=exc)
        return JSONResponse(error_body(500, "internal error; the server log has the details"), 500)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(error_body(400, str(exc.errors()[:3])), 400)
