"""Context service: session history (Redis or memory) + request context -> context tokens."""

from __future__ import annotations

import time
import uuid

import grpc

from seedasr.v1 import common_pb2, internal_pb2, internal_pb2_grpc, recognizer_pb2
from shared.context import ContextInput, assemble_context
from shared.history import HistoryStore
from shared.sessions import check_session_id
from shared.tokenizer import Tokenizer

MAX_TURN_CHARS = 2000


def turn_to_pb(turn: dict) -> common_pb2.Turn:
    return common_pb2.Turn(role=turn["role"], text=turn["text"], turn_id=turn["turn_id"], created_unix=turn["created_unix"])


class ContextService(internal_pb2_grpc.ContextServicer):
    def __init__(self, store: HistoryStore, tok: Tokenizer, budget: int) -> None:
        self.store, self.tok, self.budget = store, tok, budget

    def Assemble(
        self, request: internal_pb2.AssembleRequest, context: grpc.ServicerContext
    ) -> internal_pb2.AssembleResponse:
        check_session_id(request.session_id, context, required=False)
        stored = (self.store.get(request.session_id) or []) if request.session_id else []
        ctx = ContextInput(
            turns=[t["text"] for t in stored] + list(request.context.history),
            # the session's user turns are what the pipeline recognised: context, not bias phrases
            recognised=[t["role"] == "user" for t in stored],
            hotwords=list(request.context.hotwords),
            prompt=request.context.prompt,
            previous_text=request.previous_text,
        )
        assembled = assemble_context(self.tok, ctx, self.budget)
        return internal_pb2.AssembleResponse(token_ids=assembled.token_ids, text=assembled.text,
                                             turns_used=assembled.turns_used, bias_phrases=assembled.bias_phrases,
                                             correction_phrases=assembled.correction_phrases,
                                             written_text=assembled.written_text, spellings=assembled.spellings)

    def AppendTurn(
        self, request: recognizer_pb2.AppendTurnRequest, context: grpc.ServicerContext
    ) -> recognizer_pb2.AppendTurnResponse:
        check_session_id(request.session_id, context)
        turn = request.turn
        if turn.role not in ("user", "assistant"):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "turn.role must be 'user' or 'assistant'")
        if not turn.text.strip() or len(turn.text) > MAX_TURN_CHARS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"turn.text must be 1-{MAX_TURN_CHARS} characters")
        turn_id = turn.turn_id or uuid.uuid4().hex
        count = self.store.append(request.session_id, {"role": turn.role, "text": turn.text, "turn_id": turn_id,
                                                       "created_unix": turn.created_unix or time.time()})
        return recognizer_pb2.AppendTurnResponse(turn_id=turn_id, turns=count)

    def GetSession(
        self, request: recognizer_pb2.GetSessionRequest, context: grpc.ServicerContext
    ) -> recognizer_pb2.GetSessionResponse:
        check_session_id(request.session_id, context)
        turns = self.store.get(request.session_id)
        if turns is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no session {request.session_id!r} (never created or expired)")
            return recognizer_pb2.GetSessionResponse()  # unreachable: abort raises
        return recognizer_pb2.GetSessionResponse(session_id=request.session_id, turns=[turn_to_pb(t) for t in turns])

    def DeleteSession(
        self, request: recognizer_pb2.DeleteSessionRequest, context: grpc.ServicerContext
    ) -> recognizer_pb2.DeleteSessionResponse:
        check_session_id(request.session_id, context)
        if not self.store.delete(request.session_id):
            context.abort(grpc.StatusCode.NOT_FOUND, f"no session {request.session_id!r}")
        return recognizer_pb2.DeleteSessionResponse(deleted=True)
