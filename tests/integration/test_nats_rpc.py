"""The generic NATS adapter against the real NATS server."""

import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from opentelemetry import trace

from seedasr.v1 import common_pb2, internal_pb2, recognizer_pb2
from services.context.server import ContextService
from shared.bus import BusError, NatsConnection, NatsStub, serve_over_nats
from shared.history import MemoryHistoryStore
from shared.telemetry import setup_telemetry, tracer
from shared.tokenizer import Tokenizer

pytestmark = pytest.mark.integration
CONTEXT = internal_pb2.DESCRIPTOR.services_by_name["Context"]
DECODER = internal_pb2.DESCRIPTOR.services_by_name["Decoder"]


class Recording(ContextService):
    """Records which instance served and under which trace."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.calls: list[int] = []

    def Assemble(self, request, context):
        self.calls.append(trace.get_current_span().get_span_context().trace_id)
        return super().Assemble(request, context)


@pytest.fixture
def conns(nats_url):
    made = [NatsConnection(nats_url, f"test-{i}") for i in range(3)]
    yield made
    for c in made:
        c.close()


def test_request_reply_errors_queue_groups_and_trace_context(conns, tiny_bundle) -> None:
    setup_telemetry("tests")
    tok = Tokenizer(tiny_bundle / "tokenizer.model")
    store = MemoryHistoryStore(10, 60)
    servers = [Recording(store, tok, 64), Recording(store, tok, 64)]
    pool = ThreadPoolExecutor(4)
    for conn, servicer in zip(conns[:2], servers):
        serve_over_nats(conn, servicer, CONTEXT, pool)
    stub = NatsStub(conns[2], CONTEXT, default_timeout=5)
    sid = f"s-{uuid.uuid4().hex[:8]}"
    stub.AppendTurn(recognizer_pb2.AppendTurnRequest(session_id=sid, turn=common_pb2.Turn(role="assistant", text="hi zorblatt")))
    assert stub.GetSession(recognizer_pb2.GetSessionRequest(session_id=sid)).turns[0].text == "hi zorblatt"
    with pytest.raises(BusError) as err:
        stub.GetSession(recognizer_pb2.GetSessionRequest(session_id="missing-" + sid))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "no session" in err.value.details()
    with tracer().start_as_current_span("client") as span:
        client_trace = span.get_span_context().trace_id
        for _ in range(30):
            stub.Assemble(internal_pb2.AssembleRequest(session_id=sid))
    assert servers[0].calls and servers[1].calls, "the queue group should spread requests over both instances"
    assert set(servers[0].calls + servers[1].calls) == {client_trace}
    with pytest.raises(BusError) as err:
        NatsStub(conns[2], DECODER, 2).Decode(internal_pb2.DecodeRequest())
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
