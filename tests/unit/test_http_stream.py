"""WebSocket streaming (/v1/stream): the same turns as gRPC StreamingRecognize, interims, several turns per
socket, and the gRPC stream's limits, each ending the socket with its close code."""

import json
import threading
import time

import grpc
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from seedasr.v1 import recognizer_pb2, recognizer_pb2_grpc
from services.guard import hash_key
from shared.audio import read_audio_file
from tests.conftest import ROOT, free_port

SAMPLE = ROOT / "samples" / "dialogue"


def pcm(name: str) -> bytes:
    return (read_audio_file(str(SAMPLE / name)) * 32767).astype("<i2").tobytes()


def start(settings, **update):
    from services.app import serve_embedded

    return serve_embedded(settings.model_copy(update=update), port=free_port(), http_port=0)


@pytest.fixture
def server(settings):
    running = start(settings)
    yield running
    running.stop(0.5)


def socket(running, config: dict):
    ws = connect(f"ws://127.0.0.1:{running.http_port}/v1/stream", open_timeout=10)
    ws.send(json.dumps(config))
    return ws


def receive_all(ws, timeout: float = 60) -> tuple[list[dict], int]:
    """Every message until the server closes; and the close code."""
    out = []
    try:
        while True:
            out.append(json.loads(ws.recv(timeout=timeout)))
    except ConnectionClosed as closed:
        return out, closed.rcvd.code if closed.rcvd else 1006


def send_turns(ws, turns: list[bytes], chunk: int = 3200, pause: float = 0.0) -> None:
    for audio in turns:
        for i in range(0, len(audio), chunk):
            ws.send(audio[i:i + chunk])
            time.sleep(pause)
        ws.send(json.dumps({"type": "end_of_turn"}))
    ws.send(json.dumps({"type": "end"}))


def grpc_finals(running, turns: list[bytes], session_id: str) -> list[str]:
    def requests():
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
            session_id=session_id, silence_ms=-1))
        for audio in turns:
            for i in range(0, len(audio), 3200):
                yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=audio[i:i + 3200])
            yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)

    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        return [r.result.alternatives[0].text for r in recognizer_pb2_grpc.RecognizerStub(ch).StreamingRecognize(
            requests(), timeout=120) if r.is_final]


def test_several_turns_per_socket_match_grpc_streaming(server) -> None:
    turns = [pcm("user-1.wav"), pcm("user-2.wav")]
    ws = socket(server, {"session_id": "ws-a", "silence_ms": -1, "interim_results": False, "word_timestamps": True})
    assert json.loads(ws.recv(timeout=10)) == {"type": "ready", "session_id": "ws-a"}
    send_turns(ws, turns)
    messages, code = receive_all(ws)
    finals = [m for m in messages if m["type"] == "final"]
    assert code == 1000 and [m["turn_index"] for m in finals] == [0, 1]
    assert [m["text"] for m in finals] == grpc_finals(server, turns, "grpc-a")
    for m in finals:
        assert len(m["turn_id"]) == 32 and 0 <= m["confidence"] <= 1 and m["stability"] == 1.0
        assert m["turn_end"] > m["turn_start"] and all(w["start"] <= w["end"] for w in m["words"])


def test_interims_grow_while_a_turn_is_spoken(server) -> None:
    ws = socket(server, {"session_id": "ws-b", "silence_ms": -1})
    assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    send_turns(ws, [pcm("user-2.wav")], chunk=3200, pause=0.08)  # 0.1 s of audio every 0.08 s
    messages, code = receive_all(ws)
    interims = [m for m in messages if m["type"] == "interim"]
    assert code == 1000 and interims and messages[-1]["type"] == "final"
    assert all(0 <= m["stability"] <= 1 and m["confidence"] is None for m in interims)


