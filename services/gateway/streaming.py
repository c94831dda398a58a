"""StreamingRecognize: several turns in one stream, with live interim results.

Raw PCM chunks arrive; silero-vad watches for speech (services/gateway/endpointer.py); a turn ends after `silence_ms`
of silence following speech (half that once the latest interim or pause transcript ends a sentence), or on the
client's end_of_turn. While a turn is open, a worker thread (services/gateway/turn_worker.py) computes an interim
result after FIRST_INTERIM_S of speech and then every INTERIM_EVERY_S: greedy decoding of the turn so far with its
context, and a stability, the share of its words that the interim before it also began with; the stream's own thread
goes on reading audio meanwhile, so an end of turn never waits behind an interim (the one in flight is dropped). Each
closed turn is recognised as Recognize would (its decode on the decoder's urgent threads), committed to the session
(the next turn is decoded with it) and published. With the VAD, the turn is also transcribed at each pause
(SPECULATE_AFTER_S of quiet after speech), while the VAD waits silence_ms to be sure: when the turn ends in that
pause, with nothing heard since, that transcript is the final (the final came 995 -> 780 ms p50 after the end of
speech, bundles/default/TUNING.md). Its audio lacks only the quiet after the pause, which the encoder reads as the
silence it pads its window with. On the client's end_of_turn there is no pause to wait through, and the final is
transcribed then, decoded along the latest interim's tokens: the decoder takes those the whole turn's audio confirms
without a beam and searches the rest (draft_margin, bundles/default/TUNING.md), and the interim in flight stops, its
encode included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Optional, Protocol

import grpc
import numpy as np

from seedasr.v1 import common_pb2, recognizer_pb2
from services.gateway.endpointer import VAD_CHUNK, Endpointer
from services.gateway.pipeline import with_language
from services.gateway.turn_worker import WAKE, Inbox, Job, Worker
from shared.audio import AudioError, PcmStream, SampleBuffer
from shared.languages import spaced

if TYPE_CHECKING:
    from services.gateway.pipeline import Interim, Transcript
    from shared.settings import Settings

INTERIM_EVERY_S = 0.5
# the first interim sooner: it is computed while the speaker goes on, and shows the turn was heard
FIRST_INTERIM_S = 0.4
SPECULATE_AFTER_S = 0.1  # of quiet after speech, heard by the VAD: the turn is transcribed then, in case it ends there
PIN_LANGUAGE_PROBABILITY = 0.8  # an interim's identification at least this sure holds for the turn's later interims
MAX_SILENCE_MS = 60_000.0  # a turn-ending silence longer than a minute is a mistake, not a setting
END_MARKS = (".", "?", "!", "。", "？", "！")


class TurnService(Protocol):
    """What a stream needs of the gateway's servicer (services/gateway/server.py RecognizerService): its settings,
    a turn's transcript, committing it, and an interim; declared here so that the two modules import one way."""

    settings: Settings

    def transcribe_samples(self, samples: Any, session_id: str, config: common_pb2.RecognitionConfig,
                           req_ctx: common_pb2.RequestContext, context: Any, draft: Sequence[int] = ()) -> Transcript: ...

    def speculate_samples(self, samples: Any, session_id: str, config: common_pb2.RecognitionConfig,
                          req_ctx: common_pb2.RequestContext, context: Any, draft: Sequence[int] = ()) -> Transcript: ...

    def commit_turn(self, done: Transcript, session_id: str, context: Any) -> recognizer_pb2.RecognizeResponse: ...

    def partial_samples(self, samples: Any, session_id: str, config: common_pb2.RecognitionConfig,
                        req_ctx: common_pb2.RequestContext) -> Interim: ...


