"""Asynchronous events: finished turns and user feedback, typed by protos/seedasr/v1/events.proto.

JetStream in the mesh (durable, de-duplicated by message id); an in-process bus in the embedded
server that hands each event to its handlers at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Protocol

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry import trace

from seedasr.v1 import events_pb2
from shared.bus import NatsConnection
from shared.telemetry import inject_headers, tracer

log = logging.getLogger(__name__)

STREAM = "SEEDASR"
TURNS_SUBJECT = "asr.turns"
FEEDBACK_SUBJECT = "asr.feedback"
SUBJECTS = ["asr.>"]

Handler = Callable[[str, bytes], None]
EVENT_TYPES: dict[str, type[Message]] = {TURNS_SUBJECT: events_pb2.TurnEvent, FEEDBACK_SUBJECT: events_pb2.FeedbackEvent}
EVENT_HEADER = "Seedasr-Event"  # the full proto name, for tools that read the stream


class EventError(ValueError):
    """An event that can never be handled (unknown subject, not its message type): dead-lettered, not retried."""


def decode_event(subject: str, payload: bytes) -> Message:
    """The typed event of `subject`. JSON objects of the same fields are read too: releases before typed
    events published JSON, and the stream may still hold some."""
    cls = EVENT_TYPES.get(subject)
    if cls is None:
        raise EventError(f"no event type for subject {subject!r}")
    event = cls()
    try:
        if payload[:1] == b"{":
            json_format.Parse(payload, event, ignore_unknown_fields=True)
        else:
            event.ParseFromString(payload)
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as exc:
        raise EventError(f"{subject} payload is not a {cls.DESCRIPTOR.full_name}: {exc}") from None
    if not getattr(event, "turn_id", ""):
        raise EventError(f"{subject} event has no turn_id")
    return event


def as_record(event: Message) -> dict:
    """The event as the JSON-ready dict the reward store keeps (proto field names, every field present)."""
    return json_format.MessageToDict(event, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def sample_id_of(turn_id: str, corrected: str, keywords: list[str]) -> str:
    """One RL sample per (turn, correction): the feedback event's message id, so a resubmitted or
    redelivered feedback maps to the same id at every step."""
    return f"{turn_id}:{hashlib.sha1(json.dumps([corrected, keywords]).encode()).hexdigest()[:16]}"


class EventBus(Protocol):
    def publish(self, subject: str, payload: bytes, msg_id: str) -> None: ...


class JetStreamBus:
    """publish() returns once JetStream has stored the event (or raises): acknowledged means durable."""

    def __init__(self, conn: NatsConnection, timeout: float = 5.0) -> None:
        self.conn, self.timeout = conn, timeout
        ensure_stream(conn)

    def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        with tracer().start_as_current_span(f"{subject} publish", kind=trace.SpanKind.PRODUCER,
                                            attributes={"messaging.system": "nats", "messaging.destination": subject,
                                                        "messaging.message_id": msg_id}):
            headers = dict(inject_headers({"Nats-Msg-Id": msg_id}))
            if subject in EVENT_TYPES:
                headers[EVENT_HEADER] = EVENT_TYPES[subject].DESCRIPTOR.full_name
            self.conn.run(self.conn.js.publish(subject, payload, headers=headers, timeout=self.timeout),
                          timeout=self.timeout + 1)


def ensure_stream(conn: NatsConnection) -> None:
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    async def go() -> None:
        try:
            await conn.js.stream_info(STREAM)
        except NotFoundError:
            await conn.js.add_stream(StreamConfig(name=STREAM, subjects=SUBJECTS, duplicate_window=600.0,
                                                  max_age=7 * 24 * 3600.0))

    conn.run(go(), timeout=10)


class LocalBus:
    """Embedded mode: handlers run synchronously in publish(), so the work is done when it returns."""

    def __init__(self) -> None:
        self.handlers: dict[str, list[Handler]] = {}
        self.seen: set[tuple[str, str]] = set()
        self.lock = threading.Lock()

    def subscribe(self, subject: str, handler: Handler) -> None:
        self.handlers.setdefault(subject, []).append(handler)

    def publish(self, subject: str, payload: bytes, msg_id: str) -> None:
        """Raises what a handler raised; the id then stays unseen, so a retry of it is handled again."""
        with self.lock:
            if (subject, msg_id) in self.seen:  # same de-duplication contract as JetStream
                return
        with tracer().start_as_current_span(f"{subject} publish", kind=trace.SpanKind.PRODUCER):
            for handler in self.handlers.get(subject, []):
                handler(msg_id, payload)
        with self.lock:  # seen only once every handler succeeded (handlers are idempotent)
            self.seen.add((subject, msg_id))
