"""glibc malloc for long-running servers: few arenas and a periodic trim.

A threaded gRPC server with torch allocates on many threads; glibc gives each thread its own arena (up to 8 per
core) and keeps the freed pages of each. Over an hour of mixed traffic that reads as growth that later falls back
(a process's RSS up 40% and back, with no objects kept: the soak's RSS by process). Fewer arenas and a trim now and
then give the pages back. Elsewhere than glibc (musl, macOS) both are no-ops.

Each trim first collects Python's cyclic garbage. Calls that end in an exception (refused, cancelled, past their
deadline) leave reference cycles through their tracebacks that hold gRPC's and protobuf's buffers, memory outside
Python's own heap; Python collects its oldest generation only once the long-lived objects have grown by a quarter,
which in the gateway under the soak took about an hour: its RSS climbed by 240 MB and fell back. A full collection
of a server's ~160k objects costs tens of milliseconds, once a trim interval. Our own such cycles are broken where
they formed (services/gateway/turn_worker.py hands errors between a stream's threads without their tracebacks);
gRPC's remain: a call's state keeps the errors it raised (`_RPCState.rpc_errors`, `abortion`), whose tracebacks'
frames hold that state.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
from typing import Optional

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # mallopt's parameter number (glibc malloc.h)


def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018 (glibc's, not musl's)
    except (OSError, AttributeError):
        return None
    return libc


def configure_malloc(arenas: int, trim_s: float, stop: Optional[threading.Event] = None) -> bool:
    """Cap glibc's arenas at `arenas` (0: glibc's default) for the threads started from now on, and collect Python's
    cyclic garbage and trim the heap every `trim_s` seconds (0: never) on a daemon thread until `stop` is set. Call it
    before the server's threads start. False where the C library is not glibc."""
    libc = _libc()
    if libc is None:
        return False
    if arenas > 0 and libc.mallopt(M_ARENA_MAX, arenas) != 1:
        log.warning("mallopt(M_ARENA_MAX, %d) refused", arenas)
    if trim_s > 0:
        done = stop or threading.Event()

        def trim() -> None:
            while not done.wait(trim_s):
                gc.collect()  # first: what the cycles held is freed before the trim gives pages back
                libc.malloc_trim(0)

        threading.Thread(target=trim, name="malloc-trim", daemon=True).start()
    return True
