"""JetStream -> Celery bridge (Celery has no NATS broker).

A durable pull consumer on asr.> with explicit acks: turn events are stored for later scoring;
feedback events become Celery tasks. A message is acked only after its work is stored or enqueued
(Redis accepted it), so killing the bridge loses nothing: JetStream redelivers, at most
`max_deliver` times, and the idempotent task makes redelivery harmless.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import Callable
from typing import Any, Optional

from opentelemetry import context as otel_context
from opentelemetry import trace

from shared.bus import NatsConnection
from shared.events import FEEDBACK_SUBJECT, STREAM, TURNS_SUBJECT, ensure_stream
from shared.telemetry import extract_context, tracer

log = logging.getLogger(__name__)

Enqueue = Callable[[str, str, list[str]], None]


def handle_event(subject: str, payload: bytes, store: Any, enqueue: Enqueue) -> None:
    """The work for one event; the same function serves the embedded in-process bus."""
    event = json.loads(payload)
    if subject == TURNS_SUBJECT:
        store.put_turn(event)
    elif subject == FEEDBACK_SUBJECT:
        enqueue(event["turn_id"], event["corrected_text"], list(event.get("keywords", [])))


class RewardBridge:
    def __init__(self, conn: NatsConnection, store: Any, enqueue: Enqueue, durable: str = "reward-bridge",
                 deliver: str = "all", max_deliver: int = 10, ack_wait_s: float = 30.0) -> None:
        self.conn, self.store, self.enqueue, self.deliver = conn, store, enqueue, deliver
        self.durable, self.max_deliver, self.ack_wait_s = durable, max_deliver, ack_wait_s
        self.task: Optional[concurrent.futures.Future[None]] = None
        self.stopping = False

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
        while not self.stopping:
            try:
                msgs = await sub.fetch(16, timeout=1.0)
            except (TimeoutError, NatsTimeout):
                continue
            except Exception as exc:  # NATS restarting: keep trying, nothing was acked
                log.warning("fetch failed: %s", exc)
                await asyncio.sleep(0.5)
                continue
            for msg in msgs:
                try:
                    await loop.run_in_executor(None, self._process, msg.subject, msg.data, dict(msg.headers or {}))
                    await msg.ack()
                except Exception:
                    log.exception("event on %s failed; it will be redelivered", msg.subject)
                    await msg.nak(delay=1.0)

    def _process(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        token = otel_context.attach(extract_context(headers))
        try:
            with tracer().start_as_current_span(f"{subject} process", kind=trace.SpanKind.CONSUMER,
                                                attributes={"messaging.system": "nats", "messaging.destination": subject}):
                handle_event(subject, data, self.store, self.enqueue)
        finally:
            otel_context.detach(token)
