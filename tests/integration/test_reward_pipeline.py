"""JetStream -> bridge (reward service) -> Celery worker -> RL sample store, against real NATS,
Redis and Celery; neither killing the worker nor the bridge loses an acknowledged event."""

import uuid

import pytest
from google.protobuf import json_format

from seedasr.v1 import events_pb2
from services.localmesh import Proc, wait_for, wait_serving
from shared.bus import NatsConnection
from shared.events import FEEDBACK_SUBJECT, TURNS_SUBJECT, JetStreamBus
from shared.reward_store import RedisRewardStore
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def publish_turn_and_feedback(bus: JetStreamBus, turn_id: str, legacy_json: bool = False) -> None:
    hyps = [events_pb2.TurnEvent.Hypothesis(text="call alex now", score=-1.0),
            events_pb2.TurnEvent.Hypothesis(text="call alice now", score=-2.0)]
    turn = events_pb2.TurnEvent(turn_id=turn_id, nbest=hyps, context="alice")
    fb = events_pb2.FeedbackEvent(turn_id=turn_id, corrected_text="call alice now", keywords=["alice"])

    def wire(event) -> bytes:  # releases before typed events published JSON objects of the same fields
        return json_format.MessageToJson(event, preserving_proto_field_name=True).encode() if legacy_json \
            else event.SerializeToString()

    bus.publish(TURNS_SUBJECT, wire(turn), msg_id=turn_id)
    bus.publish(FEEDBACK_SUBJECT, wire(fb), msg_id=f"{turn_id}:fb")
    bus.publish(FEEDBACK_SUBJECT, wire(fb), msg_id=f"{turn_id}:fb")  # duplicate: de-duplicated


def test_feedback_is_scored_and_survives_worker_and_bridge_kills(nats_url, redis_url, tiny_bundle, tmp_path) -> None:
    env = {"REDIS_URL": redis_url, "NATS_URL": nats_url, "SEEDASR_MODEL": str(tiny_bundle),
           "SEEDASR_BRIDGE_DURABLE": f"test-{uuid.uuid4().hex[:8]}", "SEEDASR_BRIDGE_DELIVER": "new"}
    port = free_port()
    reward = Proc("reward", ["-m", "services.cli", "serve", "reward", "--port", str(port)], env, tmp_path)
    worker = Proc("worker", ["-m", "services.cli", "worker"], env, tmp_path)
    conn = NatsConnection(nats_url, "test-publisher")
    store = RedisRewardStore(redis_url)
    try:
        wait_serving(port, reward)
        bus = JetStreamBus(conn)
        first = uuid.uuid4().hex
        publish_turn_and_feedback(bus, first)
        bus.publish(FEEDBACK_SUBJECT, b"\xff\x01 not an event", msg_id="poison")  # dropped, blocks nothing
        sample = wait_for(lambda: store.get_sample(first), 60, "first RL sample")
        assert [h["wer"] for h in sample["hypotheses"]] == [pytest.approx(1 / 3), 0.0]
        assert sample["hypotheses"][0]["weighted_wer"] > sample["hypotheses"][0]["wer"]

        worker.kill()  # tasks now wait in the Redis broker
        later = [uuid.uuid4().hex for _ in range(3)]
        for n, turn_id in enumerate(later[:2]):
            publish_turn_and_feedback(bus, turn_id, legacy_json=n == 1)
        reward.kill()  # events now wait in JetStream
        publish_turn_and_feedback(bus, later[2])
        reward.start()
        wait_serving(port, reward)
        worker.start()
        for turn_id in later:
            wait_for(lambda t=turn_id: store.get_sample(t), 90, f"sample for {turn_id}")
        ids = [s["sample_id"] for s in store.samples() if s["turn_id"] in [first, *later]]
        assert len(ids) == len(set(ids)) == 4  # exactly once per (turn, correction)
    finally:
        worker.kill()
        reward.kill()
        conn.close()
