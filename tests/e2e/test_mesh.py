"""The mesh as separate processes (encoder, context, decoder, gateway, reward, Celery worker) over
real NATS, Redis and Celery, called over gRPC exactly as a client would."""

import json
import os
import subprocess
import sys
import uuid

import grpc
import pytest

from seedasr.v1 import common_pb2, internal_pb2, internal_pb2_grpc, recognizer_pb2, recognizer_pb2_grpc
from services.localmesh import SERVICE_NAMES, start_mesh, wait_for
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.e2e
SAMPLE = ROOT / "samples" / "dialogue" / "user-2.wav"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory, tiny_bundle, nats_url, redis_url):
    logs = tmp_path_factory.mktemp("mesh")
    trace_file = logs / "spans.jsonl"
    env = {"REDIS_URL": redis_url, "NATS_URL": nats_url, "SEEDASR_MODEL": str(tiny_bundle),
           "SEEDASR_TRACE_FILE": str(trace_file), "SEEDASR_BEAM_SIZE": "3", "SEEDASR_NBEST": "3",
           "SEEDASR_BRIDGE_DURABLE": f"e2e-{uuid.uuid4().hex[:8]}", "SEEDASR_BRIDGE_DELIVER": "new",
           "SEEDASR_THREADS": "1"}
    ports = {name: free_port() for name in SERVICE_NAMES}
    http = {"gateway": free_port(), "decoder": free_port()}  # the gateway's HTTP front, the decoder's /metrics
    # gateway, context, reward and the worker run as in the light image: torch and the rest unimportable
    light = {"PYTHONPATH": f"{ROOT / 'tests' / 'support' / 'without_model'}{os.pathsep}{ROOT}"}
    env_of = {name: dict(light) for name in ("gateway", "context", "reward", "worker")}
    env_of["gateway"]["SEEDASR_HTTP_PORT"] = str(http["gateway"])
    env_of["decoder"] = {"SEEDASR_METRICS_PORT": str(http["decoder"])}
    procs = start_mesh(env, logs, ports, env_of)
    try:
        yield {"ports": ports, "procs": procs, "trace_file": trace_file, "http": http}
    finally:
        for p in procs.values():
            p.kill()


def test_mesh_recognizes_like_the_embedded_server(mesh, settings) -> None:
    from services.app import serve_embedded

    audio = common_pb2.Audio(content=SAMPLE.read_bytes())
    ctx = common_pb2.RequestContext(history=["your pharmacy on kilbride street closes at six"], hotwords=["Kilbride"])
    req = recognizer_pb2.RecognizeRequest(audio=audio, context=ctx, config=common_pb2.RecognitionConfig(nbest=3, beam_size=3))
    with grpc.insecure_channel(f"127.0.0.1:{mesh['ports']['gateway']}") as ch:
        mesh_resp = recognizer_pb2_grpc.RecognizerStub(ch).Recognize(req, timeout=60)
    embedded = serve_embedded(settings, port=free_port())
    try:
        with grpc.insecure_channel(f"127.0.0.1:{embedded.port}") as ch:
            local_resp = recognizer_pb2_grpc.RecognizerStub(ch).Recognize(req, timeout=60)
    finally:
        embedded.stop(0.1)
    assert [a.text for a in mesh_resp.alternatives] == [a.text for a in local_resp.alternatives]
    for a, b in zip(mesh_resp.alternatives, local_resp.alternatives):
        assert a.score == pytest.approx(b.score, abs=1e-3)
    assert mesh_resp.timings.encode_ms > 0 and mesh_resp.timings.context_ms > 0 and mesh_resp.timings.decode_ms > 0


