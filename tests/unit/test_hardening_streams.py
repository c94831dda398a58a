"""Hardening, second round: a stop that always ends, streams that leave nothing behind, constant work per stream
message, range-checked stream configs, tenant-bound feedback, health and reflection that refuse garbage cleanly."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from shared.audio import PcmStream
from tests.conftest import ROOT, free_port, tone, wav_bytes
from tests.unit.test_hardening import _code, _keys, _stub, serve  # noqa: F401  (serve is a fixture)


class StubbornRecognizer(recognizer_pb2_grpc.RecognizerServicer):
    """A call that ignores cancellation for `seconds` (a decode stuck in native code, a peer that never answers)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def Recognize(self, request, context):
        time.sleep(self.seconds)
        return recognizer_pb2.RecognizeResponse(turn_id="late")


def test_stop_ends_within_grace_even_when_a_call_ignores_cancellation(settings) -> None:
    from services.runtime import Registration, start_server

    service = recognizer_pb2.DESCRIPTOR.services_by_name["Recognizer"]
    running = start_server(settings, [Registration(StubbornRecognizer(30), service, True)], port=free_port())
    threading.Thread(target=lambda: _code(lambda: _stub(running.port).Recognize(
        recognizer_pb2.RecognizeRequest(), timeout=60)), daemon=True).start()
    time.sleep(0.3)
    started = time.monotonic()
    assert running.stop(0.5) == 1
    assert time.monotonic() - started < 0.5 + 5


SIGTERM_SCRIPT = """
import os, signal, sys, threading, time
sys.path.insert(0, {root!r})
import grpc
from seedasr.v1 import recognizer_pb2, recognizer_pb2_grpc
from services.runtime import Registration, start_server, wait_for_signal
from shared.settings import load_settings
from tests.unit.test_hardening_streams import StubbornRecognizer
service = recognizer_pb2.DESCRIPTOR.services_by_name["Recognizer"]
running = start_server(load_settings(), [Registration(StubbornRecognizer(120), service, True)], port=0)
stub = recognizer_pb2_grpc.RecognizerStub(grpc.insecure_channel(f"127.0.0.1:{{running.port}}"))
call = stub.Recognize.future(recognizer_pb2.RecognizeRequest(), timeout=300)  # held: a dropped future cancels
threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
sys.exit(wait_for_signal(running, 1.0))
"""


