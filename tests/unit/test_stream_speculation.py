"""The final transcribed at the pause a turn ends in (services/gateway/streaming.py StreamSession._speculate): with
the VAD, a turn is transcribed once 0.1 s of quiet follows its speech, and that transcript is the final when the
turn ends in that pause; a sound heard before the end makes it stale and the final is transcribed as usual."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from seedasr.v1 import common_pb2, recognizer_pb2
from services.bench_stream import speech_span_s
from services.gateway.pipeline import Interim, Transcript
from services.gateway.streaming import StreamSession
from services.gateway.turn_worker import Inbox
from shared.audio import read_audio_file
from shared.settings import load_settings
from tests.conftest import ROOT

SPEECH = read_audio_file(str(ROOT / "samples" / "dialogue" / "user-1.wav"))  # (N,) 16 kHz
PHRASE = SPEECH[: int((speech_span_s(SPEECH)[1] + 0.05) * 16_000)]  # without the quiet it trails


class Service:
    """A gateway that records which way each final was transcribed; the transcript names its audio's length."""

    def __init__(self) -> None:
        self.settings = load_settings(stream_rate=1000.0, stream_burst_s=1000.0)
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def _transcript(self, kind: str, samples: Any) -> Transcript:
        with self.lock:
            self.calls.append((kind, len(samples)))
        alt = common_pb2.Alternative(text=f"{kind} {len(samples)}")
        return Transcript([alt], common_pb2.StageTimings(), "", len(samples) / 16_000, 0.0, streamed=True)

    def transcribe_samples(self, samples: Any, *args: Any) -> Transcript:
        return self._transcript("final", samples)

    def speculate_samples(self, samples: Any, *args: Any) -> Transcript:
        return self._transcript("speculation", samples)

    def commit_turn(self, done: Transcript, session_id: str, context: Any) -> recognizer_pb2.RecognizeResponse:
        return recognizer_pb2.RecognizeResponse(alternatives=done.alternatives, audio_seconds=done.audio_s)

    def partial_samples(self, samples: Any, *args: Any) -> Interim:
        with self.lock:
            self.calls.append(("interim", len(samples)))
        return Interim(common_pb2.Alternative(text="interim"), "en", 1.0)


class Context:
    def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")

    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float:
        return 30.0


def finals(audio: np.ndarray) -> tuple[list[recognizer_pb2.StreamingRecognizeResponse], list[tuple[str, int]]]:
    """audio streamed in 100 ms chunks with the VAD (silence_ms 600) -> the finals, and the service's calls."""
    service = Service()
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    cfg = recognizer_pb2.StreamingConfig(silence_ms=600)

    def requests() -> Iterator[recognizer_pb2.StreamingRecognizeRequest]:
        for i in range(0, len(pcm), 3200):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i : i + 3200])

    session = StreamSession(service, cfg, Context())  # type: ignore[arg-type]
    out = [r for r in session.run(Inbox(requests())) if r.is_final]
    return out, service.calls


def test_a_turn_that_ends_in_its_pause_takes_the_transcript_made_there() -> None:
    silence = np.zeros(16_000, np.float32)
    got, calls = finals(np.concatenate([PHRASE, silence]))
    assert len(got) == 1 and [kind for kind, _ in calls] == ["speculation"]
    assert got[0].result.alternatives[0].text.startswith("speculation")
    # made on the speech and the first tenth of a second or so of quiet; the final reports the whole turn
    made_on = calls[0][1]
    assert len(PHRASE) < made_on < len(PHRASE) + 0.5 * 16_000
    assert got[0].result.audio_seconds > made_on / 16_000


def test_a_sound_after_the_pause_makes_the_speculation_stale() -> None:
    # a pause long enough to speculate in but shorter than silence_ms, then the speech again: one turn
    gap = np.zeros(int(0.3 * 16_000), np.float32)
    tail = np.zeros(16_000, np.float32)
    got, calls = finals(np.concatenate([PHRASE, gap, PHRASE, tail]))
    assert len(got) == 1
    kinds = [kind for kind, _ in calls]
    assert kinds.count("speculation") >= 1
    # the final covers both phrases: either the second pause's speculation or a transcript made at the end
    final_len = int(got[0].result.alternatives[0].text.split()[1])
    assert final_len > 2 * len(PHRASE) + len(gap)


@pytest.mark.parametrize("silence_ms", [-1.0, 600.0])  # without the VAD; with it, the client ending the turn first
def test_a_turn_the_client_ends_is_transcribed_whole(silence_ms: float) -> None:
    service = Service()
    audio = np.concatenate([PHRASE, np.zeros(int(0.35 * 16_000), np.float32)])  # a pause, shorter than silence_ms
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()

    def requests() -> Iterator[recognizer_pb2.StreamingRecognizeRequest]:
        for i in range(0, len(pcm), 3200):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i : i + 3200])
        yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)

    cfg = recognizer_pb2.StreamingConfig(silence_ms=silence_ms)
    got = [r for r in StreamSession(service, cfg, Context()).run(Inbox(requests())) if r.is_final]  # type: ignore[arg-type]
    assert len(got) == 1 and got[0].result.alternatives[0].text == f"final {len(audio)}"
    assert [kind for kind, _ in service.calls].count("final") == 1  # (a speculation may have been made, not used)


