"""The embedded server over real gRPC: recognition, sessions, feedback, streaming, bad input."""

import json
import time

import grpc
import numpy as np
import pytest

from seedasr.v1 import common_pb2, internal_pb2, internal_pb2_grpc, recognizer_pb2, recognizer_pb2_grpc
from tests.conftest import free_port, tone, wav_bytes


@pytest.fixture
def server(settings):
    from services.app import serve_embedded

    settings = settings.model_copy(update={"expose_internal": True})  # tests below call the internal services too
    running = serve_embedded(settings, port=free_port())
    yield running, settings
    running.stop(0.5)


@pytest.fixture
def stub(server):
    channel = grpc.insecure_channel(f"127.0.0.1:{server[0].port}")
    yield recognizer_pb2_grpc.RecognizerStub(channel)
    channel.close()


def recognize(stub, audio: bytes, **kw):
    req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=audio), **kw)
    return stub.Recognize(req, timeout=30)


def test_recognize_returns_nbest_timings_and_turn(stub) -> None:
    resp = recognize(stub, wav_bytes(tone(1.5)), config=common_pb2.RecognitionConfig(nbest=2, word_timestamps=True))
    assert resp.turn_id and 1 <= len(resp.alternatives) <= 2
    assert resp.alternatives[0].score <= 0
    assert resp.timings.encode_ms > 0 and resp.timings.decode_ms > 0 and resp.timings.total_ms > 0
    assert abs(resp.audio_seconds - 1.5) < 0.01
    words = resp.alternatives[0].words
    assert len(words) == len(resp.alternatives[0].text.split())
    assert all(0 <= w.start_s <= w.end_s <= 1.6 for w in words)


