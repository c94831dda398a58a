"""Each language's encoder window (the bundle's language_windows): the gateway asks the encoder for it when the
language is given, and again for the turn's first window when identification finds a language with a window of its
own; the encoder pads to it and refuses a window outside (0, 30] s."""

import dataclasses
import json
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from seedasr.v1 import common_pb2, internal_pb2
from services.gateway.pipeline import Peers, TurnPipeline
from shared.bundle import DEFAULT_BUNDLE
from shared.decoding import DecodingDefaults
from shared.segments import segment_audio
from shared.settings import load_settings


class RecordingEncoder:
    def __init__(self) -> None:
        self.windows: list[float] = []

    def Encode(self, request: internal_pb2.EncodeRequest, timeout: float) -> internal_pb2.EncodeResponse:  # noqa: N802
        self.windows.append(request.window_s)
        return internal_pb2.EncodeResponse()


class IdentifyingDecoder:
    """Identifies `found` when asked to; decodes in the language given otherwise."""

    def __init__(self, found: str) -> None:
        self.found, self.asked = found, list[str]()

    def Decode(self, request: internal_pb2.DecodeRequest, timeout: float) -> internal_pb2.DecodeResponse:  # noqa: N802
        given = request.config.language if request.config.language != "auto" else ""
        self.asked.append(given)
        return internal_pb2.DecodeResponse(alternatives=[common_pb2.Alternative(text="mot", normalized_text="mot")],
                                           language=given or self.found, language_probability=1.0 if given else 0.9)


class EmptyContext:
    def Assemble(self, request: internal_pb2.AssembleRequest, timeout: float) -> internal_pb2.AssembleResponse:  # noqa: N802
        return internal_pb2.AssembleResponse()  # a later window is asked for with the text before it


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The shipped bundle's config (all the pipeline reads) with French and German in 30 s windows."""
    shutil.copy(DEFAULT_BUNDLE / "config.json", tmp_path / "config.json")
    config = json.loads((tmp_path / "config.json").read_text())
    config["decoding"]["language_windows"] = "fr:30, de:20"
    (tmp_path / "config.json").write_text(json.dumps(config))
    return tmp_path


def run(bundle: Path, language: str, found: str, seconds: float = 2.0) -> tuple[list[float], list[str], str]:
    encoder, decoder = RecordingEncoder(), IdentifyingDecoder(found)
    pipeline = TurnPipeline(Peers(encoder, EmptyContext(), decoder), None, load_settings(model=str(bundle)))  # type: ignore[arg-type]
    done = pipeline.transcribe(np.zeros(int(seconds * 16_000), np.float32), "", common_pb2.RecognitionConfig(
        language=language, disable_context=True), common_pb2.RequestContext(), common_pb2.StageTimings())
    return encoder.windows, decoder.asked, done.language


def test_a_given_language_is_encoded_in_its_window(bundle: Path) -> None:
    assert run(bundle, "fr-FR", "fr")[0] == [30.0]
    assert run(bundle, "de", "de")[0] == [20.0]
    assert run(bundle, "en", "en")[0] == [0.0]  # the model's own window_s


def test_an_identified_language_with_its_own_window_reads_the_first_window_again(bundle: Path) -> None:
    windows, asked, language = run(bundle, "auto", "fr")
    assert (windows, asked, language) == ([0.0, 30.0], ["", "fr"], "fr")
    windows, asked, language = run(bundle, "", "en")
    assert (windows, asked, language) == ([0.0], [""], "en")  # English keeps the window it was identified in
    windows, asked, _ = run(bundle, "", "fr", seconds=20.0)  # long audio: only its first window is read twice
    parts = len(segment_audio(np.zeros(20 * 16_000, np.float32), DecodingDefaults.from_bundle(bundle).segment_s))
    assert parts > 1 and windows == [0.0] + [30.0] * parts and asked == [""] + ["fr"] * parts


def test_language_windows_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    shipped = DecodingDefaults.from_bundle(DEFAULT_BUNDLE)
    assert dataclasses.replace(shipped, language_windows=" fr:30 ,zh:12.5").windows == {"fr": 30.0, "zh": 12.5}
    assert dataclasses.replace(shipped, language_windows="").window_for("fr") == 0.0
    for bad in ("fr:0", "fr:31", "fr:x", "fr:nan"):
        with pytest.raises(ValueError, match="language_windows"):
            dataclasses.replace(shipped, language_windows=bad)  # a bundle or setting with it fails at start
    with pytest.raises(SystemExit):
        load_settings(language_windows="french=30")
    assert "SEEDASR_LANGUAGE_WINDOWS" in capsys.readouterr().err


@pytest.mark.parametrize("window_s", [float("nan"), -1.0, 31.0])
def test_the_encoder_refuses_a_window_outside_its_range(window_s: float) -> None:
    from services.encoder.server import EncoderService

    class Aborted(Exception):
        pass

    class Context:
        def abort(self, code: grpc.StatusCode, message: str) -> None:
            self.code, self.message = code, message
            raise Aborted

    service = EncoderService.__new__(EncoderService)  # the checks run before the model: none is loaded
    context = Context()
    with pytest.raises(Aborted):
        service.Encode(internal_pb2.EncodeRequest(pcm16=b"\0\0" * 160, window_s=window_s), context)  # type: ignore[arg-type]
    assert context.code == grpc.StatusCode.INVALID_ARGUMENT and "window_s" in context.message