def test_a_message_that_runs_past_the_turns_end_is_transcribed_whole() -> None:
    # one message holds the speech, the pause that ends the turn and more: the VAD stops at the end, so the
    # speculation made in the pause never heard the rest of the message, and the final is transcribed instead
    service = Service()
    audio = np.concatenate([PHRASE, np.zeros(int(0.9 * 16_000), np.float32), PHRASE])
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()
    cut = len(PHRASE) * 2 + int(0.2 * 16_000) * 2  # the first message ends inside the pause (a speculation starts)
    messages = [pcm[:cut], pcm[cut:]]

    def requests() -> Iterator[recognizer_pb2.StreamingRecognizeRequest]:
        for m in messages:
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=m)
            threading.Event().wait(0.5)  # the speculation runs meanwhile

    cfg = recognizer_pb2.StreamingConfig(silence_ms=600)
    got = [r for r in StreamSession(service, cfg, Context()).run(Inbox(requests())) if r.is_final]  # type: ignore[arg-type]
    assert got and got[0].result.alternatives[0].text.startswith("final")


def test_the_final_is_decoded_along_the_latest_interims_tokens() -> None:
    """A turn's final is handed the decoder tokens of its latest finished interim, its draft (TurnPipeline.transcribe:
    the decoder keeps what the whole turn confirms); a turn without a finished interim has none."""

    class Drafting(Service):
        def __init__(self) -> None:
            super().__init__()
            self.drafts: list[list[int]] = []
            self.interims: list[int] = []

        def transcribe_samples(self, samples: Any, *args: Any) -> Transcript:
            self.drafts.append(list(args[4]))  # (session_id, config, req_ctx, context, draft)
            return super().transcribe_samples(samples)

        def partial_samples(self, samples: Any, *args: Any) -> Interim:
            self.interims.append(len(samples))
            return Interim(common_pb2.Alternative(text="interim"), "en", 1.0, [7, len(samples)])

    service = Drafting()
    pcm = (np.clip(SPEECH, -1, 1) * 32767).astype("<i2").tobytes()

    def requests() -> Iterator[recognizer_pb2.StreamingRecognizeRequest]:
        for i in range(0, len(pcm), 3200):
            time.sleep(0.01)  # the worker's interims finish between messages
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i : i + 3200])
        yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)
        yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)  # an empty turn: nothing to transcribe

    cfg = recognizer_pb2.StreamingConfig(silence_ms=-1, interim_results=True)
    list(StreamSession(service, cfg, Context()).run(Inbox(requests())))  # type: ignore[arg-type]
    assert len(service.interims) >= 2 and len(service.drafts) == 1
    assert service.drafts[0][0] == 7 and service.drafts[0][1] in service.interims[-2:]


def stream_with_interims(service: Service) -> list[recognizer_pb2.StreamingRecognizeResponse]:
    """PHRASE in 100 ms chunks without endpointing, interims on, then end_of_turn -> every response. Each message
    waits 10 ms, so that the worker's interim (the fake's is instant) is done before the next one arrives."""
    pcm = (np.clip(PHRASE, -1, 1) * 32767).astype("<i2").tobytes()

    def requests() -> Iterator[recognizer_pb2.StreamingRecognizeRequest]:
        for i in range(0, len(pcm), 3200):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i : i + 3200])
            time.sleep(0.01)
        yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)

    cfg = recognizer_pb2.StreamingConfig(silence_ms=-1, interim_results=True)
    return list(StreamSession(service, cfg, Context()).run(Inbox(requests())))  # type: ignore[arg-type]


def test_the_first_interim_comes_after_0_4_s_of_speech_the_next_every_0_5_s() -> None:
    # without endpointing all the audio is speech: interims on the turn's first 0.4 s, then at least 0.5 s apart
    service = Service()
    out = stream_with_interims(service)
    covered = [n for kind, n in service.calls if kind == "interim"]
    assert covered[0] == int(0.4 * 16_000)
    assert len(covered) >= 3 and all(b - a >= 0.5 * 16_000 for a, b in zip(covered, covered[1:]))
    assert sum(not r.is_final for r in out) == len(covered) and out[-1].is_final


def test_an_interim_that_heard_no_words_does_not_pin_the_turns_language() -> None:
    # the first interim, on the quiet before the speech, names a language it cannot know: the later ones identify again
    service = Service()
    languages: list[str] = []

    def partial_samples(samples: Any, session_id: str, config: Any, *args: Any) -> Interim:
        languages.append(config.language)
        if len(languages) == 1:
            return Interim(common_pb2.Alternative(text=""), "en", 1.0)
        return Interim(common_pb2.Alternative(text="你好"), "zh", 1.0)

    service.partial_samples = partial_samples  # type: ignore[method-assign]
    out = stream_with_interims(service)
    assert languages[:3] == ["", "", "zh"]  # identified until an interim with words named Chinese
    assert all(r.result.language == "zh" for r in out if not r.is_final)
