"""One recognised turn: audio -> encoder -> context -> decoder -> session -> turn event.

The same code runs in the mesh (stubs over NATS or gRPC) and in the embedded server (in-process
stubs); it only sees objects with the RPC methods of the Encoder, Context and Decoder services.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from seedasr.v1 import common_pb2, events_pb2, internal_pb2, recognizer_pb2
from shared.decoding import decoding_for, languages_for
from shared.events import FEEDBACK_SUBJECT, TURNS_SUBJECT, EventBus, sample_id_of
from shared.languages import parse_language, spaced
from shared.metrics import AUDIO_SECONDS, observe_stages
from shared.segments import Word, align_words, segment_audio
from shared.settings import Settings
from shared.telemetry import current_trace_id
from shared.text import normalize_text
from shared.turn_ids import new_turn_id
from shared.word_pauses import snap_to_pauses

log = logging.getLogger(__name__)


@dataclass
class Transcript:
    """A transcribed turn before it is committed to its session and published."""

    alternatives: list[common_pb2.Alternative]
    timings: common_pb2.StageTimings
    context_text: str
    audio_s: float
    deadline_at: float  # time.perf_counter() by which the call must end (the caller's deadline, capped)
    streamed: bool = False  # a stream's turn (decoded on the urgent threads), not a Recognize call
    language: str = ""  # the model's code of the language decoded, given or identified
    language_probability: float = 1.0


@dataclass
class Peers:
    encoder: Any
    context: Any
    decoder: Any


class TurnPipeline:
    def __init__(self, peers: Peers, events: EventBus, settings: Settings) -> None:
        self.peers, self.events, self.settings = peers, events, settings
        self.decoding = decoding_for(settings)  # the bundle's defaults (the gateway validates and windows with them)
        self.languages = languages_for(settings)  # what a request's language may be

    def window_for(self, config: common_pb2.RecognitionConfig) -> float:
        """The encoder window of the config's language (0: the model's own; always so while it is to be identified)."""
        try:
            asked = parse_language(config.language, self.languages)
        except ValueError:  # the servicer refuses such a request before any work
            return 0.0
        return self.decoding.window_for(asked.code) if asked else 0.0

    def recognize(self, samples: np.ndarray, session_id: str, config: common_pb2.RecognitionConfig,
                  request_context: common_pb2.RequestContext, timings: common_pb2.StageTimings,
                  deadline_s: Optional[float] = None, tenant: str = "") -> recognizer_pb2.RecognizeResponse:
        """transcribe() and commit(); raises grpc.RpcError (from a peer) for the servicer to pass on."""
        done = self.transcribe(samples, session_id, config, request_context, timings, deadline_s)
        return self.commit(done, session_id, tenant, deadline_s=max(0.05, done.deadline_at - time.perf_counter()))

    def transcribe(
        self,
        samples: np.ndarray,
        session_id: str,
        config: common_pb2.RecognitionConfig,
        request_context: common_pb2.RequestContext,
        timings: common_pb2.StageTimings,
        deadline_s: Optional[float] = None,
        urgent: bool = False,
        draft: Sequence[int] = (),
    ) -> Transcript:
        """The turn's n-best, with no side effect: nothing is stored or published until commit() (a stream
        transcribes the turn, then commits it). urgent: someone waits for it (a stream's final), so the decoder may
        spend more cores on it. draft: the decoder tokens of an interim of this turn (Interim.tokens), which a turn of
        one window is decoded along as far as its whole audio confirms them."""
        t0 = time.perf_counter()
        cap = self.settings.deadline_s + self.settings.deadline_per_audio_s * len(samples) / 16_000
        deadline_at = t0 + min(deadline_s or cap, cap)

        def left() -> float:
            """What is left of the caller's deadline: every peer call gets that as its own deadline."""
            return max(0.05, deadline_at - time.perf_counter())

        use_context = not config.disable_context
        windows = segment_audio(samples, self.decoding.segment_s)
        pieces: list[list[common_pb2.Alternative]] = []
        words: list[Word] = []
        previous = ""
        context_text, written_context = "", ""
        spellings: list[str] = []
        language, probability = "", 1.0
        for start, end in windows:
            ctx_ids: list[int] = []
            phrases: list[str] = []
            candidates: list[str] = []
            if use_context or previous:
                history = [] if not use_context else list(request_context.history)
                req_ctx = common_pb2.RequestContext(
                    history=history,
                    hotwords=request_context.hotwords if use_context else [],
                    prompt=request_context.prompt if use_context else "",
                )
                t = time.perf_counter()
                assembled = self.peers.context.Assemble(
                    internal_pb2.AssembleRequest(session_id=session_id if use_context else "", context=req_ctx,
                                                 previous_text=previous),
                    timeout=left(),
                )
                timings.context_ms += (time.perf_counter() - t) * 1000
                ctx_ids, context_text = list(assembled.token_ids), context_text or assembled.text
                phrases, candidates = list(assembled.bias_phrases), list(assembled.correction_phrases)
                written_context, spellings = assembled.written_text, list(assembled.spellings)
            pcm16 = (np.clip(samples[start:end], -1, 1) * 32767).astype("<i2").tobytes()
            request = internal_pb2.DecodeRequest(context_ids=ctx_ids, bias_phrases=phrases,
                                                 correction_phrases=candidates, context_text=written_context,
                                                 spellings=spellings, audio_s=(end - start) / 16_000, urgent=urgent,
                                                 draft_tokens=draft if len(windows) == 1 else ())
            encoded, decoded = self.encode_decode(pcm16, config, request, timings, left)
            if not language:
                language, probability = decoded.language, decoded.language_probability
                if config.language.strip().lower() in ("", "auto"):  # identified: the turn's other windows use it
                    identified = with_language(config, language)
                    if self.window_for(identified) != self.window_for(config):
                        # the language reads in a window of its own: this window again in it, as when it is given
                        encoded, decoded = self.encode_decode(pcm16, identified, request, timings, left)
                    config = identified
            alts = list(decoded.alternatives)
            pieces.append(alts)
            best = alts[0].text if alts else ""
            offset = start / 16_000
            timed: list[Word] = []
            if config.word_timestamps and alts and alts[0].words:  # the decoder aligned them
                timed = [Word(w.word, w.start_s, w.end_s, w.confidence) for w in alts[0].words]
            elif config.word_timestamps:  # a decoder without alignment: the CTC greedy words' times
                anchors = [Word(w.word, w.start_s, w.end_s) for w in encoded.ctc_words]
                timed = [Word(w.word, w.start_s, w.end_s, alts[0].confidence if alts else 0.0)
                         for w in align_words(best, anchors, (end - start) / 16_000)]
            if timed:  # boundaries moved to the pauses the window's audio shows
                snapped = snap_to_pauses([(w.start_s, w.end_s) for w in timed], samples[start:end])
                words += [Word(w.word, a + offset, b + offset, w.confidence) for w, (a, b) in zip(timed, snapped)]
            previous = best
        alternatives = merge_windows(pieces, " " if spaced(language or "en") else "")
        if alternatives and config.word_timestamps:
            alternatives[0].words.extend(common_pb2.WordTiming(word=w.word, start_s=w.start_s, end_s=w.end_s,
                                                               confidence=w.confidence) for w in words)
        if config.verbatim:  # the spoken form in `text` (words too), as Riva's verbatim_transcripts
            for alt in alternatives:
                alt.text = alt.normalized_text
            if alternatives and alternatives[0].words:
                spoken = [common_pb2.WordTiming(word=piece, start_s=w.start_s, end_s=w.end_s, confidence=w.confidence)
                          for w in alternatives[0].words for piece in normalize_text(w.word, language or "en").split()]
                del alternatives[0].words[:]
                alternatives[0].words.extend(spoken)
        timings.total_ms = (time.perf_counter() - t0) * 1000 + timings.decode_audio_ms
        return Transcript(alternatives, timings, context_text, len(samples) / 16_000, deadline_at, streamed=urgent,
                          language=language, language_probability=probability)

    def encode_decode(self, pcm16: bytes, config: common_pb2.RecognitionConfig, request: internal_pb2.DecodeRequest,
                      timings: common_pb2.StageTimings, left: Callable[[], float]) -> tuple[Any, Any]:
        """One window through the encoder (in its language's window) and the decoder: request carries the rest."""
        t = time.perf_counter()
        encoded = self.peers.encoder.Encode(internal_pb2.EncodeRequest(pcm16=pcm16, window_s=self.window_for(config)),
                                            timeout=left())
        timings.encode_ms += (time.perf_counter() - t) * 1000
        decode = internal_pb2.DecodeRequest()
        decode.CopyFrom(request)
        decode.speech.CopyFrom(encoded.speech)
        decode.config.CopyFrom(config)
        t = time.perf_counter()
        decoded = self.peers.decoder.Decode(decode, timeout=left())
        timings.decode_ms += (time.perf_counter() - t) * 1000
        return encoded, decoded

    def commit(self, done: Transcript, session_id: str, tenant: str = "",
               deadline_s: Optional[float] = None) -> recognizer_pb2.RecognizeResponse:
        """A transcribed turn becomes the session's newest user turn and a turn event; the response to send."""
        t0 = time.perf_counter()
        turn_id = new_turn_id(tenant)  # SubmitFeedback checks the caller's tenant against it
        if session_id and done.alternatives and done.alternatives[0].text:
            self.peers.context.AppendTurn(
                recognizer_pb2.AppendTurnRequest(
                    session_id=session_id,
                    turn=common_pb2.Turn(role="user", text=done.alternatives[0].text, turn_id=turn_id)),
                timeout=deadline_s or self.settings.deadline_s,
            )
        trace_id = current_trace_id()
        self.publish_turn(turn_id, session_id, done.alternatives, done.context_text, trace_id, done.audio_s, tenant)
        done.timings.total_ms += (time.perf_counter() - t0) * 1000
        tm = done.timings
        observe_stages(tm.decode_audio_ms, tm.encode_ms, tm.context_ms, tm.decode_ms, tm.total_ms)
        AUDIO_SECONDS.labels("stream" if done.streamed else "request").inc(done.audio_s)
        return recognizer_pb2.RecognizeResponse(turn_id=turn_id, alternatives=done.alternatives, timings=done.timings,
                                                audio_seconds=done.audio_s, trace_id=trace_id, language=done.language,
                                                language_probability=done.language_probability)

    def partial(self, samples: np.ndarray, session_id: str, config: common_pb2.RecognitionConfig,
                request_context: common_pb2.RequestContext, deadline_s: float) -> Interim:
        """An interim result of a turn still being spoken: its last window (at most segment_s), greedy, with the
        turn's context (a name said so far comes out as the context spells it), and the language it was decoded in.
        Raises grpc.RpcError."""
        deadline_at = time.perf_counter() + deadline_s

        def left() -> float:
            return max(0.05, deadline_at - time.perf_counter())

        window = samples[-int(self.decoding.segment_s * 16_000):]
        written, spellings, ids = "", [], []
        if not config.disable_context:
            assembled = self.peers.context.Assemble(
                internal_pb2.AssembleRequest(session_id=session_id, context=request_context), timeout=left())
            written, spellings, ids = assembled.written_text, list(assembled.spellings), list(assembled.token_ids)
        pcm16 = (np.clip(window, -1, 1) * 32767).astype("<i2").tobytes()
        encoded = self.peers.encoder.Encode(internal_pb2.EncodeRequest(pcm16=pcm16, window_s=self.window_for(config)),
                                            timeout=left())
        decoded = self.peers.decoder.Decode(
            internal_pb2.DecodeRequest(speech=encoded.speech, context_ids=ids, config=config, context_text=written,
                                       spellings=spellings, audio_s=len(window) / 16_000, partial=True),
            timeout=left())
        # the tokens are a draft of this audio only while the window holds the whole turn
        tokens = list(decoded.tokens) if len(window) == len(samples) else []
        if not decoded.alternatives:
            return Interim(common_pb2.Alternative(), decoded.language, decoded.language_probability, tokens)
        best = decoded.alternatives[0]
        if config.verbatim:
            best.text = best.normalized_text
        return Interim(best, decoded.language, decoded.language_probability, tokens)

    def publish_turn(self, turn_id: str, session_id: str, alts: list[common_pb2.Alternative], context_text: str,
                     trace_id: str, seconds: float, tenant: str = "") -> None:
        event = events_pb2.TurnEvent(
            turn_id=turn_id, session_id=session_id, tenant=tenant, context=context_text, trace_id=trace_id,
            audio_seconds=seconds, created_unix=time.time(),
            nbest=[events_pb2.TurnEvent.Hypothesis(text=a.text, score=a.score) for a in alts])
        try:
            self.events.publish(TURNS_SUBJECT, event.SerializeToString(), msg_id=turn_id)
        except Exception:  # the user still gets the result; feedback on this turn cannot be scored
            log.exception("could not publish turn %s", turn_id)

    def submit_feedback(self, turn_id: str, corrected: str, keywords: list[str], tenant: str = "") -> None:
        """Raises on failure: feedback is acknowledged only once it is stored in the event stream."""
        event = events_pb2.FeedbackEvent(turn_id=turn_id, corrected_text=corrected, keywords=keywords, tenant=tenant,
                                         created_unix=time.time())
        self.events.publish(FEEDBACK_SUBJECT, event.SerializeToString(),
                            msg_id=sample_id_of(turn_id, corrected, keywords))


@dataclass
class Interim:
    best: common_pb2.Alternative
    language: str  # the model's code of the language decoded, given or identified
    language_probability: float
    tokens: list[int] = field(default_factory=list)  # the decoder's: the draft of the turn's final (transcribe())


def with_language(config: common_pb2.RecognitionConfig, language: str) -> common_pb2.RecognitionConfig:
    """The config with its (empty) language set to one identified earlier (the turn's first window, an interim)."""
    out = common_pb2.RecognitionConfig()
    out.CopyFrom(config)
    out.language = language
    return out


def merge_windows(pieces: list[list[common_pb2.Alternative]], sep: str = " ") -> list[common_pb2.Alternative]:
    """Alternative i of a multi-window turn joins each window's i-th hypothesis (or its best); its confidence is
    the windows' weighted by their words. Words and times are the pipeline's to join (they need window offsets)."""
    if len(pieces) == 1:
        for alt in pieces[0]:
            del alt.words[:]
        return pieces[0]
    n = max((len(p) for p in pieces), default=0)
    merged = []
    for i in range(n):
        chosen = [p[min(i, len(p) - 1)] for p in pieces if p]
        counts = [max(1, len(a.normalized_text.split())) for a in chosen]
        merged.append(common_pb2.Alternative(
            text=sep.join(a.text for a in chosen if a.text), score=sum(a.score for a in chosen),
            normalized_text=" ".join(a.normalized_text for a in chosen if a.normalized_text),
            confidence=sum(a.confidence * c for a, c in zip(chosen, counts)) / sum(counts)))
    return merged
