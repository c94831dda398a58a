"""The HTTP front through the official `openai` client and plain HTTP: the same recognition as gRPC Recognize,
OpenAI's response formats, OpenAI-shaped errors, API keys, and no decode for a refused request."""

import io
import re

import av
import grpc
import httpx
import numpy as np
import openai
import pytest

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.guard import hash_key
from tests.conftest import ROOT, free_port, tone, wav_bytes

SAMPLE = ROOT / "samples" / "dialogue" / "user-2.wav"


def start(settings, **update):
    from services.app import serve_embedded

    return serve_embedded(settings.model_copy(update=update), port=free_port(), http_port=0)


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_bundle):
    from shared.settings import load_settings

    tmp = tmp_path_factory.mktemp("http")
    settings = load_settings(model=str(tiny_bundle), rl_store=str(tmp / "rl.jsonl"), beam_size=3, nbest=3, max_upload_mb=1)
    running = start(settings)
    yield running
    running.stop(0.5)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=f"http://127.0.0.1:{server.http_port}/v1", api_key="unused", max_retries=0)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=f"http://127.0.0.1:{server.http_port}", timeout=60) as c:
        yield c


def grpc_text(server, audio: bytes, **ctx) -> str:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=audio),
                                              context=common_pb2.RequestContext(**ctx))
        return recognizer_pb2_grpc.RecognizerStub(ch).Recognize(req, timeout=60).alternatives[0].text


def encode(samples: np.ndarray, fmt: str, codec: str, rate: int = 48_000) -> bytes:
    """The audio as another container would carry it (PyAV's encoders)."""
    from scipy.signal import resample_poly

    up = resample_poly(samples, rate // 1000, 16).astype(np.float32)[None, :]
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(up, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    return buf.getvalue()


def test_the_openai_client_gets_the_text_grpc_recognize_gives(server, client) -> None:
    audio = SAMPLE.read_bytes()
    out = client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", audio))
    assert out.text and out.text == grpc_text(server, audio)
    text = client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", audio), response_format="text")
    assert text.strip() == out.text


def test_prompt_and_hotwords_become_the_request_context(server, client) -> None:
    audio = SAMPLE.read_bytes()
    out = client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", audio), prompt="Kilbride Street",
                                             extra_body={"hotwords": "Tomasz Wrobel, Siobhan"})
    assert out.text == grpc_text(server, audio, prompt="Kilbride Street", hotwords=["Tomasz Wrobel", "Siobhan"])


@pytest.mark.parametrize("fmt, codec, name", [("mp3", "mp3", "a.mp3"), ("ogg", "libopus", "a.ogg"),
                                              ("webm", "libopus", "a.webm"), ("ipod", "aac", "a.m4a"),
                                              ("flac", "flac", "a.flac")])
def test_the_usual_containers_decode(client, fmt, codec, name) -> None:
    out = client.audio.transcriptions.create(model="whisper-1", file=(name, encode(tone(1.2), fmt, codec)),
                                             response_format="verbose_json")
    assert out.duration == pytest.approx(1.2, abs=0.1)


def test_verbose_json_has_words_segments_and_our_turn_id(client) -> None:
    out = client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", SAMPLE.read_bytes()),
                                             response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert out.language == "english" and out.duration == pytest.approx(3.6, abs=0.1)
    words = out.words
    assert words and " ".join(w.word for w in words) == out.text
    assert all(0 <= w.start <= w.end <= out.duration + 0.1 for w in words)
    assert out.segments and " ".join(s.text for s in out.segments) == out.text
    assert out.segments[0].start <= words[0].start and out.segments[-1].end >= words[-1].end
    extra = out.model_extra or {}
    assert len(extra["turn_id"]) == 32 and 0 <= extra["confidence"] <= 1
    plain = client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", SAMPLE.read_bytes()),
                                               response_format="verbose_json")
    assert plain.words is None  # words only when asked for, as OpenAI


@pytest.mark.parametrize("kind", ["srt", "vtt"])
def test_subtitle_cues(client, kind) -> None:
    body = client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", SAMPLE.read_bytes()),
                                              response_format=kind)
    sep = "," if kind == "srt" else r"\."
    spans = re.findall(rf"(\d\d):(\d\d):(\d\d){sep}(\d\d\d) --> (\d\d):(\d\d):(\d\d){sep}(\d\d\d)", body)
    assert spans, body
    if kind == "vtt":
        assert body.startswith("WEBVTT\n\n")
    else:
        assert body.startswith("1\n")
    for span in spans:
        start = int(span[2]) + int(span[3]) / 1000
        end = int(span[6]) + int(span[7]) / 1000
        assert 0 <= start <= end <= 3.7


