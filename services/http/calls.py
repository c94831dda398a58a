"""What an HTTP request looks like to the gRPC servicers: a CallContext with the client's address, and the map
from gRPC status codes to HTTP statuses and WebSocket close codes."""

from __future__ import annotations

from typing import Optional

import grpc
from starlette.requests import HTTPConnection

from shared.bus import CallContext

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401, grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


def http_status(code: grpc.StatusCode) -> int:
    return HTTP_STATUS.get(code, 500)


def close_code(code: grpc.StatusCode) -> int:
    """WebSocket close code for a stream ended by `code`: 4000 + the HTTP status (4400 bad request, 4401 no
    valid key, 4408 idle, 4429 too fast or too long or server busy, 4503 a peer service down, 4500 a bug)."""
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return 4408
    return 4000 + http_status(code)


def peer_of(conn: HTTPConnection) -> str:
    """The client's address as gRPC writes peers ("ipv4:1.2.3.4:5678"), so per-client limits count it alike."""
    client = conn.client
    if client is None:
        return "unknown"
    host, port = client.host, client.port
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


def metadata_of(conn: HTTPConnection, api_key: Optional[str] = None) -> tuple:
    """gRPC-style metadata carrying the caller's key: the Authorization header, else a key the client sent
    otherwise (a browser's WebSocket cannot set headers)."""
    header = conn.headers.get("authorization", "")
    if not header and api_key:
        header = f"Bearer {api_key}"
    return (("authorization", header),)


class HttpCall(CallContext):
    """A servicer's context for one HTTP request or WebSocket; inactive once the client has gone."""

    def __init__(self, peer: str, timeout: Optional[float] = None) -> None:
        super().__init__(timeout)
        self._peer = peer
        self.gone = False

    def is_active(self) -> bool:
        return not self.gone and super().is_active()

    def peer(self) -> str:
        return self._peer
