"""Start project processes for integration and e2e tests, and stop them for sure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parent.parent


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env, self.log_dir = name, args, env, log_dir
        self.p: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log_dir / f"{self.name}.log", "ab")
        self.p = subprocess.Popen([sys.executable, *self.args], cwd=ROOT, env={**os.environ, **self.env},
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        if self.p and self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.p is not None
        self.p.send_signal(signal.SIGTERM)
        return self.p.wait(timeout)

    def log(self) -> str:
        return (self.log_dir / f"{self.name}.log").read_text(errors="replace")[-3000:]


def wait_serving(port: int, proc: Proc, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        while time.time() < deadline:
            if proc.p is not None and proc.p.poll() is not None:
                raise RuntimeError(f"{proc.name} exited early:\n{proc.log()}")
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                time.sleep(0.3)
        raise TimeoutError(f"{proc.name} not serving on {port}:\n{proc.log()}")
    finally:
        channel.close()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")