def test_models_lists_the_loaded_bundle(client, http) -> None:
    ids = [m.id for m in client.models.list().data]
    assert ids == ["tiny-random"]
    assert http.get(f"/v1/models/{ids[0]}").json()["id"] == ids[0]
    assert http.get("/v1/models/whisper-1").status_code == 200
    assert http.get("/v1/models/nope").json()["error"]["type"] == "not_found_error"


DECODE_ERRORS = ("not a supported audio file", "cannot decode", "empty")  # raised by the decode itself


@pytest.mark.parametrize(
    "files, data, status, phrase",
    [
        ({"file": ("a.txt", b"hello there " * 50)}, {"model": "whisper-1"}, 400, "not a supported audio file"),
        ({"file": ("a.wav", b"RIFF\0\0\0\0WAVE" + b"\0" * 64)}, {"model": "whisper-1"}, 400, "cannot decode"),
        ({"file": ("a.wav", b"")}, {"model": "whisper-1"}, 400, "empty"),
        ({"file": ("a.wav", wav_bytes(tone(0.5)))}, {"response_format": "xml"}, 400, "response_format"),
        ({"file": ("a.wav", wav_bytes(tone(0.5)))}, {"model": "gpt-4o"}, 404, "no model"),
        ({"file": ("a.wav", wav_bytes(tone(0.5)))}, {"language": "xx"}, 400, "language"),
        ({"file": ("a.wav", wav_bytes(tone(0.5)))}, {"temperature": "hot"}, 400, "temperature"),
        ({"file": ("a.wav", wav_bytes(tone(0.5)))}, {"timestamp_granularities[]": "char"}, 400, "granularities"),
        ({"file": ("a.wav", wav_bytes(tone(0.5)))}, {"session_id": "x" * 500}, 400, "session_id"),
        ({}, {"model": "whisper-1"}, 400, "'file'"),
        ({"file": ("a.wav", wav_bytes(tone(60.0)))}, {}, 413, "larger than 1 MB"),
    ],
)
def test_bad_uploads_get_openai_shaped_errors_and_cost_no_decode(http, monkeypatch, files, data, status, phrase) -> None:
    import services.http.app as front

    decoded = []
    real = front.decode_media
    monkeypatch.setattr(front, "decode_media", lambda *a: decoded.append(1) or real(*a))
    resp = http.post("/v1/audio/transcriptions", files=files, data=data)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert phrase in error["message"] and error["type"]
    assert len(decoded) == (phrase in DECODE_ERRORS)  # a request refused before its audio is never decoded


