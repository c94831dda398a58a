"""Typed events (protos/seedasr/v1/events.proto): what the gateway publishes is what the bridge reads,
JSON events of older releases still read, and an event that can never be handled is an EventError
(the bridge terminates it instead of redelivering it forever)."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from seedasr.v1 import events_pb2
from services.reward.bridge import handle_event
from shared.events import FEEDBACK_SUBJECT, TURNS_SUBJECT, EventError, as_record, decode_event, sample_id_of
from shared.reward_store import LocalRewardStore


def _turn() -> events_pb2.TurnEvent:
    return events_pb2.TurnEvent(turn_id="t1", session_id="acme:s1", tenant="acme", context="alice", audio_seconds=1.5,
                                nbest=[events_pb2.TurnEvent.Hypothesis(text="call alex", score=-1.25)])


def test_typed_and_legacy_json_events_read_alike() -> None:
    typed = decode_event(TURNS_SUBJECT, _turn().SerializeToString())
    legacy = decode_event(TURNS_SUBJECT, json_format.MessageToJson(_turn(), preserving_proto_field_name=True).encode())
    assert typed == legacy == _turn()
    record = as_record(typed)
    assert record["nbest"] == [{"text": "call alex", "score": -1.25}] and record["trace_id"] == ""


def test_the_bridge_handles_typed_events(tmp_path) -> None:
    store, queued = LocalRewardStore(tmp_path / "samples.jsonl"), []
    assert handle_event(TURNS_SUBJECT, _turn().SerializeToString(), store, lambda *a: queued.append(a)) is None
    assert store.get_turn("t1")["nbest"][0]["text"] == "call alex"
    fb = events_pb2.FeedbackEvent(turn_id="t1", corrected_text="call alice", keywords=["alice"])
    got = handle_event(FEEDBACK_SUBJECT, fb.SerializeToString(), store, lambda *a: queued.append(a))
    assert got == sample_id_of("t1", "call alice", ["alice"]) and queued == [("t1", "call alice", ["alice"])]


@pytest.mark.parametrize("subject, payload, message", [
    ("asr.other", b"", "no event type"),
    (FEEDBACK_SUBJECT, b"\xff\x01 not an event", "not a seedasr.v1.FeedbackEvent"),
    (FEEDBACK_SUBJECT, b'{"turn_id": 3, "keywords": "x"}', "not a seedasr.v1.FeedbackEvent"),
    (TURNS_SUBJECT, events_pb2.TurnEvent(session_id="s").SerializeToString(), "no turn_id"),
])
def test_events_that_can_never_be_handled_are_event_errors(subject, payload, message) -> None:
    with pytest.raises(EventError, match=message):
        decode_event(subject, payload)
