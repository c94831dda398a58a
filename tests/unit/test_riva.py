"""NVIDIA Riva's ASR API on our port, called with NVIDIA's own client (riva.client): offline, streaming with interims,
word offsets, word boosting, model listing and bad input, all through RecognizerService (services/gateway/riva.py)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import grpc
import numpy as np
import pytest
import riva.client
import soundfile as sf
from riva.client.proto import riva_asr_pb2, riva_audio_pb2

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.app import build_embedded
from services.gateway.riva import G711, RivaRecognizer, StreamAudio, convert_config, riva_registration
from services.guard import hash_key
from services.runtime import start_server
from shared.settings import load_settings
from tests.conftest import ROOT, free_port, tone, wav_bytes

MODEL = "seedasr-test"
ENC = riva_audio_pb2.AudioEncoding
SPEECH = ROOT / "samples" / "dialogue"


def _serve(settings: Any) -> Any:
    regs, _ = build_embedded(settings)
    return start_server(settings, [regs[0], riva_registration(regs[0].servicer, MODEL)], port=free_port())


@pytest.fixture(scope="module")
def served(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    """One server for the module (the `settings` fixture's values; it is function-scoped)."""
    settings = load_settings(model=str(tiny_bundle), rl_store=str(tmp_path_factory.mktemp("rl") / "rl.jsonl"),
                             deadline_s=20.0, beam_size=3, nbest=3)
    running = _serve(settings)
    auth = riva.client.Auth(uri=f"127.0.0.1:{running.port}")
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    yield SimpleNamespace(asr=riva.client.ASRService(auth), ours=recognizer_pb2_grpc.RecognizerStub(channel))
    channel.close()
    auth.channel.close()
    running.stop(0.5)


def ours(served: SimpleNamespace, audio: common_pb2.Audio, **config: Any) -> recognizer_pb2.RecognizeResponse:
    return served.ours.Recognize(recognizer_pb2.RecognizeRequest(audio=audio, config=common_pb2.RecognitionConfig(**config)),
                                 timeout=30)


def riva_config(**kw: Any) -> riva_asr_pb2.RecognitionConfig:
    return riva.client.RecognitionConfig(**{"language_code": "en-US", "enable_automatic_punctuation": True, **kw})


def words_ms(alt: Any) -> list[tuple[str, int, int]]:
    return [(w.word, w.start_time, w.end_time) for w in alt.words]


def stream(served: SimpleNamespace, chunks: Any, config: Any, interim: bool = False) -> list[Any]:
    streaming = riva.client.StreamingRecognitionConfig(config=config, interim_results=interim)
    return [r for resp in served.asr.streaming_response_generator(chunks, streaming) for r in resp.results]


# ---- through the real client and server ------------------------------------------------------------------------
def test_offline_wav_is_our_recognize_with_word_offsets_and_alternatives(served, tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    path.write_bytes(wav_bytes(tone(1.5)))
    config = riva_config(max_alternatives=2, enable_word_time_offsets=True)
    riva.client.add_audio_file_specs_to_config(config, path)
    (result,) = served.asr.offline_recognize(path.read_bytes(), config).results
    want = ours(served, common_pb2.Audio(content=path.read_bytes()), nbest=2, word_timestamps=True)
    assert result.channel_tag == 1 and result.audio_processed == pytest.approx(1.5)
    assert len(result.alternatives) == len(want.alternatives) == 2
    # Riva's finals end with a space so that clients can concatenate them
    assert [a.transcript for a in result.alternatives] == [a.text + " " for a in want.alternatives]
    best, ref = result.alternatives[0], want.alternatives[0]
    assert best.confidence == pytest.approx(ref.confidence)
    assert words_ms(best) == [(w.word, round(w.start_s * 1000), round(w.end_s * 1000)) for w in ref.words]
    assert best.words and 0 <= best.words[0].start_time <= best.words[-1].end_time <= 1500

    (one,) = served.asr.offline_recognize(path.read_bytes(), riva_config()).results  # max_alternatives 0: one
    assert [a.transcript for a in one.alternatives] == [best.transcript] and not one.alternatives[0].words


def test_raw_linear_pcm_stereo_and_mulaw(served) -> None:
    pcm, _ = sf.read(io.BytesIO(wav_bytes(tone(1.2))), dtype="int16")  # the WAV's very samples
    want = ours(served, common_pb2.Audio(content=wav_bytes(tone(1.2)))).alternatives[0].text + " "
    for raw, config in [(pcm.tobytes(), riva_config(encoding=ENC.LINEAR_PCM, sample_rate_hertz=16_000)),
                        (pcm.tobytes(), riva_config()),  # ENCODING_UNSPECIFIED, not a container: 16 kHz pcm_s16le
                        (np.stack([pcm, pcm], 1).tobytes(), riva_config(encoding=ENC.LINEAR_PCM, audio_channel_count=2))]:
        assert served.asr.offline_recognize(raw, config).results[0].alternatives[0].transcript == want

    audioop = pytest.importorskip("audioop")  # G.711 as Python's C module does it (gone in 3.13)
    ulaw = audioop.lin2ulaw(pcm.tobytes(), 2)
    got = served.asr.offline_recognize(ulaw, riva_config(encoding=ENC.MULAW, sample_rate_hertz=16_000))
    expanded = common_pb2.Audio(content=audioop.ulaw2lin(ulaw, 2), encoding="pcm_s16le", sample_rate=16_000)
    assert got.results[0].alternatives[0].transcript == ours(served, expanded).alternatives[0].text + " "


def test_streaming_a_wav_file_gives_interims_then_offlines_final(served, tmp_path: Path) -> None:
    path = tmp_path / "tone.wav"
    path.write_bytes(wav_bytes(tone(2.0)))
    config = riva_config(enable_word_time_offsets=True)
    riva.client.add_audio_file_specs_to_config(config, path)
    config.endpointing_config.stop_history = -1  # endpointing off: the stream is one utterance, ended at half-close
    # the client's file iterator sends the WAV header with the first chunk, and real time with sleep_audio_length
    with riva.client.AudioChunkFileIterator(str(path), 1600, riva.client.sleep_audio_length) as chunks:
        results = stream(served, chunks, config, interim=True)
    (offline,) = served.asr.offline_recognize(path.read_bytes(), config).results
    finals = [r for r in results if r.is_final]
    interims = [r for r in results if not r.is_final]
    assert len(finals) == 1 and finals[0].alternatives[0].transcript == offline.alternatives[0].transcript
    assert words_ms(finals[0].alternatives[0]) == words_ms(offline.alternatives[0])
    assert finals[0].audio_processed == pytest.approx(2.0, abs=1e-4)  # the 44 header bytes were not taken as audio
    assert finals[0].stability == 0.0 and finals[0].channel_tag == 1
    assert list(finals[0].alternatives[0].language_code) == list(offline.alternatives[0].language_code) == ["en"]
    assert interims and results.index(interims[-1]) < results.index(finals[0])
    for r in interims:  # Riva: no words nor confidence before the final; interim text is not padded
        assert 0.0 <= r.stability <= 1.0 and not r.alternatives[0].words and r.alternatives[0].confidence == 0.0
        assert not r.alternatives[0].transcript.endswith(" ") and 0.0 < r.audio_processed < 2.0
    assert [r.audio_processed for r in interims] == sorted(r.audio_processed for r in interims)


def test_streaming_turns_end_on_silence_with_stream_times(served) -> None:
    speech, rate = sf.read(SPEECH / "user-1.wav", dtype="int16")
    silence = np.zeros(rate, np.int16)
    audio = np.concatenate([speech, silence, speech, silence]).tobytes()
    config = riva_config(encoding=ENC.LINEAR_PCM, sample_rate_hertz=rate, enable_word_time_offsets=True)
    riva.client.add_endpoint_parameters_to_config(config, 0, 0, 500, 0, 0, 0)  # stop_history 500 ms -> silence_ms
    chunks = [audio[i:i + 6401] for i in range(0, len(audio), 6401)]  # odd sizes: samples split across chunks
    finals = [r for r in stream(served, chunks, config) if r.is_final]
    assert len(finals) == 2
    first, second = finals
    assert 0 < first.audio_processed < second.audio_processed <= len(audio) / 2 / rate + 1e-3
    # word offsets count from the start of the stream, not of the turn
    assert second.alternatives[0].words[0].start_time >= round(first.audio_processed * 1000)


def test_custom_configuration_session_keeps_the_dialogue(served) -> None:
    config = riva_config()
    config.custom_configuration["session_id"] = "riva-dialogue-1"
    transcript = served.asr.offline_recognize(wav_bytes(tone(1.0)), config).results[0].alternatives[0].transcript
    session = served.ours.GetSession(recognizer_pb2.GetSessionRequest(session_id="riva-dialogue-1"), timeout=10)
    assert [(t.role, t.text) for t in session.turns] == [("user", transcript.strip())]


@pytest.mark.parametrize("config, audio", [
    (riva_config(model="parakeet-ctc-1.1b-asr"), wav_bytes(tone(0.5))),
    (riva_config(language_code="de-DE"), wav_bytes(tone(0.5))),
    (riva_config(), b""),
    (riva_config(encoding=ENC.LINEAR_PCM, audio_channel_count=6), b"\0" * 1200),  # more channels than we take
])
def test_bad_offline_requests_are_invalid_argument(served, config, audio) -> None:
    with pytest.raises(grpc.RpcError) as err:
        served.asr.offline_recognize(audio, config)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()


@pytest.mark.parametrize("config, chunks, says", [
    (riva_config(model="other"), [b"\0" * 3200], "unknown model"),
    (riva_config(encoding=ENC.FLAC), [b"\0" * 3200], "LINEAR_PCM"),
    (riva_config(sample_rate_hertz=16_000), [wav_bytes(tone(0.5, rate=8_000), rate=8_000)], "8000 Hz"),
    (riva_config(language_code="fr-FR"), [b"\0" * 3200], "language"),
])
def test_bad_streams_are_invalid_argument(served, config, chunks, says) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stream(served, chunks, config)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and says in err.value.details()


def test_the_model_is_listed_for_offline_and_streaming_clients(served) -> None:
    listed = served.asr.stub.GetRivaSpeechRecognitionConfig(riva_asr_pb2.RivaSpeechRecognitionConfigRequest())
    assert sorted(c.parameters["type"] for c in listed.model_config) == ["offline", "online"]
    for c in listed.model_config:
        assert c.model_name == MODEL and c.parameters["language_code"] == "en-US" and c.parameters["sample_rate"] == "16000"
        assert c.parameters["languages"] == "en"  # the tiny bundle's: English only
    mine = served.asr.stub.GetRivaSpeechRecognitionConfig(riva_asr_pb2.RivaSpeechRecognitionConfigRequest(model_name=MODEL))
    other = served.asr.stub.GetRivaSpeechRecognitionConfig(riva_asr_pb2.RivaSpeechRecognitionConfigRequest(model_name="x"))
    assert len(mine.model_config) == 2 and not other.model_config


def test_riva_calls_need_our_api_keys(settings, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"acme {hash_key('k-acme')}\n")
    running = _serve(settings.model_copy(update={"api_keys_file": str(keys)}))
    try:
        anonymous = riva.client.ASRService(riva.client.Auth(uri=f"127.0.0.1:{running.port}"))
        with pytest.raises(grpc.RpcError) as err:
            anonymous.offline_recognize(wav_bytes(tone(0.5)), riva_config())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        keyed = riva.client.ASRService(riva.client.Auth(uri=f"127.0.0.1:{running.port}",
                                                        metadata_args=[["authorization", "Bearer k-acme"]]))
        assert keyed.offline_recognize(wav_bytes(tone(0.5)), riva_config()).results[0].alternatives
    finally:
        running.stop(0.5)


# ---- the conversions, against a stand-in for RecognizerService ------------------------------------------------
class Aborted(Exception):
    pass


class Context:
    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


WRITTEN = common_pb2.Alternative(text="Call Tomasz at 7:30, please.", confidence=0.9, words=[
    common_pb2.WordTiming(word=w, start_s=s, end_s=s + 0.2, confidence=0.8)
    for w, s in [("Call", 0.1), ("Tomasz", 0.4), ("at", 0.7), ("7:30,", 0.9), ("please.", 1.3)]])


class Service:
    """Records the requests it gets; answers with WRITTEN."""

    decoding = SimpleNamespace(beam_size=3)

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def Recognize(self, request: Any, context: Any) -> recognizer_pb2.RecognizeResponse:
        self.requests.append(request)
        return recognizer_pb2.RecognizeResponse(alternatives=[WRITTEN], audio_seconds=1.6)

    def StreamingRecognize(self, requests: Iterator[Any], context: Any) -> Iterator[Any]:
        self.requests += list(requests)
        interim = recognizer_pb2.RecognizeResponse(alternatives=[common_pb2.Alternative(text="Call Tom", confidence=0.5)])
        yield recognizer_pb2.StreamingRecognizeResponse(is_final=False, result=interim, stability=0.5, turn_end_s=0.6)
        yield recognizer_pb2.StreamingRecognizeResponse(is_final=True, result=recognizer_pb2.RecognizeResponse(
            alternatives=[WRITTEN]), stability=1.0, turn_start_s=2.0, turn_end_s=3.6)


def test_word_boosting_session_and_prompt_become_our_context() -> None:
    config = riva.client.RecognitionConfig(language_code="en-GB", verbatim_transcripts=True, enable_word_time_offsets=True)
    riva.client.add_word_boosting_to_config(config, ["Kilbride Street", "Tomasz"], 20.0)
    riva.client.add_word_boosting_to_config(config, ["Siobhan", "Tomasz", " "], 4.0)
    riva.client.add_word_boosting_to_config(config, ["uh"], -10.0)  # negative boosting: not ours to do
    config.custom_configuration.update(session_id="dlg-7", prompt="Calling Tomasz Wrobel.", unknown="ignored")
    ours_config, context, session = convert_config(config, MODEL, max_nbest=3)
    assert ours_config == common_pb2.RecognitionConfig(language="en-GB", nbest=1, word_timestamps=True, verbatim=True)
    assert list(context.hotwords) == ["Kilbride Street", "Tomasz", "Siobhan"]
    assert (context.prompt, session) == ("Calling Tomasz Wrobel.", "dlg-7")
    assert convert_config(riva.client.RecognitionConfig(max_alternatives=10, model=MODEL), MODEL, 3)[0].nbest == 3
    for refused in (riva.client.RecognitionConfig(model="conformer-en-US-asr-streaming"),
                    riva.client.RecognitionConfig(diarization_config=riva_asr_pb2.SpeakerDiarizationConfig(
                        enable_speaker_diarization=True))):
        with pytest.raises(ValueError):
            convert_config(refused, MODEL)

    service = Service()
    riva.client.add_audio_file_specs_to_config(config, SPEECH / "user-1.wav")
    RivaRecognizer(service, MODEL).Recognize(riva_asr_pb2.RecognizeRequest(config=config, audio=b"\0\0"), Context())
    (sent,) = service.requests
    assert list(sent.context.hotwords) == ["Kilbride Street", "Tomasz", "Siobhan"] and sent.session_id == "dlg-7"
    assert (sent.audio.encoding, sent.audio.sample_rate, sent.audio.channels) == ("pcm_s16le", 16_000, 1)


@pytest.mark.parametrize("punctuation, transcript, words", [
    (True, "Call Tomasz at 7:30, please. ", ["Call", "Tomasz", "at", "7:30,", "please."]),
    (False, "call tomasz at 7:30 please ", ["call", "tomasz", "at", "7:30", "please"]),
])
def test_punctuation_off_is_lower_case_without_punctuation(punctuation, transcript, words) -> None:
    config = riva.client.RecognitionConfig(enable_automatic_punctuation=punctuation, enable_word_time_offsets=True)
    resp = RivaRecognizer(Service(), MODEL).Recognize(riva_asr_pb2.RecognizeRequest(config=config, audio=b"\0\0"), Context())
    (alt,) = resp.results[0].alternatives
    assert alt.transcript == transcript and [w.word for w in alt.words] == words
    assert [(w.start_time, w.end_time) for w in alt.words][:2] == [(100, 300), (400, 600)]
    assert alt.confidence == pytest.approx(0.9) and resp.results[0].audio_processed == pytest.approx(1.6)


def test_streamed_results_and_config() -> None:
    service = Service()
    config = riva.client.RecognitionConfig(enable_automatic_punctuation=True, sample_rate_hertz=8_000)
    riva.client.add_endpoint_parameters_to_config(config, 0, 0, 300, 0, 0, 0)
    riva.client.add_word_boosting_to_config(config, ["Tomasz"], 5.0)
    requests = riva.client.asr.streaming_request_generator(
        [b"\1\0\2", b"\0"], riva.client.StreamingRecognitionConfig(config=config, interim_results=True))
    interim, final = [r.results[0] for r in RivaRecognizer(service, MODEL).StreamingRecognize(requests, Context())]
    first, *audio = service.requests
    assert first.streaming_config == recognizer_pb2.StreamingConfig(
        config=common_pb2.RecognitionConfig(nbest=1), context=common_pb2.RequestContext(hotwords=["Tomasz"]),
        encoding="pcm_s16le", sample_rate=8_000, interim_results=True, silence_ms=300)
    assert [a.audio_chunk for a in audio] == [b"\1\0", b"\2\0"]  # whole samples only
    assert (interim.is_final, interim.stability, interim.audio_processed) == (False, 0.5, pytest.approx(0.6))
    assert interim.alternatives[0].transcript == "Call Tom" and interim.alternatives[0].confidence == 0.0
    assert (final.is_final, final.stability, final.audio_processed) == (True, 0.0, pytest.approx(3.6))
    # a later turn's words count from the stream's start (the turn began at 2.0 s)
    assert [(w.start_time, w.end_time) for w in final.alternatives[0].words][:2] == [(2100, 2300), (2400, 2600)]


def test_stream_audio_reads_a_split_wav_header_channels_and_g711() -> None:
    samples, _ = sf.read(io.BytesIO(wav_bytes(tone(0.1))), dtype="int16")
    stereo = wav_bytes(tone(0.1), channels=2)
    audio = StreamAudio(ENC.LINEAR_PCM, 1, 16_000)
    got = b"".join(audio.pcm(stereo[i:i + 7]) for i in range(0, len(stereo), 7))  # the header in pieces too
    assert got == samples.tobytes()  # both channels averaged, no header byte taken as audio
    mulaw = wav_bytes(tone(0.1), subtype="ULAW")
    decoded = np.frombuffer(StreamAudio(ENC.LINEAR_PCM, 1, 16_000).pcm(mulaw), "<i2")
    assert len(decoded) == len(samples) and np.abs(decoded.astype(int) - samples).max() < 1200  # mu-law steps
    with pytest.raises(ValueError, match="8000 Hz"):
        StreamAudio(ENC.LINEAR_PCM, 1, 16_000).pcm(wav_bytes(tone(0.1, rate=8_000), rate=8_000))
    with pytest.raises(ValueError, match="16-bit PCM"):
        StreamAudio(ENC.LINEAR_PCM, 1, 16_000).pcm(wav_bytes(tone(0.1), subtype="FLOAT"))
    audioop = pytest.importorskip("audioop")
    codes = bytes(range(256))
    assert G711[ENC.MULAW].tobytes() == audioop.ulaw2lin(codes, 2) and G711[ENC.ALAW].tobytes() == audioop.alaw2lin(codes, 2)


# ---- the default bundle on real speech ---------------------------------------------------------------------------
@pytest.mark.weights
def test_default_bundle_boosted_word_and_word_offsets(tmp_path: Path) -> None:
    from shared.bundle import DEFAULT_BUNDLE

    running = _serve(load_settings(model=str(DEFAULT_BUNDLE), rl_store=str(tmp_path / "rl.jsonl"), api_keys_file=""))
    try:
        asr = riva.client.ASRService(riva.client.Auth(uri=f"127.0.0.1:{running.port}"))
        path = SPEECH / "user-2.wav"
        config = riva_config(enable_word_time_offsets=True)
        riva.client.add_audio_file_specs_to_config(config, path)
        riva.client.add_word_boosting_to_config(config, ["Kilbride Street"], 20.0)
        (alt,) = asr.offline_recognize(path.read_bytes(), config).results[0].alternatives
        assert alt.transcript == "Remind me to stop at Kilbride Street on the way home. "
        assert [w.word for w in alt.words] == alt.transcript.split()
        starts = [w.start_time for w in alt.words]
        assert starts == sorted(starts) and alt.words[-1].end_time <= round(sf.info(path).duration * 1000) + 50
        config.enable_automatic_punctuation = False
        with riva.client.AudioChunkFileIterator(str(path), 1600) as chunks:
            finals = [r for r in stream(SimpleNamespace(asr=asr), chunks, config) if r.is_final]
        assert [r.alternatives[0].transcript for r in finals] == ["remind me to stop at kilbride street on the way home "]
    finally:
        running.stop(0.5)