def test_api_keys_and_tenant_scoped_sessions(settings, tmp_path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"alpha {hash_key('key-a')}\nbeta {hash_key('key-b')}\n")
    running = start(settings, api_keys_file=str(keys))
    base = f"http://127.0.0.1:{running.http_port}"
    try:
        anonymous = openai.OpenAI(base_url=f"{base}/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            anonymous.audio.transcriptions.create(model="whisper-1", file=("a.wav", wav_bytes(tone(0.5))))
        alpha = openai.OpenAI(base_url=f"{base}/v1", api_key="key-a", max_retries=0)
        alpha.audio.transcriptions.create(model="whisper-1", file=("a.wav", SAMPLE.read_bytes()),
                                          extra_body={"session_id": "s1"})
        seen = httpx.get(f"{base}/v1/sessions/s1", headers={"authorization": "Bearer key-a"}).json()
        other = httpx.get(f"{base}/v1/sessions/s1", headers={"authorization": "Bearer key-b"})
        assert len(seen["turns"]) == 1 and seen["session_id"] == "s1"
        assert other.status_code == 404 and other.json()["error"]["type"] == "not_found_error"  # tenant beta has no s1
        assert httpx.delete(f"{base}/v1/sessions/s1", headers={"authorization": "Bearer key-a"}).json()["deleted"]
        assert httpx.get(f"{base}/v1/models").status_code == 401
    finally:
        running.stop(0.5)


def test_admission_is_shared_with_grpc(settings) -> None:
    """With every Recognize slot taken, an upload is refused with 429 at once."""
    running = start(settings, max_calls=1)
    try:
        guard = running.guard
        assert guard.admission.enter("call", "someone") is None  # the one slot, as a gRPC call in flight would
        resp = httpx.post(f"http://127.0.0.1:{running.http_port}/v1/audio/transcriptions",
                          files={"file": ("a.wav", wav_bytes(tone(0.5)))}, timeout=30)
        assert resp.status_code == 429 and "busy" in resp.json()["error"]["message"]
        guard.admission.leave("call", "someone")
    finally:
        running.stop(0.5)


def test_metrics_count_requests_stages_and_audio(server, client, http) -> None:
    client.audio.transcriptions.create(model="whisper-1", file=("turn.wav", SAMPLE.read_bytes()))
    grpc_text(server, SAMPLE.read_bytes())
    text = http.get("/metrics").text

    def value(name: str, **labels: str) -> float:
        for line in text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    assert value("seedasr_http_requests_total", route="/v1/audio/transcriptions", status="200") >= 1
    assert value("seedasr_grpc_requests_total", service="seedasr.v1.Recognizer", method="Recognize", code="OK") >= 1
    assert value("seedasr_stage_duration_seconds_count", stage="end_to_end") >= 2
    assert value("seedasr_stage_duration_seconds_count", stage="encode") >= 2
    assert value("seedasr_audio_seconds_total", kind="request") >= 7
    assert re.search(r"^seedasr_inflight_calls \d", text, re.M)  # process-wide: other tests' calls may be in it


def test_healthz_and_the_page(http) -> None:
    assert http.get("/healthz").json() == {"status": "serving"}
    page = http.get("/")
    assert page.status_code == 200 and "/v1/stream" in page.text + http.get("/static/app.js").text


def test_https_with_the_grpc_certificate_and_mtls(settings, tmp_path) -> None:
    import subprocess

    certs = tmp_path / "certs"
    subprocess.run(["bash", str(ROOT / "scripts" / "dev_certs.sh"), str(certs)], check=True, capture_output=True)
    tls = {"tls_cert": str(certs / "server.pem"), "tls_key": str(certs / "server.key")}
    running = start(settings, **tls)
    try:
        url = f"https://localhost:{running.http_port}/healthz"
        assert httpx.get(url, verify=str(certs / "ca.pem")).json() == {"status": "serving"}
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://localhost:{running.http_port}/healthz")  # no plaintext beside TLS
    finally:
        running.stop(0.5)
    running = start(settings, **tls, tls_client_ca=str(certs / "ca.pem"))
    try:
        import ssl

        url = f"https://localhost:{running.http_port}/healthz"
        with pytest.raises((httpx.HTTPError, ssl.SSLError)):
            httpx.get(url, verify=str(certs / "ca.pem"))  # no client certificate
        context = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        context.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
        assert httpx.get(url, verify=context).status_code == 200
    finally:
        running.stop(0.5)


def test_stop_drains_and_frees_the_port(settings) -> None:
    running = start(settings)
    port = running.http_port
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert running.stop(1.0) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_a_bug_is_an_openai_shaped_500_and_the_server_goes_on(http, monkeypatch) -> None:
    import services.http.app as front

    def broken(*_args):
        raise RuntimeError("boom")

    monkeypatch.setattr(front, "decode_media", broken)
    resp = http.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(tone(0.5)))})
    assert resp.status_code == 500 and resp.json()["error"]["type"] == "server_error"
    assert "boom" not in resp.text  # details stay in the server's log
    monkeypatch.undo()  # uvicorn closes the connection after an app error: the next request opens another
    assert httpx.post(f"{http.base_url}/v1/audio/transcriptions", files={"file": ("a.wav", wav_bytes(tone(0.5)))},
                      timeout=60).status_code == 200


def test_a_tiny_upload_at_an_absurd_sample_rate_is_refused_before_it_grows(http) -> None:
    """2,000 samples at 1 Hz would be 32 million samples at 16 kHz: refused from the stream's header."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("pcm_s16le", rate=1)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 1
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    resp = http.post("/v1/audio/transcriptions", files={"file": ("a.mka", buf.getvalue())})
    assert resp.status_code == 400 and "sample rate 1 Hz" in resp.json()["error"]["message"]


def test_metrics_do_not_grow_a_series_per_made_up_method(http) -> None:
    http.request("FOOBAR", "/v1/models")
    text = http.get("/metrics").text
    assert 'method="FOOBAR"' not in text and 'method="other"' in text
