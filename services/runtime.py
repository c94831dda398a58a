"""What every service process does the same way: a gRPC server with the library health servicer
and reflection, optional NATS exposure, and a clean stop on SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

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
        """New calls are refused at once (UNAVAILABLE) while health answers NOT_SERVING; calls in flight get
        `grace` seconds to finish, then are cancelled. Returns within grace + a few seconds whatever the calls do
        (a hook or a call that will not end is left behind, logged). Returns how many were cancelled."""
        self.health.enter_graceful_shutdown()  # probes see NOT_SERVING while requests drain
        self.guard.draining = True
        for fn in self.before_stop:  # e.g. leave the NATS queue group so no new requests arrive
            _run_hook(fn)
        cancelled = self.guard.inflight.wait_idle(grace)
        # what is left is cancelled at once; with nothing left, the calls that just returned get a moment to send
        # their responses (their handlers are done, their status may still be on its way)
        if not self.server.stop(STOP_BOUND_S / 2 if not cancelled else 0).wait(STOP_BOUND_S):
            log.warning("the gRPC server did not stop within %.0f s of its grace; leaving it", STOP_BOUND_S)
        if cancelled:
            log.warning("%d calls were still running after %.1f s of grace: cancelled", cancelled, grace)
        for fn in self.on_stop:
            _run_hook(fn)
        return cancelled


STOP_BOUND_S = 2.0  # what a stop may take beyond its grace: the server's own stop, then each hook


def _run_hook(fn: Callable[[], None]) -> None:
    """Runs a stop hook for at most STOP_BOUND_S (in a daemon thread: one that hangs is left behind)."""
    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("stop hook failed")

    thread = threading.Thread(target=run, name="stop-hook", daemon=True)
    thread.start()
    thread.join(STOP_BOUND_S)
    if thread.is_alive():
        log.warning("stop hook %s still running after %.0f s; leaving it", getattr(fn, "__qualname__", fn), STOP_BOUND_S)


class HealthWithList(health.HealthServicer):
    """The library's health servicer with List, the newest method of grpc.health.v1, which its release leaves to
    the generated base class (UNIMPLEMENTED with a traceback logged on every call)."""

    def List(self, request: health_pb2.HealthListRequest, context: grpc.ServicerContext) -> health_pb2.HealthListResponse:
        with self._lock:
            statuses = dict(self._server_status)
        return health_pb2.HealthListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=status) for name, status in statuses.items()})


def start_server(settings: Settings, registrations: list[Registration], port: int | None = None) -> RunningServer:
    limit = settings.max_message_mb * 1024 * 1024
    server = grpc.server(
        ThreadPoolExecutor(settings.pool_threads, thread_name_prefix="grpc"),
        options=[("grpc.max_receive_message_length", limit), ("grpc.max_send_message_length", limit)],
    )
    guard = Guard(Admission(settings.max_calls, settings.max_streams, settings.max_streams_per_client),
                  ApiKeys(settings.api_keys_file) if settings.api_keys_file else None)
    health_servicer = HealthWithList(experimental_non_blocking=True)
    names = []
    for reg in registrations:
        server.add_generic_rpc_handlers((guarded_handler(reg.servicer, reg.descriptor, guard, reg.public),))
        names.append(reg.descriptor.full_name)
        health_servicer.set(reg.descriptor.full_name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    # the library's health and reflection servicers, registered through the guard as every service is: a
    # malformed message gets INVALID_ARGUMENT (the libraries' own registration answers INTERNAL)
    health_service = health_pb2.DESCRIPTOR.services_by_name["Health"]
    reflection_service = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
    names += [health_service.full_name, reflection_service.full_name]
    server.add_generic_rpc_handlers((guarded_handler(health_servicer, health_service, guard, public=False),
                                     guarded_handler(reflection.ReflectionServicer(names), reflection_service, guard,
                                                     public=False)))
    address = f"{settings.host}:{settings.port if port is None else port}"
    creds = server_credentials(settings)
    bound = server.add_insecure_port(address) if creds is None else server.add_secure_port(address, creds)
    if bound == 0:
        raise SystemExit(f"cannot listen on {address}")
    server.start()
    mode = "plaintext" if creds is None else ("mTLS" if settings.tls_client_ca else "TLS")
    if guard.keys is not None and creds is None:
        log.warning("API keys without TLS: clients send their keys in the clear (set SEEDASR_TLS_CERT/KEY)")
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
    status = 1 if cancelled else 0
    # the interpreter's exit joins every non-daemon thread: one a cancelled call still holds would keep the
    # process alive for ever, so the exit is bounded too
    watchdog = threading.Timer(EXIT_BOUND_S, lambda: os._exit(status))
    watchdog.daemon = True
    watchdog.start()
    return status


EXIT_BOUND_S = 3.0  # what the interpreter's own exit (span export, thread joins) may take after a stop
