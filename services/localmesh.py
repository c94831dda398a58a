"""Run the mesh as local processes (tests, benchmarks, a developer's machine), and stop it for sure.

    python -m services.localmesh      # every service + the Celery worker until Ctrl-C
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from shared import localnet
from shared.localnet import free_port as free_port  # re-exported: the mesh tools take it from here

ROOT = Path(__file__).resolve().parent.parent
SERVICE_NAMES = ("encoder", "context", "decoder", "gateway", "reward")


class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path,
                 program: str = sys.executable) -> None:
        """`program args...` (python by default) in its own process group, output in log_dir/NAME.log."""
        self.name, self.args, self.env, self.log_dir, self.program = name, args, env, log_dir, program
        self.p: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        log = open(self.log_dir / f"{self.name}.log", "ab")
        self.p = subprocess.Popen([self.program, *self.args], cwd=ROOT, env={**os.environ, **self.env},
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


def reachable(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_serving(port: int, proc: Proc, timeout: float = 90) -> None:
    localnet.wait_serving(port, proc.name, lambda: proc.p is not None and proc.p.poll() is not None, proc.log, timeout)


def wait_for(predicate, timeout: float, what: str, interval: float = 0.3):  # type: ignore[no-untyped-def]
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def start_mesh(env: dict[str, str], log_dir: Path, ports: dict[str, int],
               env_of: Optional[dict[str, dict[str, str]]] = None) -> dict[str, Proc]:
    """Every service on its port plus the Celery worker; returns once all report SERVING. env_of: more
    environment for some processes, by name ("worker" included)."""
    extra = env_of or {}
    env = {"SEEDASR_HTTP_PORT": "-1", **env}  # a gateway's HTTP front only where asked for (8080 may be taken)
    procs = {name: Proc(name, ["-m", "services.cli", "serve", name, "--port", str(port)], {**env, **extra.get(name, {})},
                        log_dir) for name, port in ports.items()}
    procs["worker"] = Proc("worker", ["-m", "services.cli", "worker"], {**env, **extra.get("worker", {})}, log_dir)
    try:
        for name, port in ports.items():
            wait_serving(port, procs[name])
    except Exception:
        for p in procs.values():
            p.kill()
        raise
    return procs


def main() -> None:
    import tempfile

    from services.app import DEFAULT_PORTS

    log_dir = Path(tempfile.mkdtemp(prefix="seedasr-mesh-"))
    procs = start_mesh({}, log_dir, {n: DEFAULT_PORTS[n] for n in SERVICE_NAMES}, {"gateway": {"SEEDASR_HTTP_PORT": "8080"}})
    print(f"mesh up: gateway on 127.0.0.1:{DEFAULT_PORTS['gateway']}; logs in {log_dir}; Ctrl-C stops it", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        for p in procs.values():
            p.terminate() if p.p and p.p.poll() is None else None


if __name__ == "__main__":
    main()
