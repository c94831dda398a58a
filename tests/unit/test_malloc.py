"""glibc malloc settings of the servers (shared/malloc.py)."""

from __future__ import annotations

import gc
import platform
import threading
import time
import weakref

import pytest

from shared.malloc import configure_malloc
from shared.settings import load_settings


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_arenas_are_capped_and_the_trimmer_runs_until_stopped() -> None:
    stop = threading.Event()
    before = set(threading.enumerate())  # a server started in this process earlier keeps its own trimmer
    assert configure_malloc(2, 0.01, stop)
    trimmers = [t for t in threading.enumerate() if t.name == "malloc-trim" and t not in before]
    assert len(trimmers) == 1
    time.sleep(0.05)  # a few trims
    stop.set()
    for t in trimmers:
        t.join(1)
    assert not any(t.is_alive() for t in trimmers)


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle, as a traceback makes with the frame that raised it


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_the_trimmer_collects_cyclic_garbage() -> None:
    stop = threading.Event()
    gc.disable()  # as if Python's own schedule had not come round to its oldest generation
    try:
        node = Node()
        alive = weakref.ref(node)
        del node
        assert alive() is not None  # only a collection frees a cycle
        assert configure_malloc(0, 0.01, stop)
        deadline = time.monotonic() + 5
        while alive() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert alive() is None
    finally:
        stop.set()
        gc.enable()


def test_malloc_settings_fail_fast(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SEEDASR_MALLOC_ARENAS", "-1")
    with pytest.raises(SystemExit):
        load_settings()
    assert "SEEDASR_MALLOC_ARENAS" in capsys.readouterr().err
