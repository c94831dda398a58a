"""`seedasr worker`: the Celery reward worker in a child process, started again whenever it dies.

Celery's worker exits on some broker failures (kombu 5.7 raises while closing a channel to a Redis that
just went away: "Unrecoverable error"); its unacknowledged tasks stay in Redis and come back after the
visibility timeout, but only a running worker takes them. Containers restart it too (restart policy);
this covers plain processes. SIGTERM/SIGINT go to the worker, which finishes its task, and nothing restarts.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from typing import Any

log = logging.getLogger(__name__)


def worker_command(concurrency: int) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "services.reward.tasks", "worker", "--loglevel", "INFO",
            "--concurrency", str(concurrency), "--pool", "solo"]


def supervise(command: list[str], restart_delay_s: float = 1.0) -> int:
    """Run `command` until it exits 0 or a stop signal arrives; returns its last exit status."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        child = subprocess.Popen(command)
        code = child.wait()
        if stopping or code == 0:
            return code
        log.warning("reward worker exited with status %d; starting it again in %.0f s", code, restart_delay_s)
        print(f"seedasr worker: the Celery worker exited with status {code}; restarting", file=sys.stderr, flush=True)
        time.sleep(restart_delay_s)