@pytest.mark.parametrize(
    "audio, config, code",
    [
        (b"", None, grpc.StatusCode.INVALID_ARGUMENT),
        (b"garbage" * 50, None, grpc.StatusCode.INVALID_ARGUMENT),
        (wav_bytes(tone(0.5), channels=6), None, grpc.StatusCode.INVALID_ARGUMENT),
        (wav_bytes(tone(0.5)), common_pb2.RecognitionConfig(beam_size=500), grpc.StatusCode.INVALID_ARGUMENT),
        (wav_bytes(tone(0.5)), common_pb2.RecognitionConfig(context_weight=3.0), grpc.StatusCode.INVALID_ARGUMENT),
        (wav_bytes(tone(0.5)), common_pb2.RecognitionConfig(bias_bonus=-1.0), grpc.StatusCode.INVALID_ARGUMENT),
        (wav_bytes(tone(0.5)), common_pb2.RecognitionConfig(correction_margin=-1.0), grpc.StatusCode.INVALID_ARGUMENT),
        (wav_bytes(tone(0.5)), common_pb2.RecognitionConfig(language="xx"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
def test_bad_requests_get_clear_statuses_and_the_server_keeps_serving(stub, audio, config, code) -> None:
    with pytest.raises(grpc.RpcError) as err:
        recognize(stub, audio, config=config)
    assert err.value.code() == code and err.value.details()
    assert recognize(stub, wav_bytes(tone(0.5))).turn_id


def test_too_long_audio_is_resource_exhausted(settings) -> None:
    from services.app import serve_embedded

    short = settings.model_copy(update={"max_audio_s": 1.0})
    running = serve_embedded(short, port=free_port())
    try:
        ch = grpc.insecure_channel(f"127.0.0.1:{running.port}")
        with pytest.raises(grpc.RpcError) as err:
            recognize(recognizer_pb2_grpc.RecognizerStub(ch), wav_bytes(tone(2.0)))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        running.stop(0.1)


def test_sessions_append_get_delete(stub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSession(recognizer_pb2.GetSessionRequest(session_id="unknown-session"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.GetSession(recognizer_pb2.GetSessionRequest(session_id="bad id!"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    stub.AppendTurn(recognizer_pb2.AppendTurnRequest(
        session_id="s-1", turn=common_pb2.Turn(role="assistant", text="I found Zorblatt in your contacts")), timeout=5)
    resp = recognize(stub, wav_bytes(tone(1.0)), session_id="s-1")
    turns = stub.GetSession(recognizer_pb2.GetSessionRequest(session_id="s-1"), timeout=5).turns
    assert turns[0].role == "assistant"
    if resp.alternatives[0].text:
        assert turns[-1].role == "user" and turns[-1].turn_id == resp.turn_id
    with pytest.raises(grpc.RpcError) as err:
        stub.AppendTurn(recognizer_pb2.AppendTurnRequest(session_id="s-1", turn=common_pb2.Turn(role="robot", text="x")),
                        timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.DeleteSession(recognizer_pb2.DeleteSessionRequest(session_id="s-1"), timeout=5).deleted
    with pytest.raises(grpc.RpcError) as err:
        stub.DeleteSession(recognizer_pb2.DeleteSessionRequest(session_id="s-1"), timeout=5)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_feedback_becomes_a_scored_rl_sample(server, stub) -> None:
    running, settings = server
    resp = recognize(stub, wav_bytes(tone(1.0)), config=common_pb2.RecognitionConfig(nbest=3, beam_size=3))
    ok = stub.SubmitFeedback(recognizer_pb2.SubmitFeedbackRequest(
        turn_id=resp.turn_id, corrected_text="call zorblatt now", keywords=["zorblatt"]), timeout=5)
    assert ok.accepted
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    sample = internal_pb2_grpc.RewardStub(channel).GetSample(internal_pb2.GetSampleRequest(turn_id=resp.turn_id), timeout=5)
    assert sample.reference == "call zorblatt now"
    assert [h.text for h in sample.hypotheses] == [a.text for a in resp.alternatives]
    assert all(h.weighted_wer >= 0 for h in sample.hypotheses)
    rows = [json.loads(line) for line in open(settings.rl_store)]
    assert rows[-1]["turn_id"] == resp.turn_id
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitFeedback(recognizer_pb2.SubmitFeedbackRequest(turn_id="", corrected_text="x"), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _pcm(x: np.ndarray) -> bytes:
    return (x * 32767).astype("<i2").tobytes()


def test_streaming_several_turns_with_end_of_turn(stub) -> None:
    def requests():
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
            session_id="stream-1", interim_results=True, silence_ms=-1))
        for turn in range(2):
            audio = _pcm(tone(1.2, freq=200 + 100 * turn))
            for i in range(0, len(audio), 3200):
                yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=audio[i : i + 3200])
                time.sleep(0.1)  # real time: interims are worked out beside the audio, and a turn's end drops one in flight
            yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)

    responses = list(stub.StreamingRecognize(requests(), timeout=60))
    finals = [r for r in responses if r.is_final]
    interims = [r for r in responses if not r.is_final]
    per_turn = [sum(r.turn_index == t for r in interims) for t in (0, 1)]
    assert 1 <= min(per_turn) and max(per_turn) <= 2, per_turn  # one per 0.5 s of speech
    assert all(0.0 <= r.stability <= 1.0 for r in interims) and all(r.stability == 1.0 for r in finals)
    assert responses.index(next(r for r in interims if r.turn_index == 1)) > responses.index(finals[0])
    assert [r.turn_index for r in finals] == [0, 1]
    assert all(r.result.turn_id for r in finals)
    assert finals[1].turn_start_s == pytest.approx(1.2, abs=0.01)


def test_streaming_vad_ends_turns_on_silence(stub) -> None:
    import soundfile as sf

    from tests.conftest import ROOT

    speech, rate = sf.read(ROOT / "samples" / "dialogue" / "user-1.wav", dtype="float32")
    assert rate == 16_000
    silence = np.zeros(16_000, np.float32)
    audio = _pcm(np.concatenate([speech, silence, speech, silence]))

    def requests():
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(silence_ms=500))
        for i in range(0, len(audio), 6400):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=audio[i : i + 6400])

    finals = [r for r in stub.StreamingRecognize(requests(), timeout=60) if r.is_final]
    assert len(finals) == 2, [(r.turn_start_s, r.turn_end_s) for r in finals]


def test_streaming_rejects_a_missing_config(stub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        list(stub.StreamingRecognize(iter([recognizer_pb2.StreamingRecognizeRequest(audio_chunk=b"\x00\x00")]), timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_oversized_message_is_resource_exhausted(settings) -> None:
    from services.app import serve_embedded

    small = settings.model_copy(update={"max_message_mb": 1})
    running = serve_embedded(small, port=free_port())
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            with pytest.raises(grpc.RpcError) as err:
                recognize(recognizer_pb2_grpc.RecognizerStub(ch), b"\x00" * (2 << 20))
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert recognize(recognizer_pb2_grpc.RecognizerStub(ch), wav_bytes(tone(0.3))).turn_id
    finally:
        running.stop(0.1)


def test_an_appended_assistant_turn_is_in_the_next_turns_context(server, stub) -> None:
    running, _ = server
    stub.AppendTurn(recognizer_pb2.AppendTurnRequest(
        session_id="ctx-1", turn=common_pb2.Turn(role="assistant", text="I found Zorblatt Quux in your contacts")), timeout=5)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        ctx = internal_pb2_grpc.ContextStub(ch).Assemble(
            internal_pb2.AssembleRequest(session_id="ctx-1", context=common_pb2.RequestContext(hotwords=["Kilbride"])),
            timeout=5)
    assert "zorblatt quux" in ctx.text and ctx.text.startswith("kilbride") and ctx.turns_used == 1
    assert list(ctx.bias_phrases) == ["kilbride", "zorblatt quux"]  # hotwords, then rare words of the turns
    assert list(ctx.correction_phrases)[:2] == ["kilbride", "zorblatt"] and "zorblatt quux" in ctx.correction_phrases
    assert len(ctx.token_ids) > 5


def test_decoder_rejects_too_many_bias_phrases(server) -> None:
    running, _ = server
    pcm16 = (tone(0.5) * 32767).astype("<i2").tobytes()
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        speech = internal_pb2_grpc.EncoderStub(ch).Encode(internal_pb2.EncodeRequest(pcm16=pcm16), timeout=10).speech
        decoder = internal_pb2_grpc.DecoderStub(ch)
        ok = decoder.Decode(internal_pb2.DecodeRequest(speech=speech, bias_phrases=["zorblatt"]), timeout=10)
        assert ok.alternatives
        with pytest.raises(grpc.RpcError) as err:
            decoder.Decode(internal_pb2.DecodeRequest(speech=speech, bias_phrases=["x"] * 65), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "bias_phrases" in err.value.details()
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        with pytest.raises(grpc.RpcError) as err:
            internal_pb2_grpc.DecoderStub(ch).Decode(
                internal_pb2.DecodeRequest(speech=speech, correction_phrases=["x"] * 257), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "correction_phrases" in err.value.details()


def test_a_stream_leaves_no_worker_thread_behind(stub) -> None:
    """Interims and speculative finals run on a per-stream worker thread: it ends with the stream, however the
    stream ends (here: the client half-closes while a turn is open)."""
    import threading

    def requests():
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
            interim_results=True, silence_ms=-1))
        audio = _pcm(tone(1.5))
        for i in range(0, len(audio), 3200):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=audio[i : i + 3200])

    assert [r.is_final for r in stub.StreamingRecognize(requests(), timeout=60)][-1]
    deadline = time.monotonic() + 5
    while any(t.name == "stream-worker" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "stream-worker"]
