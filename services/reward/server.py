"""Reward service: the JetStream -> Celery bridge plus a gRPC Reward service to read RL samples."""

from __future__ import annotations

import grpc

from seedasr.v1 import internal_pb2, internal_pb2_grpc


class RewardService(internal_pb2_grpc.RewardServicer):
    def __init__(self, store: object) -> None:
        self.store = store

    def GetSample(self, request: internal_pb2.GetSampleRequest, context: grpc.ServicerContext) -> internal_pb2.RewardSample:
        if not request.turn_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "turn_id is required")
        sample = self.store.get_sample(request.turn_id)  # type: ignore[attr-defined]
        if sample is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no RL sample for turn {request.turn_id} (yet)")
        return internal_pb2.RewardSample(
            turn_id=sample["turn_id"], reference=sample["reference"], context=sample.get("context", ""), found=True,
            hypotheses=[internal_pb2.ScoredHypothesis(text=h["text"], score=h["score"], wer=h["wer"],
                                                      weighted_wer=h["weighted_wer"]) for h in sample["hypotheses"]],
        )
