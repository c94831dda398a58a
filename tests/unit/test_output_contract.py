"""What an assistant reads, through the embedded server and the default bundle: written text beside its spoken form,
confidences, word times from the model, verbatim, and streaming with live interims whose final is Recognize's."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
import soundfile as sf

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.bench_stream import speech_span_s
from services.gateway.endpointer import Endpointer
from shared.bundle import DEFAULT_BUNDLE
from shared.decoding import DecodingDefaults
from shared.recognition import OutputConfig, nbest_agreement
from tests.conftest import ROOT

SAMPLE = ROOT / "samples" / "dialogue" / "user-2.wav"


@pytest.fixture(scope="module")
def stub(tmp_path_factory) -> Iterator[recognizer_pb2_grpc.RecognizerStub]:
    from services.app import serve_embedded
    from shared.settings import load_settings

    store = tmp_path_factory.mktemp("rl") / "rl.jsonl"
    server = serve_embedded(load_settings(model=str(DEFAULT_BUNDLE), rl_store=str(store), api_keys_file=""), port=0)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield recognizer_pb2_grpc.RecognizerStub(channel)
    server.stop(0.5)


def recognize(stub, config: common_pb2.RecognitionConfig, hotwords=()) -> recognizer_pb2.RecognizeResponse:
    return stub.Recognize(recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=SAMPLE.read_bytes()),
                                                          config=config,
                                                          context=common_pb2.RequestContext(hotwords=list(hotwords))),
                          timeout=120)


@pytest.mark.weights
def test_written_text_confidences_and_word_times(stub) -> None:
    best = recognize(stub, common_pb2.RecognitionConfig(word_timestamps=True), hotwords=["Kilbride Street"]).alternatives[0]
    assert best.text == "Remind me to stop at Kilbride Street on the way home."  # cased as the hotword was given
    assert best.normalized_text == "remind me to stop at kilbride street on the way home"
    assert [w.word for w in best.words] == best.text.split()
    assert 0.0 < best.confidence <= 1.0 and all(0.0 <= w.confidence <= 1.0 for w in best.words)
    assert best.confidence == pytest.approx(np.mean([w.confidence for w in best.words]), abs=1e-5)
    starts = [w.start_s for w in best.words]
    assert starts == sorted(starts) and all(w.end_s >= w.start_s for w in best.words)
    assert best.words[-1].end_s <= sf.info(SAMPLE).duration + 0.05
    # the words spread over the speech, not evenly over the window: "home." starts in the last second
    assert best.words[-1].start_s > sf.info(SAMPLE).duration - 1.0
    # and it ends where the speech does, not with the trailing silence (shared/word_pauses.py)
    speech_end = speech_span_s(sf.read(SAMPLE, dtype="float32")[0])[1]
    assert abs(best.words[-1].end_s - speech_end) <= 0.05, (best.words[-1].end_s, speech_end)


@pytest.mark.weights
def test_verbatim_puts_the_spoken_form_in_text(stub) -> None:
    best = recognize(stub, common_pb2.RecognitionConfig(verbatim=True, word_timestamps=True)).alternatives[0]
    assert best.text == best.normalized_text and best.text == best.text.lower() and "." not in best.text
    assert " ".join(w.word for w in best.words) == best.text


@pytest.mark.weights
def test_streaming_interims_grow_and_the_final_is_recognizes(stub) -> None:
    x, _ = sf.read(SAMPLE, dtype="int16")
    pcm = x.tobytes()

    def requests():
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
            interim_results=True, silence_ms=-1))
        for i in range(0, len(pcm), 3200):  # 100 ms chunks at real time, as a microphone sends them
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i : i + 3200])
            time.sleep(0.1)
        yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)

    responses = list(stub.StreamingRecognize(requests(), timeout=120))
    interims = [r for r in responses if not r.is_final]
    finals = [r for r in responses if r.is_final]
    assert len(finals) == 1 and len(interims) >= 2
    assert all(r.result.alternatives[0].text and 0.0 <= r.stability <= 1.0 for r in interims)
    assert interims[-1].stability > 0.0  # later interims begin as the ones before them did
    assert finals[0].result.alternatives[0].text == recognize(stub, common_pb2.RecognitionConfig()).alternatives[0].text


def test_a_complete_sentence_ends_its_turn_sooner() -> None:
    speech, _ = sf.read(SAMPLE, dtype="float32")
    audio = np.concatenate([np.zeros(4_800, np.float32), speech, np.zeros(16_000, np.float32)])

    def end_s(complete: bool) -> float:
        vad = Endpointer(min_silence_ms=600)
        for i in range(0, len(audio) - 511, 512):
            event = vad(audio[i : i + 512])
            if event == "start":
                vad.sentence_complete(complete)  # what an interim ending in "." tells the stream
            if event == "end":
                return i / 16_000
        raise AssertionError("no end")

    assert 0.25 <= end_s(False) - end_s(True) <= 0.35  # 600 ms of silence, 300 ms after a complete sentence


def test_confidence_rises_with_agreement_and_the_bundle_states_its_fit() -> None:
    fitted = DecodingDefaults.from_bundle(DEFAULT_BUNDLE).confidence
    assert len(fitted) == 4
    out = OutputConfig(confidence_weights=fitted)
    assert out.confidence((-0.1, 0.5, 1.0)) > out.confidence((-0.1, 0.5, 0.0))  # the other beams said it too
    assert out.confidence((-0.1, 0.5, 1.0)) > out.confidence((-5.0, 0.5, 1.0))  # a likelier least token
    assert nbest_agreement("Street.", [{"kilbride", "street"}, {"kill", "bride"}]) == 0.5
    assert nbest_agreement("7:30", [{"seven", "thirty"}]) == 1.0 and nbest_agreement("x", []) == 1.0
    with pytest.raises(ValueError, match="3 weights and a bias"):
        _ = dataclasses.replace(DecodingDefaults.from_bundle(DEFAULT_BUNDLE), confidence_weights="1,2").confidence


@pytest.mark.weights
def test_manifest_output_carries_both_forms(tmp_path) -> None:
    from services.cli import main

    manifest = tmp_path / "in.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": str(SAMPLE), "hotwords": ["Kilbride Street"]}) + "\n")
    out = tmp_path / "out.jsonl"
    main(["transcribe", "--manifest", str(manifest), "--output", str(out), "--model", str(DEFAULT_BUNDLE)])
    line = json.loads(out.read_text())
    assert line["text"] == "Remind me to stop at Kilbride Street on the way home."
    assert line["normalized_text"] == "remind me to stop at kilbride street on the way home"
    assert 0.0 < line["confidence"] <= 1.0 and line["words"] and "start_s" in line["words"][0]
