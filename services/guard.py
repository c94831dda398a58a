"""Every RPC a server takes passes here first, before any of its work.

`guarded_handler` registers a servicer from its service descriptor (instead of the generated
add_*_to_server) so that:
- a request that is not a valid protobuf message gets INVALID_ARGUMENT, not INTERNAL and a traceback;
- public services check the API key (`Authorization: Bearer KEY`) and run with the caller's tenant
  in `current_tenant`;
- Recognize and StreamingRecognize are admitted against limits (calls, streams, streams per client)
  or get RESOURCE_EXHAUSTED at once, so they can never hold the pool threads that health needs;
- the calls in flight are counted, so a stop can drain them and say whether it had to cancel any.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from shared.bus import BusError, calling_active
from shared.metrics import ADMISSION_REFUSALS, GRPC_LATENCY, GRPC_REQUESTS, INFLIGHT_CALLS, OPEN_STREAMS

log = logging.getLogger(__name__)
current_tenant: contextvars.ContextVar[str] = contextvars.ContextVar("seedasr_tenant", default="")
ADMITTED = {"Recognize": "call", "StreamingRecognize": "stream"}  # RPC name -> admission kind
TENANT_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


class ApiKeys:
    """Tenants by the sha256 of their key, from a file of `tenant sha256hex` lines (# comments)."""

    def __init__(self, path: str) -> None:
        self.tenants: dict[str, str] = {}
        for n, line in enumerate(Path(path).read_text().splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2 or len(parts[1]) != 64 or not set(parts[0]) <= TENANT_CHARS or len(parts[0]) > 64:
                raise SystemExit(f"{path}:{n}: expected 'TENANT SHA256HEX' (tenant: 1-64 letters, digits, _ and -)")
            self.tenants[parts[1].lower()] = parts[0]
        if not self.tenants:
            raise SystemExit(f"{path}: no API keys")

    def tenant(self, metadata: tuple) -> Optional[str]:
        for key, value in metadata:
            if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
                return self.tenants.get(hashlib.sha256(value[7:].strip().encode()).hexdigest())
        return None


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Admission:
    max_calls: int
    max_streams: int
    max_streams_per_client: int
    calls: int = 0
    streams: int = 0
    per_client: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, kind: str, client: str) -> Optional[str]:
        """Take a slot; None when admitted, else why not."""
        with self.lock:
            if kind == "call":
                if self.calls >= self.max_calls:
                    ADMISSION_REFUSALS.labels(kind, "busy").inc()
                    return f"server busy: {self.calls} Recognize calls in flight (SEEDASR_MAX_CALLS); retry later"
                self.calls += 1
                INFLIGHT_CALLS.inc()
                return None
            if self.streams >= self.max_streams:
                ADMISSION_REFUSALS.labels(kind, "busy").inc()
                return f"server busy: {self.streams} streams open (SEEDASR_MAX_STREAMS); retry later"
            if self.per_client.get(client, 0) >= self.max_streams_per_client:
                ADMISSION_REFUSALS.labels(kind, "per_client").inc()
                return f"{self.max_streams_per_client} streams already open for this client (SEEDASR_MAX_STREAMS_PER_CLIENT)"
            self.streams += 1
            OPEN_STREAMS.inc()
            self.per_client[client] = self.per_client.get(client, 0) + 1
            return None

    def leave(self, kind: str, client: str) -> None:
        with self.lock:
            if kind == "call":
                self.calls -= 1
                INFLIGHT_CALLS.dec()
                return
            self.streams -= 1
            OPEN_STREAMS.dec()
            left = self.per_client.get(client, 1) - 1
            if left:
                self.per_client[client] = left
            else:
                self.per_client.pop(client, None)


class InFlight:
    """Calls being served, for drain-on-stop."""

    def __init__(self) -> None:
        self.count = 0
        self.cond = threading.Condition()

    def __enter__(self) -> None:
        with self.cond:
            self.count += 1

    def __exit__(self, *_: Any) -> None:
        with self.cond:
            self.count -= 1
            self.cond.notify_all()

    def wait_idle(self, timeout: float) -> int:
        """Wait up to `timeout` for every call to finish; returns how many are still running."""
        end = time.monotonic() + timeout
        with self.cond:
            while self.count and time.monotonic() < end:
                self.cond.wait(end - time.monotonic())
            return self.count


@dataclass
class Guard:
    """One per server process: the gRPC handlers below and the HTTP front (services/http) share it, so a
    client's calls and streams count against the same limits whichever protocol they arrive on."""

    admission: Admission
    keys: Optional[ApiKeys] = None
    inflight: InFlight = field(default_factory=InFlight)
    draining: bool = False  # stopping: new calls are refused (health still answers, NOT_SERVING)

    def enter(self, kind: Optional[str], metadata: tuple, peer: str, public: bool = True) -> tuple[str, str]:
        """Authenticate, then admit `kind` ("call", "stream" or None: not admission-controlled).
        Returns (tenant, client); raises BusError UNAVAILABLE, UNAUTHENTICATED or RESOURCE_EXHAUSTED."""
        if self.draining:
            raise BusError(grpc.StatusCode.UNAVAILABLE, "the server is shutting down; retry on another instance")
        tenant = ""
        if public and self.keys is not None:
            found = self.keys.tenant(metadata)
            if found is None:
                raise BusError(grpc.StatusCode.UNAUTHENTICATED, "a valid API key is required: 'authorization: Bearer KEY'")
            tenant = str(found)
        client = client_of(peer, tenant)
        if kind is not None:
            refused = self.admission.enter(kind, client)
            if refused:
                raise BusError(grpc.StatusCode.RESOURCE_EXHAUSTED, refused)
        return tenant, client

    def leave(self, kind: Optional[str], client: str) -> None:
        if kind is not None:
            self.admission.leave(kind, client)


def client_of(peer: str, tenant: str) -> str:
    """Whom per-client limits count: the tenant, else the peer's address without its port."""
    if tenant:
        return f"tenant:{tenant}"
    # "ipv4:127.0.0.1:5123", "ipv6:[::1]:5123", "unix:/path"
    return peer.rsplit(":", 1)[0] if peer.startswith(("ipv4:", "ipv6:")) else peer


def _bind(tenant: str, context: Any) -> tuple[contextvars.Token[str], contextvars.Token[Any]]:
    return current_tenant.set(tenant), calling_active.set(context.is_active)


def _reset(tokens: tuple[contextvars.Token[str], contextvars.Token[Any]]) -> None:
    try:
        current_tenant.reset(tokens[0])
        calling_active.reset(tokens[1])
    except ValueError:  # a stream's generator closed from another thread: that thread never set them
        pass


def _parse(cls: Any, data: bytes, context: Any, name: str) -> Any:
    try:
        return cls.FromString(data)
    except Exception:  # DecodeError, or bytes that are no message of this type
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {name} message")


def guarded_handler(servicer: Any, service: ServiceDescriptor, guard: Guard, public: bool) -> grpc.GenericRpcHandler:
    handlers = {m.name: _method_handler(servicer, m, guard, public) for m in service.methods}
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _method_handler(servicer: Any, method: MethodDescriptor, guard: Guard, public: bool) -> grpc.RpcMethodHandler:
    req_cls = message_factory.GetMessageClass(method.input_type)
    resp_cls = message_factory.GetMessageClass(method.output_type)
    fn = getattr(servicer, method.name)
    kind = ADMITTED.get(method.name) if public else None
    req_name = method.input_type.name

    service_name, method_name = method.containing_service.full_name, method.name
    health_check = service_name == "grpc.health.v1.Health"

    def counted() -> Any:
        """In flight for a stop to drain; a health Watch would hold a drain for its whole grace."""
        return contextlib.nullcontext() if health_check else guard.inflight

    def enter(context: Any) -> tuple[str, str]:
        """Authenticate and admit; aborts the call when either fails. Returns (tenant, client)."""
        if health_check:  # probes are answered during a drain: they see NOT_SERVING
            return "", ""
        try:
            return guard.enter(kind, context.invocation_metadata(), str(context.peer()), public)
        except BusError as err:
            context.abort(err.code(), err.details())
            raise  # unreachable: abort raises

    def leave(client: str) -> None:
        guard.leave(kind, client)

    def record(context: Any, started: float, failed: bool) -> None:
        """Counts the call by its final status (a servicer that aborted left the code on the context)."""
        code = getattr(context, "code", lambda: None)()
        if code is None:
            code = grpc.StatusCode.OK if not failed else (
                grpc.StatusCode.UNKNOWN if context.is_active() else grpc.StatusCode.CANCELLED)
        GRPC_REQUESTS.labels(service_name, method_name, code.name).inc()
        GRPC_LATENCY.labels(service_name, method_name).observe(time.perf_counter() - started)

    def requests(raw: Iterator[bytes], context: Any) -> Iterator[Any]:
        for data in raw:
            yield _parse(req_cls, data, context, req_name)

    def parse(request: Any, context: Any) -> Any:
        return requests(request, context) if method.client_streaming else _parse(req_cls, request, context, req_name)

    if not method.server_streaming:
        def unary_response(request: Any, context: Any) -> Any:
            started, failed = time.perf_counter(), True
            with counted():
                try:
                    tenant, client = enter(context)
                    tokens = _bind(tenant, context)
                    try:
                        response = fn(parse(request, context), context)
                        failed = False
                        return response
                    finally:
                        _reset(tokens)
                        leave(client)
                finally:
                    record(context, started, failed)

        make = grpc.stream_unary_rpc_method_handler if method.client_streaming else grpc.unary_unary_rpc_method_handler
        return make(unary_response, request_deserializer=None, response_serializer=resp_cls.SerializeToString)

    def stream_response(request: Any, context: Any) -> Iterator[Any]:
        started, failed = time.perf_counter(), True
        with counted():
            try:
                tenant, client = enter(context)
                tokens = _bind(tenant, context)
                try:
                    yield from fn(parse(request, context), context)
                    failed = False
                finally:
                    _reset(tokens)
                    leave(client)
            finally:
                record(context, started, failed)

    make_s: Callable[..., grpc.RpcMethodHandler] = (
        grpc.stream_stream_rpc_method_handler if method.client_streaming else grpc.unary_stream_rpc_method_handler)
    return make_s(stream_response, request_deserializer=None, response_serializer=resp_cls.SerializeToString)