def test_sigterm_exits_within_grace_plus_five_seconds_whatever_the_calls_do() -> None:
    """The handler thread of a call that will not end is a non-daemon thread the interpreter would join for ever."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT.format(root=str(ROOT))], capture_output=True,
                          text=True, timeout=60, cwd=str(ROOT))
    assert time.monotonic() - started < 0.5 + 1.0 + 5 + 5  # start-up, grace, the bound (and an import margin)
    assert proc.returncode == 1, proc.stderr  # a call was cut off


def test_health_answers_not_serving_while_new_calls_are_refused_during_the_drain(settings) -> None:
    from services.runtime import Registration, start_server

    service = recognizer_pb2.DESCRIPTOR.services_by_name["Recognizer"]
    running = start_server(settings, [Registration(StubbornRecognizer(2), service, True)], port=free_port())
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    call = _stub(running.port).Recognize.future(recognizer_pb2.RecognizeRequest(), timeout=60)  # in flight
    time.sleep(0.3)
    stopper = threading.Thread(target=running.stop, args=(3.0,))
    stopper.start()
    time.sleep(0.3)
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
    code, details = _code(lambda: _stub(running.port).Recognize(recognizer_pb2.RecognizeRequest(), timeout=5))
    assert code == grpc.StatusCode.UNAVAILABLE and "shutting down" in details
    stopper.join()
    assert call.result().turn_id == "late"  # the call in flight finished within its grace


def test_malformed_health_and_reflection_messages_are_invalid_argument(serve) -> None:  # noqa: F811
    channel = grpc.insecure_channel(f"127.0.0.1:{serve().port}")
    check = channel.unary_unary("/grpc.health.v1.Health/Check", request_serializer=None, response_deserializer=None)
    assert _code(lambda: check(b"\xff\xff\xff", timeout=5))[0] == grpc.StatusCode.INVALID_ARGUMENT
    info = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                 request_serializer=None, response_deserializer=None)
    assert _code(lambda: list(info(iter([b"\xff\xff\xff"]), timeout=5)))[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_health_lists_every_service_it_checks(serve) -> None:  # noqa: F811
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{serve().port}"))
    statuses = stub.List(health_pb2.HealthListRequest(), timeout=5).statuses
    assert {"", "seedasr.v1.Recognizer"} <= set(statuses)
    assert all(s.status == health_pb2.HealthCheckResponse.SERVING for s in statuses.values())


@pytest.mark.parametrize("api", ["ours", "riva"])
def test_a_stream_that_never_sends_its_config_is_closed_after_the_idle_timeout(serve, api) -> None:  # noqa: F811
    from riva.client.proto import riva_asr_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{serve(stream_idle_s=0.5).port}")
    stub = recognizer_pb2_grpc.RecognizerStub(channel) if api == "ours" else riva_asr_pb2_grpc.RivaSpeechRecognitionStub(channel)
    hold = threading.Event()

    def nothing():
        hold.wait(10)
        yield from ()

    started = time.monotonic()
    code, details = _code(lambda: list(stub.StreamingRecognize(nothing(), timeout=10)))
    hold.set()
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED and "SEEDASR_STREAM_IDLE_S" in details
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("silence_ms", [float("inf"), float("-inf"), float("nan"), 1e30, 60_001.0])
def test_non_finite_or_absurd_silence_is_invalid_argument(serve, silence_ms) -> None:  # noqa: F811
    stub = _stub(serve().port)
    config = recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(silence_ms=silence_ms))
    code, details = _code(lambda: list(stub.StreamingRecognize(iter([config]), timeout=10)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "silence_ms" in details


def test_streams_refused_for_their_rate_leave_no_thread_behind(serve) -> None:  # noqa: F811
    stub = _stub(serve(stream_rate=1.0, stream_burst_s=0.5).port)
    pcm = (tone(0.5) * 32767).astype("<i2").tobytes()

    def flood():
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(silence_ms=-1))
        for _ in range(200):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm)

    _code(lambda: list(stub.StreamingRecognize(flood(), timeout=20)))  # warm-up: pools and the VAD exist now
    time.sleep(0.5)
    baseline = threading.active_count()
    for _ in range(6):
        assert _code(lambda: list(stub.StreamingRecognize(flood(), timeout=20)))[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
    deadline = time.monotonic() + 20  # a leaked thread never ends; a busy machine ends them late
    while threading.active_count() > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= baseline, [t.name for t in threading.enumerate()]


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 47999])
def test_one_sample_chunks_resample_as_the_whole_signal_does(rate) -> None:
    """A stream's resampler keeps its state: chunks of any size give the samples one chunk gives."""
    t = np.arange(rate) / rate
    pcm = (np.sin(2 * np.pi * 300 * t) * 8000).astype("<i2").tobytes()
    whole = PcmStream("pcm_s16le", rate).samples(pcm)
    stream = PcmStream("pcm_s16le", rate)
    pieces = np.concatenate([stream.samples(pcm[i:i + 2]) for i in range(0, len(pcm), 2)])
    n = min(len(whole), len(pieces))
    assert n > 0.9 * 16_000
    assert np.max(np.abs(whole[:n] - pieces[:n])) < 1e-4


def test_feedback_is_bound_to_the_tenant_of_its_turn(serve, tmp_path) -> None:  # noqa: F811
    running = serve(api_keys_file=str(_keys(tmp_path)))
    stub = _stub(running.port)
    a, b = [("authorization", "Bearer key-a")], [("authorization", "Bearer key-b")]
    req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=wav_bytes(tone(0.5))))
    turn_id = stub.Recognize(req, timeout=30, metadata=a).turn_id
    feedback = recognizer_pb2.SubmitFeedbackRequest(turn_id=turn_id, corrected_text="call alice", keywords=["alice"])
    code, details = _code(lambda: stub.SubmitFeedback(feedback, timeout=10, metadata=b))
    assert code == grpc.StatusCode.NOT_FOUND and turn_id in details
    assert stub.SubmitFeedback(feedback, timeout=10, metadata=a).accepted
    for forged in ("é" * 32, turn_id.upper(), turn_id[:-1] + "\u0663"):  # not 32 lower-case hex: names no turn
        forged_feedback = recognizer_pb2.SubmitFeedbackRequest(turn_id=forged, corrected_text="call alice")
        code, _ = _code(lambda f=forged_feedback: stub.SubmitFeedback(f, timeout=10, metadata=a))
        assert code == grpc.StatusCode.NOT_FOUND


def test_a_sample_records_the_tenant_of_its_turn() -> None:
    from services.reward.scoring import make_sample

    turn = {"turn_id": "t" * 32, "tenant": "acme", "nbest": [{"text": "call alice", "score": -1.0}]}
    assert make_sample(turn, "call alice", ["alice"])["tenant"] == "acme"
