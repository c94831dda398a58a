"""The final transcribed at the pause a turn ends in (services/gateway/streaming.py StreamSession._speculate): with
the VAD, a turn is transcribed once 0.1 s of quiet follows its speech, and that transcript is the final when the
turn ends in that pause; a sound heard before the end makes it stale and the final is transcribed as usual."""

from __future__ import annotations

import threading
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
    got, calls = finals(np.concatenate([SPEECH, silence]))
    assert len(got) == 1 and [kind for kind, _ in calls] == ["speculation"]
    assert got[0].result.alternatives[0].text.startswith("speculation")
    # made on the speech and the first tenth of a second or so of quiet; the final reports the whole turn
    made_on = calls[0][1]
    assert len(SPEECH) < made_on < len(SPEECH) + 0.5 * 16_000
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


@pytest.mark.parametrize("end_of_turn", [True])
def test_without_the_vad_nothing_is_speculated(end_of_turn: bool) -> None:
    service = Service()
    pcm = (np.clip(np.concatenate([SPEECH, np.zeros(16_000, np.float32)]), -1, 1) * 32767).astype("<i2").tobytes()

    def requests() -> Iterator[recognizer_pb2.StreamingRecognizeRequest]:
        for i in range(0, len(pcm), 3200):
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i : i + 3200])
        yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=end_of_turn)

    session = StreamSession(service, recognizer_pb2.StreamingConfig(silence_ms=-1), Context())  # type: ignore[arg-type]
    got = [r for r in session.run(Inbox(requests())) if r.is_final]
    assert len(got) == 1 and [kind for kind, _ in service.calls] == ["final"]
