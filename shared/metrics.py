"""Prometheus metrics, defined once for every service (prometheus-client's default registry).

Every process exports what it does: the gRPC guard counts each RPC by service, method and status; the gateway
adds its stage latencies and audio seconds; the HTTP front its requests by route; NATS stubs their failed
requests; the reward service its backlog. Served at /metrics on the HTTP port, or on SEEDASR_METRICS_PORT for
services without one (`serve_metrics`). deploy/grafana/dashboards/seedasr.json plots them.
"""

from __future__ import annotations

import logging
from typing import Optional

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# latency buckets from 5 ms to 1 min: a cached health check to a long upload
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGES = ("audio_decode", "encode", "context", "decode", "end_to_end")

# RPCs served, over gRPC or as NATS request-reply (the mesh's internal calls), by final status code
GRPC_REQUESTS = Counter("seedasr_grpc_requests", "RPCs served (gRPC or NATS request-reply), by final status code",
                        ["service", "method", "code"])
GRPC_LATENCY = Histogram("seedasr_grpc_request_duration_seconds", "gRPC call duration (streams: until the stream ends)",
                         ["service", "method"], buckets=LATENCY_BUCKETS)
HTTP_REQUESTS = Counter("seedasr_http_requests", "HTTP requests served, by route and status",
                        ["route", "method", "status"])
HTTP_LATENCY = Histogram("seedasr_http_request_duration_seconds", "HTTP request duration", ["route"],
                         buckets=LATENCY_BUCKETS)
STAGE_LATENCY = Histogram("seedasr_stage_duration_seconds", "time a recognised turn spent in each stage", ["stage"],
                          buckets=LATENCY_BUCKETS)
AUDIO_SECONDS = Counter("seedasr_audio_seconds", "seconds of audio recognised", ["kind"])  # kind: request | stream
INFLIGHT_CALLS = Gauge("seedasr_inflight_calls", "admitted Recognize calls in flight (gRPC, Riva and HTTP)")
OPEN_STREAMS = Gauge("seedasr_open_streams", "admitted streams open (gRPC, Riva and WebSocket)")
ADMISSION_REFUSALS = Counter("seedasr_admission_refusals", "calls and streams refused by admission control",
                             ["kind", "reason"])  # kind: call | stream; reason: busy | per_client
NATS_REQUEST_ERRORS = Counter("seedasr_nats_request_errors", "NATS requests to a peer service that failed",
                              ["service", "method", "reason"])  # reason: no_responders | timeout | nats | remote
REWARD_BACKLOG = Gauge("seedasr_reward_backlog", "feedback events not yet scored (bridge consumer pending + queue)")


def observe_stages(decode_audio_ms: float, encode_ms: float, context_ms: float, decode_ms: float,
                   total_ms: float) -> None:
    for stage, ms in zip(STAGES, (decode_audio_ms, encode_ms, context_ms, decode_ms, total_ms)):
        STAGE_LATENCY.labels(stage).observe(ms / 1000)


def serve_metrics(port: Optional[int], host: str = "0.0.0.0") -> Optional[int]:
    """Serve /metrics on its own port (services without an HTTP front); returns the bound port, None when off."""
    if port is None or port < 0:
        return None
    server, _thread = start_http_server(port, addr=host)
    bound = int(server.server_address[1])
    log.info("serving Prometheus metrics on %s:%d/metrics", host, bound)
    return bound
