"""Transports between services: NATS request-reply for RPCs, JetStream for events, and the
in-process twins used by the embedded server.

Any grpc servicer is exposed over NATS with `serve_over_nats`: one subject per RPC
(`seedasr.v1.Encoder.Encode`), a queue group per service so that another instance is all it takes
to scale out. `NatsStub` gives callers the methods of a grpc stub; errors come back as
`BusError`, a grpc.RpcError with code() and details(), so callers handle every transport alike.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional, TypeVar

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor
from opentelemetry import context as otel_context
from opentelemetry import trace

from shared.metrics import GRPC_LATENCY, GRPC_REQUESTS, NATS_REQUEST_ERRORS
from shared.telemetry import extract_context, inject_headers, tracer

log = logging.getLogger(__name__)
T = TypeVar("T")
STATUS_HEADER, MESSAGE_HEADER = "Grpc-Status", "Grpc-Message"


class BusError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


# is_active() of the gRPC call this thread serves (set by services/guard.py): an in-process call made
# for it stops when it is cancelled, as a remote one would
calling_active: contextvars.ContextVar[Optional[Callable[[], bool]]] = contextvars.ContextVar(
    "seedasr_calling_active", default=None)


class CallContext:
    """The part of grpc.ServicerContext that servicers use, for NATS and in-process calls."""

    def __init__(self, timeout: Optional[float] = None, parent_active: Optional[Callable[[], bool]] = None) -> None:
        self.deadline = time.monotonic() + timeout if timeout else None
        self.parent_active = parent_active

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise BusError(code, details)

    def time_remaining(self) -> Optional[float]:
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def is_active(self) -> bool:
        if self.parent_active is not None and not self.parent_active():
            return False
        return self.deadline is None or time.monotonic() < self.deadline

    def invocation_metadata(self) -> tuple:
        return ()

    def peer(self) -> str:
        return "bus"


class NatsConnection:
    """One nats-py connection driven by an asyncio loop in a daemon thread, for sync code."""

    def __init__(self, url: str, name: str, connect_timeout: float = 5.0, **options: Any) -> None:
        """`options` go to nats.connect: tls (an ssl.SSLContext), user_credentials (a .creds file)."""
        import nats

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"nats-{name}", daemon=True)
        self.thread.start()
        try:
            self.nc = self.run(
                nats.connect(url, name=name, connect_timeout=connect_timeout, max_reconnect_attempts=-1,
                             reconnect_time_wait=0.5, allow_reconnect=True, **options),
                timeout=connect_timeout + 1,
            )
        except Exception as exc:
            self.loop.call_soon_threadsafe(self.loop.stop)
            raise ConnectionError(f"cannot connect to NATS at {url}: {exc}") from None
        self.js = self.nc.jetstream()

    def run(self, coro: Awaitable[T], timeout: Optional[float] = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload)

    def close(self) -> None:
        try:
            self.run(self.nc.drain(), timeout=5)
        except Exception:  # already closed or server gone: nothing left to flush
            try:
                self.run(self.nc.close(), timeout=2)
            except Exception:
                pass

        async def cancel_the_rest() -> None:  # so no coroutine of the client outlives its loop
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self.run(cancel_the_rest(), timeout=5)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()


def connect_nats(settings: Any, name: str) -> NatsConnection:
    """A connection with the credentials and TLS of the settings (SEEDASR_NATS_CREDS, SEEDASR_NATS_TLS_*)."""
    options: dict[str, Any] = {}
    if settings.nats_creds:
        options["user_credentials"] = settings.nats_creds
    if settings.nats_tls_ca or settings.nats_tls_cert:
        import ssl

        tls = ssl.create_default_context(cafile=settings.nats_tls_ca or None)
        if settings.nats_tls_cert:
            tls.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key or None)
        options["tls"] = tls
    return NatsConnection(settings.nats_url, name, **options)


def _methods(service: ServiceDescriptor) -> dict[str, tuple[Any, Any]]:
    return {m.name: (message_factory.GetMessageClass(m.input_type), message_factory.GetMessageClass(m.output_type))
            for m in service.methods}


def subject_of(service: ServiceDescriptor, method: str) -> str:
    return f"{service.full_name}.{method}"


def serve_over_nats(conn: NatsConnection, servicer: Any, service: ServiceDescriptor,
                    executor: ThreadPoolExecutor) -> list[Any]:
    """Subscribe every unary RPC of `service` in queue group `service.full_name`; returns the subscriptions."""
    subs = []
    for name, (req_cls, _) in _methods(service).items():
        if service.methods_by_name[name].client_streaming or service.methods_by_name[name].server_streaming:
            continue
        handler = _make_handler(conn, getattr(servicer, name), req_cls, f"{service.full_name}/{name}", executor)
        subs.append(conn.run(conn.nc.subscribe(subject_of(service, name), queue=service.full_name, cb=handler)))
    conn.run(conn.nc.flush())
    return subs


def _make_handler(conn: NatsConnection, method: Callable, req_cls: Any, span_name: str, executor: ThreadPoolExecutor):
    async def handle(msg: Any) -> None:
        headers = dict(msg.headers or {})
        timeout = float(headers.get("Grpc-Timeout", 0) or 0) or None

        def call() -> tuple[bytes, dict[str, str]]:
            token = otel_context.attach(extract_context(headers))
            try:
                with tracer().start_as_current_span(span_name, kind=trace.SpanKind.SERVER,
                                                    attributes={"rpc.system": "nats", "messaging.system": "nats"}):
                    try:
                        request = req_cls.FromString(msg.data)
                    except Exception:
                        return b"", {STATUS_HEADER: str(grpc.StatusCode.INVALID_ARGUMENT.value[0]),
                                     MESSAGE_HEADER: "malformed request message"}
                    try:
                        reply = method(request, CallContext(timeout))
                        return reply.SerializeToString(), {STATUS_HEADER: "0"}
                    except BusError as err:
                        return b"", {STATUS_HEADER: str(err.code().value[0]), MESSAGE_HEADER: err.details()}
                    except Exception as exc:  # a bug must reach the caller as INTERNAL, not a hang
                        log.exception("%s failed", span_name)
                        return b"", {STATUS_HEADER: str(grpc.StatusCode.INTERNAL.value[0]), MESSAGE_HEADER: repr(exc)[:500]}
            finally:
                otel_context.detach(token)

        started = time.perf_counter()
        data, reply_headers = await asyncio.get_running_loop().run_in_executor(executor, call)
        service_name, method_name = span_name.rsplit("/", 1)
        GRPC_REQUESTS.labels(service_name, method_name, _CODES[int(reply_headers[STATUS_HEADER])].name).inc()
        GRPC_LATENCY.labels(service_name, method_name).observe(time.perf_counter() - started)
        if msg.reply:
            await conn.nc.publish(msg.reply, data, headers=reply_headers)

    return handle


_CODES = {c.value[0]: c for c in grpc.StatusCode}


class NatsStub:
    """Methods named after the RPCs of `service`: stub.Encode(request, timeout=seconds)."""

    def __init__(self, conn: NatsConnection, service: ServiceDescriptor, default_timeout: float) -> None:
        self.conn, self.service, self.default_timeout = conn, service, default_timeout
        self.methods = _methods(service)

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name not in self.methods:
            raise AttributeError(name)
        _, resp_cls = self.methods[name]
        subject = subject_of(self.service, name)

        def call(request: Any, timeout: Optional[float] = None) -> Any:
            import nats.errors

            timeout = timeout or self.default_timeout
            payload = request.SerializeToString()
            if len(payload) > self.conn.max_payload:
                raise BusError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{name} request is {len(payload)} bytes; NATS max_payload is {self.conn.max_payload}")
            with tracer().start_as_current_span(f"{self.service.full_name}/{name}", kind=trace.SpanKind.CLIENT,
                                                attributes={"rpc.system": "nats", "messaging.destination": subject}):
                headers = dict(inject_headers({"Grpc-Timeout": f"{timeout:.3f}"}))
                try:
                    msg = self.conn.run(self.conn.nc.request(subject, payload, timeout=timeout, headers=headers),
                                        timeout=timeout + 1)
                except nats.errors.NoRespondersError:
                    NATS_REQUEST_ERRORS.labels(self.service.name, name, "no_responders").inc()
                    raise BusError(grpc.StatusCode.UNAVAILABLE, f"no {self.service.name} service is listening on NATS") from None
                except (nats.errors.TimeoutError, TimeoutError):
                    NATS_REQUEST_ERRORS.labels(self.service.name, name, "timeout").inc()
                    raise BusError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{name} took longer than {timeout:.1f} s") from None
                except nats.errors.Error as exc:
                    NATS_REQUEST_ERRORS.labels(self.service.name, name, "nats").inc()
                    raise BusError(grpc.StatusCode.UNAVAILABLE, f"NATS error calling {name}: {exc}") from None
                status = int((msg.headers or {}).get(STATUS_HEADER, "0"))
                if status:
                    NATS_REQUEST_ERRORS.labels(self.service.name, name, "remote").inc()
                    raise BusError(_CODES.get(status, grpc.StatusCode.UNKNOWN), (msg.headers or {}).get(MESSAGE_HEADER, ""))
                return resp_cls.FromString(msg.data)

        return call


class LocalStub:
    """In-process stub for the embedded server: calls the servicer directly, same error type."""

    def __init__(self, servicer: Any, service: ServiceDescriptor, default_timeout: float) -> None:
        self.servicer, self.service, self.default_timeout = servicer, service, default_timeout

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.servicer, name)

        def call(request: Any, timeout: Optional[float] = None) -> Any:
            with tracer().start_as_current_span(f"{self.service.full_name}/{name}", kind=trace.SpanKind.INTERNAL):
                return method(request, CallContext(timeout or self.default_timeout, calling_active.get()))

        return call


class GrpcStub:
    """Direct gRPC between services (deployments without NATS); applies the default deadline."""

    def __init__(self, channel: grpc.Channel, stub: Any, default_timeout: float) -> None:
        self.stub, self.default_timeout = stub, default_timeout

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.stub, name)
        return lambda request, timeout=None: method(request, timeout=timeout or self.default_timeout)
