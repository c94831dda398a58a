"""What every service process does the same way: a gRPC server with the library health servicer
and reflection, optional NATS exposure, and a clean stop on SIGTERM."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from services.channels import server_credentials
from services.guard import Admission, ApiKeys, Guard, guarded_handler
from shared.bus import NatsConnection, serve_over_nats
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Registration:
    """A servicer and its service descriptor; public services check API keys and admission limits."""

    servicer: Any
    descriptor: ServiceDescriptor
    public: bool = False


@dataclass
class RunningServer:
    server: grpc.Server
    port: int
    health: health.HealthServicer
    services: list[str]
    guard: Guard
    on_stop: list[Callable[[], None]] = field(default_factory=list)
    before_stop: list[Callable[[], None]] = field(default_factory=list)
    http_port: Optional[int] = None  # the HTTP front's (gateway, embedded), or the metrics port's (other services)

    def stop(self, grace: float) -> int:
        """New calls are refused at once; calls in flight get `grace` seconds to finish, then are
        cancelled. Returns how many were cancelled (0 = a clean drain)."""
        self.health.enter_graceful_shutdown()  # probes see NOT_SERVING while requests drain
        done = self.server.stop(grace)
        for fn in self.before_stop:  # e.g. leave the NATS queue group so no new requests arrive
            _run_hook(fn)
        cancelled = self.guard.inflight.wait_idle(grace)
        done.wait()
        if cancelled:
            log.warning("%d calls were still running after %.1f s of grace: cancelled", cancelled, grace)
        for fn in self.on_stop:
            _run_hook(fn)
        return cancelled


def _run_hook(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:
        log.exception("stop hook failed")


def start_server(settings: Settings, registrations: list[Registration], port: int | None = None) -> RunningServer:
    limit = settings.max_message_mb * 1024 * 1024
    server = grpc.server(
        ThreadPoolExecutor(settings.pool_threads, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    guard = Guard(Admission(settings.max_calls, settings.max_streams, settings.max_streams_per_client),
                  ApiKeys(settings.api_keys_file) if settings.api_keys_file else None)
    health_servicer = health.HealthServicer(experimental_non_blocking=True)
    names = []
    for reg in registrations:
        server.add_generic_rpc_handlers((guarded_handler(reg.servicer, reg.descriptor, guard, reg.public),))
        names.append(reg.descriptor.full_name)
        health_servicer.set(reg.descriptor.full_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        names + [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    address = f"{settings.host}:{settings.port if port is None else port}"
    creds = server_credentials(settings)
    bound = server.add_insecure_port(address) if creds is None else server.add_secure_port(address, creds)
    if bound == 0:
        raise SystemExit(f"cannot listen on {address}")
    server.start()
    mode = "plaintext" if creds is None else ("mTLS" if settings.tls_client_ca else "TLS")
    log.info("serving %s on %s:%d (%s%s)", ", ".join(names), settings.host, bound, mode,
             ", API keys" if guard.keys else "")
    return RunningServer(server, bound, health_servicer, names, guard)


def expose_over_nats(running: RunningServer, conn: NatsConnection, registrations: list[Registration], workers: int) -> None:
    """Serve the same servicers as NATS request-reply; on stop, drain NATS before gRPC stops."""
    executor = ThreadPoolExecutor(workers, thread_name_prefix="nats")
    subs = [sub for reg in registrations for sub in serve_over_nats(conn, reg.servicer, reg.descriptor, executor)]

    def leave_queue_groups() -> None:  # other instances take the new requests while these drain
        for sub in subs:
            conn.run(sub.unsubscribe(), timeout=2)

    running.before_stop.append(leave_queue_groups)
    running.on_stop.append(lambda: executor.shutdown(wait=True))
    log.info("also serving %s over NATS", ", ".join(r.descriptor.full_name for r in registrations))


def wait_for_signal(running: RunningServer, grace: float) -> int:
    """Block until SIGTERM/SIGINT, then stop gracefully (in-flight calls get `grace` seconds).
    Returns the process exit status: 0 after a clean drain, 1 when calls had to be cancelled."""
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping with %.1f s grace", signum, grace)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    stop.wait()
    cancelled = running.stop(grace)
    log.info("stopped%s", f" ({cancelled} calls cancelled)" if cancelled else "")
    return 1 if cancelled else 0
