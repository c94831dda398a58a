"""Local ports and gRPC health checks for code that starts servers as child processes (the dev mesh,
the evaluation's served recogniser, the benchmarks)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_serving(port: int, name: str, exited: Callable[[], bool], log: Callable[[], str], timeout: float = 90) -> None:
    """Until the server on `port` reports SERVING; RuntimeError as soon as `exited()`, TimeoutError after
    `timeout` s, each with the tail of its `log()`."""
    deadline = time.time() + timeout
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        while time.time() < deadline:
            if exited():
                raise RuntimeError(f"{name} exited early:\n{log()}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.3)
        raise TimeoutError(f"{name} not serving on {port}:\n{log()}")
    finally:
        channel.close()
