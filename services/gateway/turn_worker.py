"""The threads of one stream: a reader that waits on the client, and a worker that computes interim results and
speculative finals while the stream's own thread goes on reading audio (so an end of turn never queues behind them).
Both end with the stream."""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Optional

import grpc

from shared.bus import calling_active

_END = object()
WAKE = object()  # put in the inbox when a job finishes: the stream's thread looks at its results


class Job:
    """A call run on the worker in the submitter's context (tenant, trace, whether the caller is still there);
    `cancel()` makes the call's `is_active` false, which stops a decode at its next step."""

    def __init__(self, fn: Callable[[], Any], wake: Callable[[], None]) -> None:
        self.fn, self.wake = fn, wake
        self.context = contextvars.copy_context()
        self.done = threading.Event()
        self.cancelled = False
        self.result: Any = None
        self.error: Optional[BaseException] = None

    def cancel(self) -> None:
        self.cancelled = True

    def run(self) -> None:
        try:
            if not self.cancelled:
                self.result = self.context.run(self._call)
        except BaseException as exc:  # the submitter decides what a failed job means
            # without the traceback, whose frames hold this job: a cycle that would keep the call's buffers until
            # Python's next full collection
            self.error = without_tracebacks(exc)
        finally:
            self.done.set()
            self.wake()

    def _call(self) -> Any:
        parent = calling_active.get()
        calling_active.set(lambda: not self.cancelled and (parent is None or parent()))
        return self.fn()

    def ok(self) -> bool:
        return self.done.is_set() and self.error is None and not self.cancelled


class Worker:
    """One thread running jobs in order."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self.wake = wake
        self.jobs: queue.Queue[Optional[Job]] = queue.Queue()
        self.thread: Optional[threading.Thread] = None

    def submit(self, fn: Callable[[], Any]) -> Job:
        if self.thread is None:  # started on first use: a stream without interims or pauses never starts it
            self.thread = threading.Thread(target=self._run, name="stream-worker", daemon=True)
            self.thread.start()
        job = Job(fn, self.wake)
        self.jobs.put(job)
        return job

    def _run(self) -> None:
        while (job := self.jobs.get()) is not None:
            job.run()

    def close(self, timeout_s: float = 5.0) -> None:
        """Cancels what is queued and waits (bounded) for the running job to stop."""
        if self.thread is None:
            return
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel()
                job.done.set()
        self.jobs.put(None)
        self.thread.join(timeout_s)


def without_tracebacks(exc: BaseException) -> BaseException:
    """exc, and the exceptions it was raised from or during, without their tracebacks (whose frames hold the
    objects of the thread that raised them)."""
    seen: set[int] = set()
    link: Optional[BaseException] = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return exc


def put_last(q: queue.Queue[Any], item: Any) -> None:
    """Puts `item` without waiting, dropping the oldest waiting items to make room: the last word of a queue
    whose reader takes nothing after it."""
    while True:
        try:
            q.put_nowait(item)
            return
        except queue.Full:
            try:
                q.get_nowait()
            except queue.Empty:
                pass


class Inbox:
    """The stream's messages, read by a thread that waits on the client so that the servicer can time out
    (DEADLINE_EXCEEDED when none arrives for idle_s), see whether more are waiting, and be woken by its worker."""

    def __init__(self, requests: Iterator[Any]) -> None:
        self.queue: queue.Queue[Any] = queue.Queue(maxsize=64)
        self.closed = threading.Event()

        def put(item: Any) -> bool:
            """Waits for room while the stream is open; False once it closed (nobody will read the item)."""
            while not self.closed.is_set():
                try:
                    self.queue.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def read() -> None:
            try:
                for req in requests:
                    if not put(req):
                        return
                put(_END)
            except BaseException as exc:  # the call ended under the reader: hand it over (its traceback's frames
                put(without_tracebacks(exc))  # hold this inbox, and its queue the exception: no cycle)

        threading.Thread(target=read, name="stream-reader", daemon=True).start()

    def close(self) -> None:
        """The stream's thread is done: the reader stops waiting for room (and ends with the call), and a reader of
        these messages (an inbox stacked on this one, as Riva's streams do) sees their end at once."""
        self.closed.set()
        put_last(self.queue, _END)

    def wake(self) -> None:
        try:
            self.queue.put_nowait(WAKE)
        except queue.Full:  # messages are waiting: the stream's thread looks at the results with the next one
            pass

    def messages(self, idle_s: float, context: Any) -> Iterator[Any]:
        """The client's messages, and WAKE when a job finished."""
        while True:
            try:
                item = self.queue.get(timeout=idle_s)
            except queue.Empty:
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                              f"no message for {idle_s:g} s: stream closed (SEEDASR_STREAM_IDLE_S)")
                return
            if item is _END:
                return
            if isinstance(item, BaseException):
                error, item = item, None
                try:
                    raise error
                finally:  # this frame must not hold the exception its own traceback holds
                    del error
            yield item
