"""JetStream -> Celery bridge (Celery has no NATS broker).

A durable pull consumer on asr.> with explicit acks. A turn event is acked once the turn is stored in
Redis. A feedback event becomes a Celery task, but is acked only once the task's RL sample is in the
store: JetStream, not the broker, holds it until it is done. Celery's Redis transport can drop a task
taken by a worker killed at the wrong instant (kombu pops it before it records it as unacked); the
bridge then enqueues it again after `resend_s`, and JetStream redelivers to the next bridge if this
one dies. Redelivery is unlimited by default, and the idempotent store makes every repeat harmless.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace

from seedasr.v1 import events_pb2
from shared.bus import NatsConnection
from shared.events import STREAM, EventError, as_record, decode_event, ensure_stream, sample_id_of
from shared.metrics import REWARD_BACKLOG
from shared.telemetry import extract_context, tracer

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str, list[str]], None]
BACKLOG_EVERY_S = 5.0


def handle_event(subject: str, payload: bytes, store: Any, enqueue: Enqueue) -> Optional[str]:
    """The work for one event; the same function serves the embedded in-process bus. Returns the id of
    the RL sample a feedback event will produce (None for a turn event, done once this returns)."""
    event = decode_event(subject, payload)  # EventError: never handleable
    if isinstance(event, events_pb2.TurnEvent):
        store.put_turn(as_record(event))
    elif isinstance(event, events_pb2.FeedbackEvent):
        keywords = list(event.keywords)
        enqueue(event.turn_id, event.corrected_text, keywords)
        return sample_id_of(event.turn_id, event.corrected_text, keywords)
    return None


@dataclass
class Pending:
    """A feedback event enqueued and not yet scored: acked when its sample is stored."""

    msg: Any
    subject: str
    data: bytes
    headers: dict[str, str]
    sent_at: float


class RewardBridge:
    def __init__(self, conn: NatsConnection, store: Any, enqueue: Enqueue, durable: str = "reward-bridge",
                 deliver: str = "all", max_deliver: int = -1, ack_wait_s: float = 60.0, resend_s: float = 20.0) -> None:
        self.conn, self.store, self.enqueue, self.deliver = conn, store, enqueue, deliver
        self.durable, self.max_deliver, self.ack_wait_s, self.resend_s = durable, max_deliver, ack_wait_s, resend_s
        self.task: Optional[concurrent.futures.Future[None]] = None
        self.stopping = False
        self.pending: dict[str, Pending] = {}

    def start(self) -> None:
        ensure_stream(self.conn)
        self.task = asyncio.run_coroutine_threadsafe(self._run(), self.conn.loop)

    def stop(self) -> None:
        self.stopping = True
        if self.task:
            try:
                self.task.result(timeout=5)
            except Exception:  # the loop was cancelled or had already failed: nothing to wait for
                pass

    async def _run(self) -> None:
        from nats.errors import TimeoutError as NatsTimeout
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

        policy = DeliverPolicy.NEW if self.deliver == "new" else DeliverPolicy.ALL
        sub = await self.conn.js.pull_subscribe(
            "asr.>", durable=self.durable, stream=STREAM,
            config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, max_deliver=self.max_deliver, ack_wait=self.ack_wait_s,
                                  deliver_policy=policy),
        )
        loop = asyncio.get_running_loop()
        measured = 0.0
        while not self.stopping:
            await self._settle(loop)
            if time.monotonic() - measured > BACKLOG_EVERY_S:
                measured = time.monotonic()
                await self._measure_backlog(sub)
            try:
                msgs = await sub.fetch(16, timeout=0.5 if self.pending else 1.0)
            except (TimeoutError, NatsTimeout):
                continue
            except Exception as exc:  # NATS restarting: keep trying, nothing was acked
                log.warning("fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                headers = dict(msg.headers or {})
                try:
                    sample_id = await loop.run_in_executor(None, self._process, msg.subject, msg.data, headers)
                    if sample_id is None:
                        await msg.ack()
                    else:  # a redelivery replaces the older delivery: ack the newest
                        self.pending[sample_id] = Pending(msg, msg.subject, msg.data, headers, time.monotonic())
                except EventError as exc:  # redelivery cannot help: JetStream stops delivering it
                    log.error("event %s on %s dropped: %s", headers.get("Nats-Msg-Id", "?"), msg.subject, exc)
                    await msg.term()
                except Exception:
                    log.exception("event on %s failed; it will be redelivered", msg.subject)
                    await msg.nak(delay=min(30.0, 0.5 * 2 ** min(6, (msg.metadata.num_delivered or 1))))

    async def _measure_backlog(self, sub: Any) -> None:
        """Events JetStream holds for this consumer, and the feedback enqueued but not yet scored."""
        try:
            info = await sub.consumer_info()
            REWARD_BACKLOG.set((info.num_pending or 0) + len(self.pending))
        except Exception as exc:  # NATS restarting: the gauge keeps its last value
            log.debug("consumer info unavailable: %s", exc)

    async def _settle(self, loop: asyncio.AbstractEventLoop) -> None:
        """Ack the feedback whose samples are stored; enqueue again what has waited resend_s."""
        if not self.pending:
            return
        ids = list(self.pending)
        try:
            stored = await loop.run_in_executor(None, self.store.stored_samples, ids)
        except Exception as exc:  # Redis down: try again next round, nothing is acked meanwhile
            log.warning("cannot check stored samples: %s", exc)
            return
        now = time.monotonic()
        for sample_id in ids:
            item = self.pending[sample_id]
            try:
                if sample_id in stored:
                    await item.msg.ack()
                    del self.pending[sample_id]
                elif now - item.sent_at > self.resend_s:
                    log.warning("sample %s not stored after %.0f s: enqueueing its task again", sample_id, self.resend_s)
                    await item.msg.in_progress()  # JetStream keeps it with this bridge meanwhile
                    await loop.run_in_executor(None, self._process, item.subject, item.data, item.headers)
                    item.sent_at = now
            except Exception as exc:  # NATS or Redis away: JetStream redelivers after ack_wait
                log.warning("feedback %s left for redelivery: %s", sample_id, exc)

    def _process(self, subject: str, data: bytes, headers: dict[str, str]) -> Optional[str]:
        token = otel_context.attach(extract_context(headers))
        try:
            with tracer().start_as_current_span(f"{subject} process", kind=trace.SpanKind.CONSUMER,
                                                attributes={"messaging.system": "nats", "messaging.destination": subject}):
                return handle_event(subject, data, self.store, self.enqueue)
        finally:
            otel_context.detach(token)
