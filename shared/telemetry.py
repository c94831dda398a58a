"""OpenTelemetry and logging set-up, once per process, for every service and the CLI.

OTLP export when OTEL_EXPORTER_OTLP_ENDPOINT is set; JSON-lines span file when
SEEDASR_TRACE_FILE is set (tests read it to follow one trace across processes).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, MutableMapping
from typing import Optional

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult

_lock = threading.Lock()
_configured: Optional[str] = None


class JsonLinesExporter(SpanExporter):
    """Appends one JSON object per span; several processes may share the file."""

    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans) -> SpanExportResult:  # type: ignore[no-untyped-def]
        import json

        with open(self.path, "a") as f:
            for s in spans:
                f.write(json.dumps({
                    "name": s.name, "service": s.resource.attributes.get("service.name"),
                    "trace_id": format(s.context.trace_id, "032x"), "span_id": format(s.context.span_id, "016x"),
                    "parent_id": format(s.parent.span_id, "016x") if s.parent else None,
                    "kind": s.kind.name, "attributes": {k: str(v) for k, v in (s.attributes or {}).items()},
                }) + "\n")
        return SpanExportResult.SUCCESS


def setup_telemetry(service: str, trace_file: str = "", log_level: str = "INFO") -> None:
    """Idempotent: the first call in a process wins (the embedded server calls it once)."""
    global _configured
    with _lock:
        if _configured:
            return
        _configured = service
        logging.basicConfig(level=log_level, format=f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s")
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        if trace_file:
            provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(trace_file)))
        trace.set_tracer_provider(provider)
        _instrument_libraries()


def _instrument_libraries() -> None:
    from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient, GrpcInstrumentorServer
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    GrpcInstrumentorServer().instrument()
    GrpcInstrumentorClient().instrument()
    RedisInstrumentor().instrument()


def tracer(name: str = "seedasr") -> trace.Tracer:
    return trace.get_tracer(name)


def inject_headers(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """W3C traceparent (and baggage) of the current span into message headers."""
    propagate.inject(headers)
    return headers


def extract_context(headers: Optional[Mapping[str, str]]) -> otel_context.Context:
    return propagate.extract(dict(headers or {}))


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""
