"""Turn feedback into an RL sample: every n-best hypothesis scored against the correction."""

from __future__ import annotations

import time
from typing import Any

from shared.events import sample_id_of
from shared.scoring import weighted_wer, wer


class TurnNotYetStored(LookupError):
    """The feedback arrived before its turn event was stored (events are asynchronous): retry."""


def make_sample(turn: dict[str, Any], corrected: str, keywords: list[str]) -> dict[str, Any]:
    hyps = [{"text": h["text"], "score": h["score"], "wer": wer(corrected, h["text"]),
             "weighted_wer": weighted_wer(corrected, h["text"], keywords)} for h in turn["nbest"]]
    return {"sample_id": sample_id_of(turn["turn_id"], corrected, keywords), "turn_id": turn["turn_id"], "reference": corrected,
            "keywords": keywords, "context": turn.get("context", ""), "hypotheses": hyps,
            "trace_id": turn.get("trace_id", ""), "tenant": turn.get("tenant", ""), "created_unix": time.time()}


def score_feedback(store: Any, turn_id: str, corrected: str, keywords: list[str]) -> dict[str, Any]:
    turn = store.get_turn(turn_id)
    if turn is None:
        raise TurnNotYetStored(turn_id)
    sample = make_sample(turn, corrected, keywords)
    store.add_sample(sample)
    return sample