@pytest.mark.parametrize(
    "update, config, payload, code, phrase",
    [
        ({}, "not json", None, 4400, "JSON config"),
        ({}, {"sample_rate": 3}, None, 4400, "sample_rate"),
        ({}, {"colour": "red"}, None, 4400, "unknown config keys"),
        ({}, {"hotwords": "one"}, None, 4400, "bad config"),
        ({}, {"silence_ms": -1}, b"\x01\x02\x03", 4400, "sample size"),
        ({}, {"silence_ms": -1}, "what", 4400, "end_of_turn"),
        ({"stream_idle_s": 1.0}, {"silence_ms": -1}, None, 4408, "no message"),
        ({"stream_rate": 1.0, "stream_burst_s": 1.0}, {"silence_ms": -1}, b"\0\0" * 16000 * 4, 4429, "faster than"),
    ],
)
def test_protocol_errors_and_limits_close_with_a_code_and_a_reason(settings, update, config, payload, code, phrase) -> None:
    running = start(settings, **update)
    try:
        ws = connect(f"ws://127.0.0.1:{running.http_port}/v1/stream", open_timeout=10)
        ws.send(config if isinstance(config, str) else json.dumps(config))
        if payload is not None:
            time.sleep(0.2)
            ws.send(payload)
        messages, got = receive_all(ws, timeout=30)
        errors = [m for m in messages if m["type"] == "error"]
        assert got == code and errors and phrase in errors[-1]["message"], messages
        deadline = time.monotonic() + 5
        while running.guard.admission.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.guard.admission.streams == 0  # the slot is given back
    finally:
        running.stop(0.5)


def test_keys_in_the_config_and_per_client_stream_limits(settings, tmp_path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alpha {hash_key('key-a')}\n")
    running = start(settings, api_keys_file=str(keys), max_streams_per_client=1)
    try:
        refused = socket(running, {"api_key": "nope"})
        messages, code = receive_all(refused, timeout=10)
        assert code == 4401 and "API key" in messages[-1]["message"]
        first = socket(running, {"api_key": "key-a", "silence_ms": -1})
        assert json.loads(first.recv(timeout=10))["type"] == "ready"
        second = socket(running, {"api_key": "key-a"})
        messages, code = receive_all(second, timeout=10)
        assert code == 4429 and "streams already open" in messages[-1]["message"]
        first.close()  # the client goes away mid-stream: its slot comes back
        deadline = time.monotonic() + 10
        while running.guard.admission.streams and time.monotonic() < deadline:
            time.sleep(0.05)
        assert running.guard.admission.streams == 0
        third = socket(running, {"api_key": "key-a"})
        assert json.loads(third.recv(timeout=10))["type"] == "ready"
        third.close()
    finally:
        running.stop(0.5)


def test_silence_only_gives_no_final(server) -> None:
    ws = socket(server, {"session_id": "ws-c"})
    assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    send_turns(ws, [np.zeros(16000, "<i2").tobytes()])
    messages, code = receive_all(ws)
    assert code == 1000 and not [m for m in messages if m["type"] == "final"]


def test_a_client_that_goes_away_mid_turn_commits_nothing(server) -> None:
    import httpx

    ws = socket(server, {"session_id": "ws-gone", "silence_ms": -1, "interim_results": False})
    assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    audio = pcm("user-2.wav")
    for i in range(0, len(audio), 3200):
        ws.send(audio[i:i + 3200])
    ws.close()  # no end_of_turn, no "end": the client is gone
    time.sleep(1.5)
    resp = httpx.get(f"http://127.0.0.1:{server.http_port}/v1/sessions/ws-gone")
    assert resp.status_code == 404 or resp.json()["turns"] == []
    deadline = time.monotonic() + 5
    while server.guard.admission.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.guard.admission.streams == 0


def test_a_stop_finishes_the_open_turn_then_closes_with_going_away(settings) -> None:
    running = start(settings)
    ws = socket(running, {"session_id": "ws-drain", "silence_ms": -1, "interim_results": False})
    assert json.loads(ws.recv(timeout=10))["type"] == "ready"
    audio = pcm("user-1.wav")
    for i in range(0, len(audio), 3200):
        ws.send(audio[i:i + 3200])
    time.sleep(0.5)  # the audio is in
    stopper = threading.Thread(target=running.stop, args=(10.0,))
    stopper.start()
    messages, code = receive_all(ws)
    stopper.join()
    assert code == 1001 and [m["type"] for m in messages] == ["final"]


def test_interim_results_must_be_a_boolean(server) -> None:
    ws = socket(server, {"interim_results": "false"})
    messages, code = receive_all(ws, timeout=10)
    assert code == 4400 and "interim_results" in messages[-1]["message"]
