"""Celery app of the reward worker (Redis broker, acks_late: a killed worker's task is redelivered).

    celery -A services.reward.tasks worker --concurrency 1
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_init, worker_process_init

from services.reward.scoring import TurnNotYetStored, score_feedback
from shared.reward_store import RedisRewardStore
from shared.settings import load_settings
from shared.telemetry import setup_telemetry

settings = load_settings()
app = Celery("seedasr_reward", broker=settings.celery_broker_url)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,  # a worker killed mid-task puts the task back
    worker_prefetch_multiplier=1,
    task_serializer="json",
    accept_content=["json"],
    task_ignore_result=True,
    broker_transport_options={"visibility_timeout": settings.celery_visibility_s},
    broker_connection_retry_on_startup=True,
)
_store: RedisRewardStore | None = None


def store() -> RedisRewardStore:
    global _store
    if _store is None:
        _store = RedisRewardStore(settings.redis_url)
    return _store


@worker_init.connect
@worker_process_init.connect
def _init_worker(**_: Any) -> None:
    setup_telemetry("seedasr-reward-worker", settings.trace_file, settings.log_level)
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument()


@app.task(name="seedasr.score_feedback", bind=True, acks_late=True, autoretry_for=(TurnNotYetStored,),
          retry_backoff=0.5, retry_backoff_max=10, max_retries=40)
def score_feedback_task(self: Any, turn_id: str, corrected: str, keywords: list[str]) -> str:
    """Idempotent: the sample id derives from (turn, correction), so a redelivery adds nothing."""
    return str(score_feedback(store(), turn_id, corrected, keywords)["sample_id"])
