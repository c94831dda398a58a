"""Hardening of the public server: limits before work, admission, stream timeouts, malformed messages,
internal services off the public port, API keys with tenant-scoped sessions, TLS/mTLS, drain on stop."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seedasr.v1 import common_pb2, internal_pb2, internal_pb2_grpc, recognizer_pb2, recognizer_pb2_grpc
from tests.conftest import ROOT, free_port, tone, wav_bytes

RECOGNIZER = recognizer_pb2.DESCRIPTOR.services_by_name["Recognizer"]


@pytest.fixture
def serve(settings):
    """serve(**settings overrides) -> a running embedded server, stopped after the test."""
    from services.app import serve_embedded

    started = []

    def start(**overrides):
        running = serve_embedded(settings.model_copy(update=overrides), port=free_port())
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop(0.2)


def _stub(port: int):
    return recognizer_pb2_grpc.RecognizerStub(grpc.insecure_channel(f"127.0.0.1:{port}"))


def _healthy(channel: grpc.Channel) -> bool:
    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_malformed_messages_are_invalid_argument_not_internal(serve) -> None:
    running = serve()
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    raw = channel.unary_unary("/seedasr.v1.Recognizer/Recognize", request_serializer=None, response_deserializer=None)
    for junk in (b"\xff\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x12\x05abc"):
        code, details = _code(lambda j=junk: raw(j, timeout=5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in details
    stream = channel.stream_stream("/seedasr.v1.Recognizer/StreamingRecognize", request_serializer=None,
                                   response_deserializer=None)
    code, _ = _code(lambda: list(stream(iter([b"\xff\xff\xff"]), timeout=5)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert _healthy(channel)


@pytest.mark.parametrize("context, session_id, language, needle", [
    (common_pb2.RequestContext(hotwords=["w"] * 100_000), "", "", "SEEDASR_MAX_HOTWORDS"),
    (common_pb2.RequestContext(hotwords=["x" * 20_000]), "", "", "SEEDASR_MAX_HOTWORD_CHARS"),
    (common_pb2.RequestContext(prompt="word " * 200_000), "", "", "SEEDASR_MAX_PROMPT_CHARS"),
    (common_pb2.RequestContext(history=["turn"] * 1000), "", "", "SEEDASR_MAX_HISTORY_TURNS"),
    (common_pb2.RequestContext(history=["y" * 10_000] * 3), "", "", "SEEDASR_MAX_HISTORY_CHARS"),
    (common_pb2.RequestContext(), "s" * 20_000, "", "session_id"),
    (common_pb2.RequestContext(), "", "e" * 20_000, "language"),
])
def test_oversized_fields_are_refused_before_any_work(serve, context, session_id, language, needle) -> None:
    stub = _stub(serve().port)
    req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=wav_bytes(tone(0.5))), context=context,
                                          session_id=session_id, config=common_pb2.RecognitionConfig(language=language))
    code, details = _code(lambda: stub.Recognize(req, timeout=10))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and needle in details


def _config_then_idle(session_id: str, hold: threading.Event):
    yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(session_id=session_id))
    hold.wait(30)


def test_idle_streams_cannot_starve_health_or_recognize(serve) -> None:
    running = serve(max_streams=4, max_streams_per_client=2, workers=2, stream_idle_s=60)
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = recognizer_pb2_grpc.RecognizerStub(channel)
    hold = threading.Event()
    calls = [stub.StreamingRecognize(_config_then_idle(f"idle-{i}", hold), timeout=30) for i in range(2)]
    time.sleep(0.5)
    try:
        extra = stub.StreamingRecognize(_config_then_idle("one-too-many", hold), timeout=10)
        code, details = _code(lambda: list(extra))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "SEEDASR_MAX_STREAMS_PER_CLIENT" in details
        assert _healthy(channel)
        req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=wav_bytes(tone(0.5))))
        assert stub.Recognize(req, timeout=20).turn_id
    finally:
        hold.set()
        for call in calls:
            call.cancel()


def test_a_silent_stream_is_closed_after_the_idle_timeout(serve) -> None:
    stub = _stub(serve(stream_idle_s=0.5).port)
    hold = threading.Event()
    code, details = _code(lambda: list(stub.StreamingRecognize(_config_then_idle("quiet", hold), timeout=10)))
    hold.set()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "SEEDASR_STREAM_IDLE_S" in details


def test_audio_faster_than_the_rate_cap_is_refused(serve) -> None:
    stub = _stub(serve(stream_rate=1.0, stream_burst_s=1.0).port)
    pcm = (tone(1.0) * 32767).astype("<i2").tobytes()

    def flood():
        yield recognizer_pb2.StreamingRecognizeRequest(
            streaming_config=recognizer_pb2.StreamingConfig(silence_ms=-1))
        for _ in range(10):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm)

    code, details = _code(lambda: list(stub.StreamingRecognize(flood(), timeout=20)))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "real time" in details


def test_internal_services_are_not_on_the_public_port_unless_asked(serve) -> None:
    pcm = (tone(0.3) * 32767).astype("<i2").tobytes()
    for expose, expected in ((False, grpc.StatusCode.UNIMPLEMENTED), (True, None)):
        ch = grpc.insecure_channel(f"127.0.0.1:{serve(expose_internal=expose).port}")
        encode = internal_pb2_grpc.EncoderStub(ch).Encode
        if expected is None:
            assert encode(internal_pb2.EncodeRequest(pcm16=pcm), timeout=10).speech.shape
        else:
            assert _code(lambda e=encode: e(internal_pb2.EncodeRequest(pcm16=pcm), timeout=10))[0] == expected
            reward = internal_pb2_grpc.RewardStub(ch).GetSample
            assert _code(lambda r=reward: r(internal_pb2.GetSampleRequest(turn_id="x"), timeout=5))[0] == expected


def _keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text("# tenant sha256(key)\n" + "".join(
        f"{tenant} {hashlib.sha256(key.encode()).hexdigest()}\n" for tenant, key in (("acme", "key-a"), ("bolt", "key-b"))))
    return path


def test_api_keys_scope_sessions_to_their_tenant(serve, tmp_path) -> None:
    running = serve(api_keys_file=str(_keys(tmp_path)))
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = recognizer_pb2_grpc.RecognizerStub(channel)
    a, b = [("authorization", "Bearer key-a")], [("authorization", "Bearer key-b")]
    get = recognizer_pb2.GetSessionRequest(session_id="shared-name")
    for metadata in ((), [("authorization", "Bearer wrong")], [("authorization", "key-a")]):
        assert _code(lambda m=metadata: stub.GetSession(get, timeout=5, metadata=m))[0] == grpc.StatusCode.UNAUTHENTICATED
    assert _healthy(channel)  # probes need no key
    turn = common_pb2.Turn(role="assistant", text="Calling Zorblatt")
    stub.AppendTurn(recognizer_pb2.AppendTurnRequest(session_id="shared-name", turn=turn), timeout=5, metadata=a)
    got = stub.GetSession(get, timeout=5, metadata=a)
    assert got.session_id == "shared-name" and [t.text for t in got.turns] == ["Calling Zorblatt"]
    assert _code(lambda: stub.GetSession(get, timeout=5, metadata=b))[0] == grpc.StatusCode.NOT_FOUND
    delete = recognizer_pb2.DeleteSessionRequest(session_id="shared-name")
    assert _code(lambda: stub.DeleteSession(delete, timeout=5, metadata=b))[0] == grpc.StatusCode.NOT_FOUND
    assert stub.GetSession(get, timeout=5, metadata=a).turns
    req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=wav_bytes(tone(0.5))), session_id="s2")
    assert stub.Recognize(req, timeout=20, metadata=b).turn_id


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(ROOT / "scripts" / "dev_certs.sh"), str(out)], check=True, capture_output=True)
    return out


def test_tls_and_mtls(serve, settings, certs, tmp_path) -> None:
    from services.channels import open_channel

    tls = {"tls_cert": str(certs / "server.pem"), "tls_key": str(certs / "server.key")}
    client = settings.model_copy(update={"tls_ca": str(certs / "ca.pem")})
    port = serve(**tls, api_keys_file=str(_keys(tmp_path))).port
    with open_channel(f"localhost:{port}", client, api_key="key-a") as ch:
        assert _healthy(ch)
        req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=wav_bytes(tone(0.5))))
        assert recognizer_pb2_grpc.RecognizerStub(ch).Recognize(req, timeout=20).turn_id
    with grpc.insecure_channel(f"127.0.0.1:{port}") as plain:
        assert _code(lambda: _healthy(plain))[0] == grpc.StatusCode.UNAVAILABLE
    with pytest.raises(ValueError, match="TLS"):
        open_channel(f"localhost:{port}", settings, api_key="key-a")  # never send a key in the clear

    mtls_port = serve(**tls, tls_client_ca=str(certs / "ca.pem")).port
    with open_channel(f"localhost:{mtls_port}", client) as ch:  # no client certificate
        assert _code(lambda: _healthy(ch))[0] == grpc.StatusCode.UNAVAILABLE
    with_cert = client.model_copy(update={"tls_client_cert": str(certs / "client.pem"),
                                          "tls_client_key": str(certs / "client.key")})
    with open_channel(f"localhost:{mtls_port}", with_cert) as ch:
        assert _healthy(ch)


class SlowRecognizer(recognizer_pb2_grpc.RecognizerServicer):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def Recognize(self, request, context):
        end = time.monotonic() + self.seconds
        while time.monotonic() < end and context.is_active():
            time.sleep(0.02)
        return recognizer_pb2.RecognizeResponse(turn_id="slow")


def _slow_server(settings, seconds: float, **overrides):
    from services.runtime import Registration, start_server

    return start_server(settings.model_copy(update=overrides), [Registration(SlowRecognizer(seconds), RECOGNIZER, True)],
                        port=free_port())


def _call_in_background(port: int) -> tuple[threading.Thread, list]:
    out: list = []

    def call() -> None:
        try:
            out.append(_stub(port).Recognize(recognizer_pb2.RecognizeRequest(), timeout=20).turn_id)
        except grpc.RpcError as err:
            out.append(err.code())

    thread = threading.Thread(target=call)
    thread.start()
    return thread, out


def test_admission_refuses_calls_over_the_limit_and_health_still_answers(settings) -> None:
    running = _slow_server(settings, 1.5, max_calls=1, workers=1)
    try:
        thread, out = _call_in_background(running.port)
        time.sleep(0.3)
        code, details = _code(lambda: _stub(running.port).Recognize(recognizer_pb2.RecognizeRequest(), timeout=5))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "SEEDASR_MAX_CALLS" in details
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            assert _healthy(ch)
        thread.join()
        assert out == ["slow"]
    finally:
        running.stop(0.1)


@pytest.mark.parametrize("work_s, grace_s, cancelled, result", [(0.5, 3.0, 0, "slow"), (5.0, 0.5, 1, None)])
def test_stop_drains_calls_within_grace_and_reports_the_cancelled(settings, work_s, grace_s, cancelled, result) -> None:
    running = _slow_server(settings, work_s)
    thread, out = _call_in_background(running.port)
    time.sleep(0.3)
    started = time.monotonic()
    assert running.stop(grace_s) == cancelled
    assert time.monotonic() - started < grace_s + 1.0
    thread.join()
    assert out[0] == result if result else isinstance(out[0], grpc.StatusCode)


def test_apikey_command_makes_a_key_the_server_accepts(serve, tmp_path, capsys) -> None:
    from services.cli import main

    keys = tmp_path / "keys.txt"
    assert main(["apikey", "acme", "--file", str(keys)]) == 0
    key = capsys.readouterr().out.strip()
    assert key not in keys.read_text() and keys.read_text().startswith("acme ")
    assert main(["apikey", "not a tenant", "--file", str(keys)]) == 2
    stub = _stub(serve(api_keys_file=str(keys)).port)
    get = recognizer_pb2.GetSessionRequest(session_id="none")
    assert _code(lambda: stub.GetSession(get, timeout=5, metadata=[("authorization", f"Bearer {key}")]))[0] == \
        grpc.StatusCode.NOT_FOUND  # authenticated: the session just does not exist
