"""glibc malloc settings of the servers (shared/malloc.py)."""

from __future__ import annotations

import platform
import threading
import time

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


def test_malloc_settings_fail_fast(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SEEDASR_MALLOC_ARENAS", "-1")
    with pytest.raises(SystemExit):
        load_settings()
    assert "SEEDASR_MALLOC_ARENAS" in capsys.readouterr().err
