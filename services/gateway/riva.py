"""NVIDIA Riva's ASR API (nvidia.riva.asr.RivaSpeechRecognition) on our gRPC port, so that `riva.client.ASRService`
works unchanged. Each RPC converts the Riva request to ours and calls RecognizerService with the same grpc context:
one recognition path, the same validation, statuses, API keys, tenants and admission limits (guard.py admits by
method name, and Riva's are also called Recognize and StreamingRecognize). The messages are the classes that
nvidia-riva-client ships. Mapping:

- audio: bytes starting with RIFF/RF64/fLaC/OggS/FORM, or encoding FLAC/OGGOPUS, take our container path (the
  file's own rate and channels win over sample_rate_hertz/audio_channel_count); else raw pcm_s16le at
  sample_rate_hertz (0 = 16000) x audio_channel_count (LINEAR_PCM and ENCODING_UNSPECIFIED). MULAW/ALAW are
  expanded to pcm_s16le with G.711's tables. Streams take LINEAR_PCM, MULAW or ALAW chunks at sample_rate_hertz
  (0 = 16000); riva.client streams a WAV file as it is, header first: a leading WAV header sets the encoding and
  channels (its rate must be sample_rate_hertz) and is dropped. Several channels are averaged to mono.
- config: language_code -> language; max_alternatives -> nbest (0 -> 1, at most the server's beam);
  enable_word_time_offsets -> word_timestamps; verbatim_transcripts -> verbatim; enable_automatic_punctuation
  false (and not verbatim) -> punctuation stripped from the words' edges and lower case, words too;
  speech_contexts phrases with boost > 0 -> hotwords (boost <= 0, Riva's negative boosting, is ignored: we have
  no way to suppress a word); model must be "" or ours; custom_configuration "session_id" / "prompt" -> our session
  (dialogue history) and prompt, other keys ignored; endpointing_config.stop_history ms > 0 -> silence_ms, < 0 turns
  endpointing off (ours: the whole stream is one utterance, ended at half-close); interim_results as is. Speaker
  diarization is refused; profanity_filter and separate_recognition_per_channel are ignored.
- results, as Riva servers fill them: one SpeechRecognitionResult, channel_tag 1, audio_processed in seconds;
  finals' transcripts end with a space (clients concatenate them); WordInfo times in integer ms from the start of
  the audio (of the stream when streaming); confidence and words on finals only, stability on interims only;
  every turn our stream ends (VAD) is one Riva final.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any, Optional

import grpc
import numpy as np
from riva.client.proto import riva_asr_pb2, riva_asr_pb2_grpc, riva_audio_pb2

from seedasr.v1 import common_pb2, recognizer_pb2
from services.gateway.server import RecognizerService
from services.runtime import Registration
from shared.decoding import languages_for

ENC = riva_audio_pb2.AudioEncoding
CONTAINER_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"FORM")
STREAM_ENCODINGS = (ENC.ENCODING_UNSPECIFIED, ENC.LINEAR_PCM, ENC.MULAW, ENC.ALAW)
WAV_TAGS = {(1, 16): ENC.LINEAR_PCM, (0xFFFE, 16): ENC.LINEAR_PCM, (7, 8): ENC.MULAW, (6, 8): ENC.ALAW}  # (tag, bits)
MAX_HEADER = 65_536  # bytes of a streamed WAV header we wait for before giving up
PUNCT = ".,?!;:\"“”()[]…¡¿—–"  # stripped from a word's edges without punctuation (keeps 3.5, don't, -5)


def _g711_tables() -> dict[int, np.ndarray]:
    """int16 sample of each of the 256 G.711 codes (the same as audioop's ulaw2lin/alaw2lin)."""
    b = np.arange(256)
    u = ~b & 0xFF
    mag = (((u & 0x0F) << 3) + 0x84) << ((u >> 4) & 7)
    mulaw = np.where(u & 0x80, 0x84 - mag, mag - 0x84)
    a = b ^ 0x55
    seg = (a >> 4) & 7
    mag = np.where(seg == 0, ((a & 0x0F) << 4) + 8, (((a & 0x0F) << 4) + 0x108) << np.maximum(seg - 1, 0))
    return {ENC.MULAW: mulaw.astype("<i2"), ENC.ALAW: np.where(a & 0x80, mag, -mag).astype("<i2")}


G711 = _g711_tables()


def wav_header(head: bytes) -> Optional[tuple[int, int, int, int]]:
    """(encoding, channels, rate, offset of the samples) of the WAV file `head` begins; None while the header is
    incomplete. Raises ValueError for a WAV that is not 16-bit PCM, mu-law or A-law. The data size is not read:
    streaming writers leave it 0 or 0xFFFFFFFF."""
    pos, fmt = 12, None
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if cid == b"data":
            if fmt is None:
                raise ValueError("WAV header without a fmt chunk")
            return (*fmt, pos + 8)
        if cid == b"fmt ":
            if pos + 24 > len(head):
                return None
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", head, pos + 8)
            if (tag, bits) not in WAV_TAGS or not channels:
                raise ValueError("a streamed WAV must hold 16-bit PCM, mu-law or A-law samples")
            fmt = (WAV_TAGS[tag, bits], channels, rate)
        pos += 8 + size + (size & 1)  # chunks are padded to even sizes
    return None


class StreamAudio:
    """Riva audio chunks -> mono pcm_s16le chunks of whole frames (an incomplete frame waits for the next chunk).
    A WAV header at the start (riva.client streams a WAV file as it is) sets the encoding and channels and is dropped;
    its rate must be the config's, which our stream was opened with."""

    def __init__(self, encoding: int, channels: int, rate: int) -> None:
        self.rate, self.rest = rate, b""
        self.head: Optional[bytes] = b""  # the first bytes while they may be a WAV header; None once past them
        self._format(encoding, channels)

    def _format(self, encoding: int, channels: int) -> None:
        self.table = G711.get(encoding)  # None: 16-bit PCM
        self.channels = max(1, channels)
        self.frame = (1 if self.table is not None else 2) * self.channels  # bytes

    def pcm(self, chunk: bytes) -> bytes:
        """Raises ValueError for a WAV header we cannot take."""
        if self.head is not None:
            head = self.head + chunk
            if head[:4] == b"RIFF"[:len(head)]:
                found = wav_header(head) if len(head) >= 4 else None
                if found is None:
                    if len(head) > MAX_HEADER:
                        raise ValueError(f"no WAV data chunk in the first {MAX_HEADER} bytes")
                    self.head = head
                    return b""
                encoding, channels, rate, offset = found
                if rate != self.rate:
                    raise ValueError(f"the WAV header says {rate} Hz but sample_rate_hertz is {self.rate} (0 means 16000)")
                self._format(encoding, channels)
                head = head[offset:]
            chunk, self.head = head, None
        data = self.rest + chunk
        cut = len(data) - len(data) % self.frame
        data, self.rest = data[:cut], data[cut:]
        if self.table is None and self.channels == 1:
            return data
        x = self.table[np.frombuffer(data, np.uint8)] if self.table is not None else np.frombuffer(data, "<i2")
        x = x.reshape(-1, self.channels).mean(axis=1) if self.channels > 1 else x  # (frames,)
        return x.astype("<i2").tobytes()


def _plain(text: str) -> str:
    """Without punctuation: lower case, punctuation at the words' edges dropped (and words left empty by it)."""
    return " ".join(w for w in (w.strip(PUNCT).lower() for w in text.split()) if w)


def convert_config(cfg: Any, model_name: str, max_nbest: int = 32) -> tuple[common_pb2.RecognitionConfig,
                                                                         common_pb2.RequestContext, str]:
    """A Riva RecognitionConfig -> (our config, request context, session id). Raises ValueError when refused."""
    if cfg.model and cfg.model != model_name:
        raise ValueError(f"unknown model {cfg.model!r}; this server serves {model_name!r}")
    if cfg.diarization_config.enable_speaker_diarization:
        raise ValueError("speaker diarization is not supported")
    ours = common_pb2.RecognitionConfig(language=cfg.language_code, nbest=min(max(1, cfg.max_alternatives), max_nbest),
                                        word_timestamps=cfg.enable_word_time_offsets, verbatim=cfg.verbatim_transcripts)
    hotwords: list[str] = []
    for sc in cfg.speech_contexts:
        if sc.boost > 0:  # negative boosts ask Riva to suppress words: nothing here can
            hotwords += [p.strip() for p in sc.phrases if p.strip() and p.strip() not in hotwords]
    custom = cfg.custom_configuration
    return ours, common_pb2.RequestContext(hotwords=hotwords, prompt=custom.get("prompt", "")), custom.get("session_id", "")


class RivaRecognizer(riva_asr_pb2_grpc.RivaSpeechRecognitionServicer):
    def __init__(self, service: RecognizerService, model_name: str) -> None:
        self.service, self.model_name = service, model_name

    def _convert(self, cfg: Any, context: Any) -> tuple[common_pb2.RecognitionConfig, common_pb2.RequestContext, str]:
        try:
            return convert_config(cfg, self.model_name, self.service.decoding.beam_size)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise  # unreachable: abort raises

    def _alternative(self, alt: common_pb2.Alternative, cfg: Any, final: bool, offset_s: float = 0.0) -> Any:
        plain = not cfg.enable_automatic_punctuation and not cfg.verbatim_transcripts
        text = _plain(alt.text) if plain else alt.text
        out = riva_asr_pb2.SpeechRecognitionAlternative(transcript=text + " " if final and text else text)
        if final:  # Riva: confidence and words on finals only
            out.confidence = alt.confidence
            for w in alt.words:
                word = _plain(w.word) if plain else w.word
                if word:
                    out.words.add(word=word, start_time=round((w.start_s + offset_s) * 1000),
                                  end_time=round((w.end_s + offset_s) * 1000), confidence=w.confidence)
        return out

    def Recognize(self, request: Any, context: Any) -> Any:
        config, req_ctx, session_id = self._convert(request.config, context)
        cfg, data = request.config, request.audio
        if data[:4] in CONTAINER_MAGIC or cfg.encoding in (ENC.FLAC, ENC.OGGOPUS):
            audio = common_pb2.Audio(content=data)
        else:
            table = G711.get(cfg.encoding)
            pcm = table[np.frombuffer(data, np.uint8)].tobytes() if table is not None else data
            audio = common_pb2.Audio(content=pcm, encoding="pcm_s16le", sample_rate=cfg.sample_rate_hertz or 16_000,
                                     channels=cfg.audio_channel_count or 1)
        resp = self.service.Recognize(recognizer_pb2.RecognizeRequest(session_id=session_id, audio=audio, config=config,
                                                                      context=req_ctx), context)
        alternatives = [self._alternative(a, cfg, final=True) for a in resp.alternatives]
        for alt in alternatives:
            alt.language_code.append(resp.language)
        result = riva_asr_pb2.SpeechRecognitionResult(alternatives=alternatives, channel_tag=1,
                                                      audio_processed=resp.audio_seconds)
        out = riva_asr_pb2.RecognizeResponse(results=[result])
        if request.HasField("id"):  # Riva echoes the caller's request id
            out.id.CopyFrom(request.id)
        return out

    def StreamingRecognize(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        # the whole stream, its config too, is read by our stream's reader thread (_requests): the config is awaited
        # with the idle timeout as ours is, and a bad one ends the call with its status from there
        first: list[Any] = []  # Riva's config message, once read (before any response)
        for resp in self.service.StreamingRecognize(self._requests(request_iterator, first, context), context):
            cfg = first[0].streaming_config.config
            alts = [self._alternative(a, cfg, resp.is_final, resp.turn_start_s) for a in resp.result.alternatives]
            for alt in alts if resp.result.language else ():
                alt.language_code.append(resp.result.language)
            result = riva_asr_pb2.StreamingRecognitionResult(
                alternatives=alts, is_final=resp.is_final, stability=0.0 if resp.is_final else resp.stability,
                channel_tag=1, audio_processed=resp.turn_end_s)  # seconds of the stream so far
            out = riva_asr_pb2.StreamingRecognizeResponse(results=[result])
            if first[0].HasField("id"):
                out.id.CopyFrom(first[0].id)
            yield out

    def _requests(self, request_iterator: Iterator[Any], first: list[Any], context: Any) -> Iterator[Any]:
        """Riva's stream as ours: its config converted, then its audio as pcm_s16le chunks."""
        head = next(request_iterator, None)
        if head is None or head.WhichOneof("streaming_request") != "streaming_config":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the first message must carry streaming_config")
            return
        cfg = head.streaming_config.config
        config, req_ctx, session_id = self._convert(cfg, context)
        if cfg.encoding not in STREAM_ENCODINGS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "streamed audio must be LINEAR_PCM (16-bit), MULAW or ALAW")
        rate, stop = cfg.sample_rate_hertz or 16_000, cfg.endpointing_config.stop_history
        first.append(head)
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
            session_id=session_id, config=config, context=req_ctx, encoding="pcm_s16le", sample_rate=rate,
            interim_results=head.streaming_config.interim_results,
            silence_ms=stop if stop > 0 else (-1 if stop < 0 else 0)))
        yield from self._audio(request_iterator, StreamAudio(cfg.encoding, cfg.audio_channel_count, rate), context)

    @staticmethod
    def _audio(request_iterator: Iterator[Any], audio: StreamAudio, context: Any) -> Iterator[Any]:
        """The rest of the stream as our audio chunks (read on the stream's reader thread)."""
        for req in request_iterator:
            if req.WhichOneof("streaming_request") == "streaming_config":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "streaming_config may only be sent first")
            try:
                pcm = audio.pcm(req.audio_content)
            except ValueError as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            if pcm:
                yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm)

    def GetRivaSpeechRecognitionConfig(self, request: Any, context: Any) -> Any:
        """Our model, once per type (Riva lists streaming models as "online", batch ones as "offline"; ours is both),
        so clients that pick a model by type find it either way; `languages` lists every code a request's
        language_code may name (the bundle's), en-US being the one Riva's clients ask for by default."""
        resp = riva_asr_pb2.RivaSpeechRecognitionConfigResponse()
        if request.model_name and request.model_name != self.model_name:
            return resp
        languages = ",".join(languages_for(self.service.settings))
        for kind in ("offline", "online"):
            resp.model_config.add(model_name=self.model_name, parameters={
                "type": kind, "language_code": "en-US", "sample_rate": "16000", "streaming": "True", "offline": "True",
                "model_family": "seedasr", "languages": languages})
        return resp


def riva_registration(service: RecognizerService, model_name: str) -> Registration:
    """Riva's ASR service beside ours; public: the same API keys, tenants and admission limits."""
    return Registration(RivaRecognizer(service, model_name), riva_asr_pb2.DESCRIPTOR.services_by_name["RivaSpeechRecognition"],
                        public=True)
