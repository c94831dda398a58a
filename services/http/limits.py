"""ASGI middleware of the HTTP front: an upload-size limit enforced while the body arrives (413 before the
multipart parser buffers it), and request metrics by route."""

from __future__ import annotations

import json
import time
from typing import Any

from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS

Scope = dict[str, Any]
METHODS = {"GET", "POST", "DELETE", "HEAD", "OPTIONS", "PUT", "PATCH"}


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Answers 413 when a request under `paths` declares or sends more than `max_bytes`."""

    def __init__(self, app: Any, max_bytes: int, paths: tuple[str, ...]) -> None:
        self.app, self.max_bytes, self.paths = app, max_bytes, paths

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.paths):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._too_large(send)
            return
        received, started = 0, False

        async def limited_receive() -> Any:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._too_large(send)

    async def _too_large(self, send: Any) -> None:
        mb = self.max_bytes / (1 << 20)
        body = json.dumps({"error": {"message": f"the upload is larger than {mb:.0f} MB (SEEDASR_MAX_UPLOAD_MB)",
                                     "type": "invalid_request_error", "param": "file", "code": "file_too_large"}})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})


class RequestMetrics:
    """seedasr_http_requests_total and _duration_seconds by route template (not raw path: ids stay out)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def tracking_send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or ("/static" if scope["path"].startswith("/static/") else "unmatched")
            method = scope["method"] if scope["method"] in METHODS else "other"  # any token is a method to h11
            HTTP_REQUESTS.labels(path, method, str(status)).inc()
            HTTP_LATENCY.labels(path).observe(time.perf_counter() - started)
