"""OpenAI's transcription response formats from one RecognizeResponse: json, text, srt, vtt, verbose_json.

Segments are cut from the best alternative's word times: after a word that ends a sentence, before a pause
of PAUSE_S, or before a cue would pass MAX_SEGMENT_S or MAX_SEGMENT_CHARS (subtitle cues stay readable).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

from seedasr.v1 import recognizer_pb2
from shared.languages import language_name, spaced

FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("segment", "word")
PAUSE_S = 0.8
MAX_SEGMENT_S = 8.0
MAX_SEGMENT_CHARS = 84  # two subtitle lines of 42
SENTENCE_END = (".", "?", "!", "。", "？", "！")


@dataclass
class Segment:
    start: float
    end: float
    words: list[Any] = field(default_factory=list)  # WordTiming
    sep: str = " "  # "" for a language written without spaces (each Chinese character is a word)

    @property
    def text(self) -> str:
        return self.sep.join(w.word for w in self.words)


def segments_of(resp: recognizer_pb2.RecognizeResponse) -> list[Segment]:
    """Cues from the best alternative's words; one cue spanning the audio when it has text but no words."""
    if not resp.alternatives or not resp.alternatives[0].text:
        return []
    best = resp.alternatives[0]
    if not best.words:
        return [Segment(0.0, resp.audio_seconds, [_Word(best.text, 0.0, resp.audio_seconds, best.confidence)])]
    out: list[Segment] = []
    sep = " " if spaced(resp.language or "en") else ""
    for w in best.words:
        cur = out[-1] if out else None
        if (cur is None or cur.words[-1].word.endswith(SENTENCE_END) or w.start_s - cur.end > PAUSE_S
                or w.end_s - cur.start > MAX_SEGMENT_S or len(cur.text) + 1 + len(w.word) > MAX_SEGMENT_CHARS):
            out.append(Segment(w.start_s, w.end_s, [w], sep))
        else:
            cur.words.append(w)
            cur.end = max(cur.end, w.end_s)
    return out


@dataclass
class _Word:  # a WordTiming look-alike for text without word times
    word: str
    start_s: float
    end_s: float
    confidence: float


def as_json(resp: recognizer_pb2.RecognizeResponse) -> dict[str, Any]:
    text = resp.alternatives[0].text if resp.alternatives else ""
    return {"text": text, "usage": {"type": "duration", "seconds": math.ceil(resp.audio_seconds)}}


def as_verbose_json(resp: recognizer_pb2.RecognizeResponse, words: bool) -> dict[str, Any]:
    """OpenAI's verbose_json (the language by name, as Whisper's); our additions (turn_id, confidence,
    language_probability) are extra keys clients ignore."""
    best = resp.alternatives[0] if resp.alternatives else None
    segments = []
    for i, seg in enumerate(segments_of(resp)):
        confidence = sum(w.confidence for w in seg.words) / len(seg.words)
        segments.append({
            "id": i, "seek": 0, "start": round(seg.start, 3), "end": round(seg.end, 3), "text": seg.text,
            "tokens": [], "temperature": 0.0,
            # the mean word confidence as a log-probability: OpenAI clients filter on avg_logprob < -1
            "avg_logprob": round(math.log(max(confidence, 1e-6)), 4),
            "compression_ratio": round(_compression_ratio(seg.text), 3),
            "no_speech_prob": 0.0,  # not estimated: the gateway recognises only audio the VAD or the caller sent
            "confidence": round(confidence, 4),
        })
    body: dict[str, Any] = {
        "task": "transcribe", "language": language_name(resp.language or "en"),
        "language_probability": round(resp.language_probability, 4),
        "duration": round(resp.audio_seconds, 3), "text": best.text if best else "", "segments": segments,
        "usage": {"type": "duration", "seconds": math.ceil(resp.audio_seconds)},
        "turn_id": resp.turn_id, "confidence": round(best.confidence, 4) if best else 0.0,
    }
    if words:
        body["words"] = [{"word": w.word, "start": round(w.start_s, 3), "end": round(w.end_s, 3),
                          "confidence": round(w.confidence, 4)} for w in (best.words if best else [])]
    return body


def as_subtitles(resp: recognizer_pb2.RecognizeResponse, kind: str) -> str:
    """SubRip (srt) or WebVTT (vtt) cues."""
    cues = []
    for i, seg in enumerate(segments_of(resp), 1):
        span = f"{_clock(seg.start, kind)} --> {_clock(seg.end, kind)}"
        cues.append(f"{i}\n{span}\n{seg.text}\n" if kind == "srt" else f"{span}\n{seg.text}\n")
    body = "\n".join(cues)
    return body if kind == "srt" else "WEBVTT\n\n" + body


def _clock(seconds: float, kind: str) -> str:
    ms = max(0, round(seconds * 1000))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{',' if kind == 'srt' else '.'}{ms:03d}"


def _compression_ratio(text: str) -> float:
    """Whisper's repetition check: raw bytes over zlib-compressed bytes."""
    raw = text.encode()
    return len(raw) / len(zlib.compress(raw)) if raw else 0.0