class StreamSession:
    """One stream's turns. Every message costs the same whatever came before it: audio is resampled by a stateful
    resampler, kept in a growing buffer, and counted as it arrives (nothing is re-read per message)."""

    def __init__(self, service: TurnService, cfg: recognizer_pb2.StreamingConfig, context: Any) -> None:
        self.service, self.cfg, self.context = service, cfg, context
        if not math.isfinite(cfg.silence_ms) or cfg.silence_ms > MAX_SILENCE_MS:
            raise AudioError(f"silence_ms must be a number of milliseconds up to {MAX_SILENCE_MS:g} (<= 0: "
                             f"default or off), got {cfg.silence_ms}")
        self.pcm = PcmStream(cfg.encoding or "pcm_s16le", cfg.sample_rate or 16_000)
        self.silence_ms = cfg.silence_ms or 600.0
        self.vad = Endpointer(self.silence_ms) if self.silence_ms > 0 else None
        self.turn = SampleBuffer()
        self.pending = np.zeros(0, dtype=np.float32)
        self.turn_index, self.total_s, self.turn_start_s = 0, 0.0, 0.0
        self.max_turn_s = service.settings.max_audio_s
        self.started = time.monotonic()
        self.inbox: Optional[Inbox] = None
        self.worker: Optional[Worker] = None
        self._new_turn()

    def _new_turn(self) -> None:
        # without endpointing the client says where turns are: all its audio is the turn's speech
        self.heard_speech = self.vad is None
        self.speech_start_s = 0.0  # in the turn's audio
        self.next_interim_s = FIRST_INTERIM_S  # of speech
        self.interim_words: list[str] = []  # the latest interim's (characters in Chinese)
        self.draft: list[int] = []  # the latest interim's decoder tokens: the final decodes along them
        self.interim: Optional[tuple[Job, float]] = None  # (job, turn seconds it covers)
        # the turn transcribed at a pause, and the VAD's count of chunks heard when it began: the final, if the
        # turn ends in that pause (nothing heard since)
        self.speculation: Optional[tuple[Job, int]] = None
        # the language an interim identified surely: the turn's later interims decode in it (an unidentified turn
        # would be identified again on every interim, and could flip between languages as it grows)
        self.interim_language = ""

    def run(self, inbox: Inbox) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        """The stream after its config, from `inbox` (which the caller made to read the config with a timeout)."""
        self.inbox = inbox
        self.worker = Worker(self.inbox.wake)
        try:
            for req in self.inbox.messages(self.service.settings.stream_idle_s, self.context):
                if req is WAKE:
                    self._speculation_ready()
                    yield from self._interim_ready()
                    continue
                kind = req.WhichOneof("request")
                if kind == "audio_chunk":
                    yield from self._audio(req.audio_chunk)
                elif kind == "end_of_turn":
                    yield from self._close_turn()
                else:
                    self.context.abort(*_invalid("streaming_config may only be sent first"))
            yield from self._close_turn()  # the client half-closed: finish what is open
        finally:
            for pending in (self.interim, self.speculation):
                if pending is not None:
                    pending[0].cancel()
            self.worker.close()
            self.inbox.close()

    def _audio(self, chunk: bytes) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        self._speculation_ready()
        yield from self._interim_ready()
        if not chunk:
            return
        try:
            samples = self.pcm.samples(chunk)
        except AudioError as exc:
            self.context.abort(*_invalid(str(exc)))
        self.turn.append(samples)
        self.total_s += len(samples) / 16_000
        self._check_pace()
        if self.turn.size / 16_000 > self.max_turn_s:
            yield from self._close_turn()
            return
        if self._vad(samples):
            yield from self._close_turn(speculated=True)
            return
        turn_s = self.total_s - self.turn_start_s
        self._speculate()
        if (self.cfg.interim_results and self.heard_speech and self.interim is None and self.speculation is None
                and turn_s - self.speech_start_s >= self.next_interim_s):
            # one interim per INTERIM_EVERY_S of speech, however fast the audio arrives
            self.next_interim_s = turn_s - self.speech_start_s + INTERIM_EVERY_S
            audio = self.turn.view().copy()  # the worker's own copy: the buffer goes on growing
            assert self.worker is not None
            config = self.cfg.config
            if self.interim_language and config.language.strip().lower() in ("", "auto"):
                config = with_language(config, self.interim_language)
            self.interim = (self.worker.submit(lambda: self.service.partial_samples(
                audio, self.cfg.session_id, config, self.cfg.context)), turn_s)

    def _speculate(self) -> None:
        """With the VAD: once SPECULATE_AFTER_S of quiet follows speech, the turn so far is transcribed as its final
        would be (a pause ends most turns, and the VAD waits silence_ms more before it says so); a sound heard
        before the turn ends makes that transcript stale. Its audio lacks only the quiet after it, which the encoder
        reads as the silence its window is padded with."""
        vad = self.vad
        if vad is None or not self.heard_speech:
            return
        if self.speculation is not None:
            if vad.heard != self.speculation[1]:  # the speaker went on: the next pause gets its own
                self.speculation[0].cancel()
                self.speculation = None
            return
        if vad.triggered and vad.quiet_since_heard >= SPECULATE_AFTER_S * 16_000:
            audio, draft = self.turn.view().copy(), self._latest_draft()
            assert self.worker is not None
            if self.interim is not None:  # the turn's text is about to be known whole: no interim ahead of it
                self.interim[0].cancel()
            self.speculation = (self.worker.submit(lambda: self.service.speculate_samples(
                audio, self.cfg.session_id, self.cfg.config, self.cfg.context, self.context, draft)), vad.heard)

    def _latest_draft(self) -> list[int]:
        """The decoder tokens of the turn's latest interim, a finished one not yet read included."""
        if self.interim is not None and self.interim[0].ok():
            return list(self.interim[0].result.tokens)
        return self.draft

    def _speculation_ready(self) -> None:
        """A transcript made at the pause tells the VAD, as an interim does, whether the turn is a whole sentence."""
        spec = self.speculation
        if spec is None or self.vad is None or not spec[0].ok() or spec[1] != self.vad.heard:
            return
        alternatives = spec[0].result.alternatives
        self.vad.sentence_complete(bool(alternatives) and alternatives[0].text.rstrip().endswith(END_MARKS))

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
        """Runs the detector over the new audio; True when it ended the turn."""
        if self.vad is None:
            return False
        start_of_pending = self.total_s - self.turn_start_s - (len(self.pending) + len(samples)) / 16_000
        self.pending = np.concatenate([self.pending, samples])
        consumed = 0
        while len(self.pending) >= VAD_CHUNK:
            event = self.vad(self.pending[:VAD_CHUNK])
            self.pending = self.pending[VAD_CHUNK:]
            consumed += VAD_CHUNK
            if event == "start" and not self.heard_speech:
                self.heard_speech = True
                self.speech_start_s = max(0.0, start_of_pending + (consumed - VAD_CHUNK) / 16_000)
            elif event == "end" and self.heard_speech:
                return True
        return False

    def _interim_ready(self) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        if self.interim is None or not self.interim[0].done.is_set():
            return
        job, turn_s = self.interim
        self.interim = None
        if not job.ok():  # interim results are best effort; the final result reports errors
            return
        interim: Interim = job.result
        self.draft = interim.tokens
        alt = interim.best
        # stability counts words, or characters in a language written without spaces
        words = alt.text.split() if spaced(interim.language or "en") else [c for c in alt.text if not c.isspace()]
        if not words:  # nothing said yet: nor is its language known
            return
        if interim.language_probability >= PIN_LANGUAGE_PROBABILITY:
            self.interim_language = self.interim_language or interim.language
        agreed = _common_prefix(self.interim_words, words)
        self.interim_words = words
        if self.vad is not None:
            self.vad.sentence_complete(alt.text.rstrip().endswith(END_MARKS))
        result = recognizer_pb2.RecognizeResponse(alternatives=[alt], audio_seconds=turn_s, language=interim.language,
                                                  language_probability=interim.language_probability)
        yield recognizer_pb2.StreamingRecognizeResponse(is_final=False, turn_index=self.turn_index, result=result,
                                                        turn_start_s=self.turn_start_s,
                                                        turn_end_s=self.turn_start_s + turn_s,
                                                        stability=agreed / len(words))

    def _close_turn(self, speculated: bool = False) -> Iterator[recognizer_pb2.StreamingRecognizeResponse]:
        """speculated: the VAD ended the turn in a pause, having heard all its audio (else a transcript made at a
        pause may lack what came after it: the client's end_of_turn, a turn past max_turn_s)."""
        audio = self.turn.view().copy()
        had_speech, start, draft = self.heard_speech, self.turn_start_s, self._latest_draft()
        if self.interim is not None:  # the final supersedes it
            self.interim[0].cancel()
        speculation = self.speculation
        if speculation is not None and speculated and self.vad is not None:
            # the VAD stopped at the end: it hears the rest of the message too (all but what a chunk cannot fill),
            # so that a word after the pause in the same message makes the speculation stale
            for i in range(0, len(self.pending) - VAD_CHUNK + 1, VAD_CHUNK):
                self.vad(self.pending[i : i + VAD_CHUNK])
        if speculation is not None and (not speculated or self.vad is None or self.vad.heard != speculation[1]):
            speculation[0].cancel()  # a sound came after the pause it was made at, or audio the VAD did not hear
            speculation = None
        self.turn.clear()
        self.pending = np.zeros(0, dtype=np.float32)
        if self.vad is not None:
            self.vad.reset()
        self.turn_start_s = self.total_s
        self._new_turn()
        if len(audio) < 1_600 or not had_speech:  # under 0.1 s, or silence only: nothing to recognise
            return
        done = self._speculated(speculation, len(audio))
        if done is None:
            done = self.service.transcribe_samples(audio, self.cfg.session_id, self.cfg.config, self.cfg.context,
                                                   self.context, draft)
        result = self.service.commit_turn(done, self.cfg.session_id, self.context)
        yield recognizer_pb2.StreamingRecognizeResponse(is_final=True, turn_index=self.turn_index, result=result,
                                                        turn_start_s=start, turn_end_s=self.total_s, stability=1.0)
        self.turn_index += 1

    def _speculated(self, speculation: Optional[tuple[Job, int]], samples: int) -> Optional[Transcript]:
        """The transcript made at the pause the turn ended in, once it is done (it started before any new one
        could); None when there is none or it failed (the final is then transcribed as usual)."""
        if speculation is None:
            return None
        job, settings = speculation[0], self.service.settings
        # as long as the call may wait for a transcript of this turn (the pipeline's own cap), or has left
        wait_s = settings.deadline_s + settings.deadline_per_audio_s * samples / 16_000
        left = self.context.time_remaining() if hasattr(self.context, "time_remaining") else None
        job.done.wait(min(wait_s, left) if left is not None else wait_s)
        if not job.ok():
            job.cancel()
            return None
        done: Transcript = job.result
        done.audio_s = samples / 16_000  # the whole turn's, quiet included
        return done


def _common_prefix(a: list[str], b: list[str]) -> int:
    """How many leading words two interims share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _invalid(message: str) -> tuple[Any, str]:
    return grpc.StatusCode.INVALID_ARGUMENT, message
