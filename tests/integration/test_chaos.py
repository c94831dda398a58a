"""No acknowledged feedback is lost or stored twice when the worker, the bridge, Redis and NATS are
killed (kill -9) under load (services/chaos.py; `make chaos` runs the long version), and the bridge
acks a feedback event only once its sample is stored, enqueueing again a task the broker dropped."""

from __future__ import annotations

import json
import uuid

import pytest

from services.localmesh import wait_for
from services.reward.bridge import RewardBridge
from services.reward.scoring import score_feedback
from shared.bus import NatsConnection
from shared.events import FEEDBACK_SUBJECT, STREAM, TURNS_SUBJECT, JetStreamBus, sample_id_of
from shared.reward_store import RedisRewardStore

pytestmark = pytest.mark.integration


def test_a_task_the_broker_drops_is_enqueued_again_and_acked_once_stored(nats_url, redis_url) -> None:
    store = RedisRewardStore(redis_url)
    sent: list[str] = []

    def lossy_enqueue(turn_id: str, corrected: str, keywords: list[str]) -> None:
        sent.append(turn_id)
        if len(sent) > 1:  # the first task vanishes, as one popped by a worker killed at that instant
            score_feedback(store, turn_id, corrected, keywords)

    conn = NatsConnection(nats_url, "test-bridge")
    durable = f"test-{uuid.uuid4().hex[:8]}"
    bridge = RewardBridge(conn, store, lossy_enqueue, durable=durable, deliver="new", resend_s=1.0)
    bridge.start()
    try:
        bus = JetStreamBus(conn)
        turn_id = uuid.uuid4().hex
        bus.publish(TURNS_SUBJECT, json.dumps({"turn_id": turn_id, "nbest": [{"text": "call al", "score": -1.0}]}).encode(),
                    msg_id=turn_id)
        event = {"turn_id": turn_id, "corrected_text": "call alice", "keywords": ["alice"]}
        bus.publish(FEEDBACK_SUBJECT, json.dumps(event).encode(), msg_id=sample_id_of(turn_id, "call alice", ["alice"]))
        wait_for(lambda: store.get_sample(turn_id), 20, "the sample of the re-sent task")

        async def ack_pending() -> int:
            return int((await conn.js.consumer_info(STREAM, durable)).num_ack_pending)

        wait_for(lambda: conn.run(ack_pending(), timeout=5) == 0, 10, "the feedback event to be acked")
        assert sent == [turn_id, turn_id] and not bridge.pending
    finally:
        bridge.stop()
        conn.close()


def test_kills_of_worker_bridge_redis_nats_and_gateway_lose_nothing_acknowledged(tiny_bundle, tmp_path) -> None:
    from services.chaos import run_chaos

    counts = run_chaos(kills=1, bundle=str(tiny_bundle), down_s=0.5, up_s=1.5, settle_s=120, work=tmp_path)
    assert counts["acknowledged"] > 20
    assert counts["lost"] == 0 and counts["duplicated"] == 0, counts