def test_sessions_through_the_mesh_use_redis(mesh) -> None:
    sid = f"e2e-{uuid.uuid4().hex[:8]}"
    with grpc.insecure_channel(f"127.0.0.1:{mesh['ports']['gateway']}") as ch:
        stub = recognizer_pb2_grpc.RecognizerStub(ch)
        stub.AppendTurn(recognizer_pb2.AppendTurnRequest(session_id=sid, turn=common_pb2.Turn(role="assistant", text="hello")),
                        timeout=10)
        assert len(stub.GetSession(recognizer_pb2.GetSessionRequest(session_id=sid), timeout=10).turns) == 1
        with pytest.raises(grpc.RpcError) as err:
            stub.GetSession(recognizer_pb2.GetSessionRequest(session_id=sid + "-missing"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.RpcError) as err:
            stub.Recognize(recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=b"\x00garbage")), timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_one_trace_spans_gateway_encoder_context_decoder_nats_and_celery(mesh) -> None:
    from shared.telemetry import setup_telemetry, tracer

    setup_telemetry("e2e-client")
    with grpc.insecure_channel(f"127.0.0.1:{mesh['ports']['gateway']}") as ch:
        stub = recognizer_pb2_grpc.RecognizerStub(ch)
        with tracer().start_as_current_span("client-turn") as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            resp = stub.Recognize(recognizer_pb2.RecognizeRequest(
                session_id=f"trace-{uuid.uuid4().hex[:8]}", audio=common_pb2.Audio(content=SAMPLE.read_bytes())), timeout=60)
            stub.SubmitFeedback(recognizer_pb2.SubmitFeedbackRequest(
                turn_id=resp.turn_id, corrected_text="remind me to stop at kilbride street", keywords=["kilbride"]),
                timeout=10)
    assert resp.trace_id == trace_id
    with grpc.insecure_channel(f"127.0.0.1:{mesh['ports']['reward']}") as ch:
        reward = internal_pb2_grpc.RewardStub(ch)

        def sample():
            try:
                return reward.GetSample(internal_pb2.GetSampleRequest(turn_id=resp.turn_id), timeout=5)
            except grpc.RpcError:
                return None

        found = wait_for(sample, 60, "RL sample")
    assert len(found.hypotheses) == len(resp.alternatives)

    def spans():
        rows = [json.loads(line) for line in mesh["trace_file"].read_text().splitlines() if line.strip()]
        return [r for r in rows if r["trace_id"] == trace_id]

    def complete():
        services = {s["service"] for s in spans()}
        return services >= {"seedasr-gateway", "seedasr-encoder", "seedasr-context", "seedasr-decoder",
                            "seedasr-reward", "seedasr-reward-worker"}

    wait_for(complete, 30, "spans from every service")
    mine = spans()
    names = {s["name"] for s in mine}
    assert any(s["attributes"].get("rpc.system") == "nats" for s in mine), "NATS request-reply spans"
    assert {"asr.turns publish", "asr.feedback publish", "asr.feedback process"} <= names, names
    assert {"apply_async/seedasr.score_feedback", "run/seedasr.score_feedback"} <= names, names
    assert {"/seedasr.v1.Recognizer/Recognize", "/seedasr.v1.Recognizer/SubmitFeedback"} <= names
    assert any(s["service"] == "seedasr-context" and s["attributes"].get("db.system") == "redis" for s in mine)


def test_openai_client_through_the_mesh_gateway_and_metrics_of_each_process(mesh) -> None:
    import httpx
    import openai

    audio = SAMPLE.read_bytes()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{mesh['http']['gateway']}/v1", api_key="unused", max_retries=0)
    text = client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", audio), prompt="Kilbride").text
    req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=audio),
                                          context=common_pb2.RequestContext(prompt="Kilbride"))
    with grpc.insecure_channel(f"127.0.0.1:{mesh['ports']['gateway']}") as ch:
        assert text == recognizer_pb2_grpc.RecognizerStub(ch).Recognize(req, timeout=60).alternatives[0].text
    from prometheus_client.parser import text_string_to_metric_families

    def samples(port: int) -> list:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        return [s for family in text_string_to_metric_families(text) for s in family.samples]

    gateway, decoder = samples(mesh["http"]["gateway"]), samples(mesh["http"]["decoder"])
    assert any(s.name == "seedasr_stage_duration_seconds_count" and s.labels == {"stage": "decode"} and s.value >= 2
               for s in gateway)
    assert any(s.name == "seedasr_http_requests_total" and s.labels["route"] == "/v1/audio/transcriptions" for s in gateway)
    # the decoder's calls arrive as NATS request-reply: counted by service, method and status all the same
    assert any(s.name == "seedasr_grpc_requests_total" and s.value >= 2 and s.labels == {
        "service": "seedasr.v1.Decoder", "method": "Decode", "code": "OK"} for s in decoder)


def test_reflection_only_client_and_clean_sigterm(mesh) -> None:
    port = mesh["ports"]["gateway"]
    out = subprocess.run([sys.executable, str(ROOT / "tests" / "e2e" / "reflection_client.py"), f"127.0.0.1:{port}",
                          str(SAMPLE)], capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["health"] == "SERVING"
    assert "seedasr.v1.Recognizer" in result["services"]
    assert result["text"] is not None and result["has_turn_id"]
    assert result["garbage_status"] == "INVALID_ARGUMENT"
    for name in ("gateway", "decoder", "encoder", "context", "reward"):
        assert mesh["procs"][name].terminate(timeout=30) == 0, mesh["procs"][name].log()
