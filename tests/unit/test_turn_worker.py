"""A stream's threads (services/gateway/turn_worker.py): a call that ends in an error leaves no reference cycle, so
what it held (gRPC's buffers, the turn's audio) is freed at once, not at Python's next full collection."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from services.gateway.turn_worker import Inbox, Job


class Ended(Exception):
    pass


class Held:
    """Stands for a call's buffers: alive while anything reaches it."""


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Only reference counting frees objects during the test: a cycle keeps its objects alive."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Context:
    def abort(self, *args: object) -> None:
        raise AssertionError(f"no abort expected: {args}")


def test_a_call_ending_under_the_reader_frees_what_it_held(no_collector: None) -> None:
    held = Held()
    ref = weakref.ref(held)
    done = threading.Event()

    def requests(buffers: Held) -> Iterator[int]:
        yield 1
        done.wait(5)
        raise Ended("the call ended")  # as gRPC's request iterator does when the client goes

    inbox = Inbox(requests(held))
    del held
    messages = inbox.messages(5.0, Context())
    assert next(messages) == 1
    done.set()
    try:
        next(messages)
    except Ended:
        pass
    else:
        raise AssertionError("the reader's error reaches the stream's thread")
    inbox.close()
    del inbox, messages
    for _ in range(50):  # the reader thread ends on its own
        if ref() is None:
            break
        threading.Event().wait(0.02)
    assert ref() is None, "a reference cycle holds the call's objects"


def test_a_failed_job_frees_what_its_call_held(no_collector: None) -> None:
    def call() -> None:
        buffers = Held()
        refs.append(weakref.ref(buffers))
        raise Ended("the interim failed")

    refs: list[weakref.ref[Held]] = []
    job = Job(call, lambda: None)
    job.run()
    assert isinstance(job.error, Ended) and not job.ok()
    del job
    assert refs[0]() is None, "a reference cycle holds the job's frames"
