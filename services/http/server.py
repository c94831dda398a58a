"""Runs the HTTP front (services/http/app.py) on uvicorn in a thread of a gRPC server's process."""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any

import uvicorn

from services.http.app import create_app
from services.http.front import Front
from shared.settings import Settings

log = logging.getLogger(__name__)


class HttpServer:
    def __init__(self, front: Front, settings: Settings, port: int) -> None:
        self.front = front
        tls: dict[str, Any] = {}
        if settings.tls_cert:  # the gRPC port's certificate; client certificates required when it requires them
            tls = {"ssl_certfile": settings.tls_cert, "ssl_keyfile": settings.tls_key}
            if settings.tls_client_ca:
                tls |= {"ssl_ca_certs": settings.tls_client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
        config = uvicorn.Config(create_app(front), host=settings.host, port=port, log_level="warning", lifespan="off",
                                ws="websockets-sansio", ws_max_size=settings.max_message_mb << 20, access_log=False,
                                # the grace is the gRPC server's stop's (services/runtime.py); this is only the end
                                timeout_graceful_shutdown=1, **tls)  # type: ignore[arg-type]
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="http", daemon=True)
        self.scheme = "https" if tls else "http"
        self.port = 0

    def start(self, timeout: float = 10.0) -> int:
        """Start serving; returns the bound port (SystemExit when it cannot listen)."""
        self.thread.start()
        end = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > end:
                raise SystemExit(f"the HTTP front cannot listen on {self.server.config.host}:{self.server.config.port}")
            time.sleep(0.01)
        self.port = int(self.server.servers[0].sockets[0].getsockname()[1])
        log.info("serving HTTP (OpenAI audio API, /v1/stream, the live page, /metrics) on %s://%s:%d",
                 self.scheme, self.server.config.host, self.port)
        return self.port

    def begin_stop(self) -> None:
        """The drain: no new connection is accepted, each open WebSocket finishes its open turn (its final is sent,
        then it closes with 1001), and uploads in flight go on; the server's stop waits for them up to its grace."""
        self.front.draining = True
        for listener in self.server.servers:
            listener.get_loop().call_soon_threadsafe(listener.close)
        for feed in list(self.front.feeds):
            feed.end()

    def join(self, timeout: float) -> None:
        """After the grace: what is still open is closed, and the thread ends."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.front.streams is not None:
            self.front.streams.shutdown(wait=False, cancel_futures=True)
