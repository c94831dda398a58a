"""What every service process does the same way: a gRPC server with the library health servicer
and reflection, optional NATS exposure, and a clean stop on SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from shared.bus import NatsConnection, serve_over_nats
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Registration:
    """A servicer, the generated add_*_to_server function and its service descriptor."""

    servicer: Any
    add_to_server: Callable[[Any, grpc.Server], None]
    descriptor: ServiceDescriptor


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    services: list[str]
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    before_stop: list[Callable[[], None]] = field(default_factory=list)

    def stop(self, grace: float) -> None:
        self.health.enter_graceful_shutdown()  # probes see NOT_SERVING while requests drain
        for fn in self.before_stop:  # e.g. leave the NATS queue group so no new requests arrive
            try:
                fn()
            except Exception:
                log.exception("stop hook failed")
        self.server.stop(grace).wait()
        for fn in self.on_stop:
            try:
                fn()
            except Exception:
                log.exception("stop hook failed")


def start_server(settings: Settings, registrations: list[Registration], port: int | None = None) -> RunningServer:
    limit = settings.max_message_mb * 1024 * 1024
    server = grpc.server(
        ThreadPoolExecutor(settings.workers, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    names = []
    for reg in registrations:
        reg.add_to_server(reg.servicer, server)
        names.append(reg.descriptor.full_name)
        health_servicer.set(reg.descriptor.full_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        names + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    bound = server.add_insecure_port(f"{settings.host}:{settings.port if port is None else port}")
    if bound == 0:
        raise SystemExit(f"cannot listen on {settings.host}:{settings.port}")
    server.start()
    log.info("serving %s on %s:%d", ", ".join(names), settings.host, bound)
    return RunningServer(server, bound, health_servicer, names)


def expose_over_nats(running: RunningServer, conn: NatsConnection, registrations: list[Registration], workers: int) -> None:
    """Serve the same servicers as NATS request-reply; on stop, drain NATS before gRPC stops."""
    executor = ThreadPoolExecutor(workers, thread_name_prefix="nats")
    for reg in registrations:
        serve_over_nats(conn, reg.servicer, reg.descriptor, executor)
    running.on_stop.append(lambda: executor.shutdown(wait=True))
    log.info("also serving %s over NATS", ", ".join(r.descriptor.full_name for r in registrations))


def wait_for_signal(running: RunningServer, grace: float) -> None:
    """Block until SIGTERM/SIGINT, then stop gracefully (in-flight calls get `grace` seconds)."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping with %.1f s grace", signum, grace)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    stop.wait()
    running.stop(grace)
    log.info("stopped")
