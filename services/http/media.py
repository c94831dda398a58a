"""Uploaded media (wav, flac, ogg/opus, mp3, webm/mkv, m4a/mp4, aiff) to mono 16 kHz samples, decoded with PyAV.
Errors are `AudioError`s, as shared/audio.py raises for the gRPC path.

The container is recognised from its first bytes and FFmpeg is told which demuxer to use: left to probe, FFmpeg
would also open playlists (HLS, concat) whose entries name local files or URLs, which an upload must never reach.
"""

from __future__ import annotations

import io

import av
import numpy as np

from shared.audio import TARGET_RATE, AudioError, AudioLimits

SUPPORTED = "wav, flac, ogg, opus, mp3, webm, m4a, mp4 or aiff"
MIN_RATE, MAX_RATE = 4_000, 192_000  # Hz, as shared/audio.py AudioLimits


def sniff_container(head: bytes) -> str:
    """FFmpeg's demuxer name for the container these first bytes start, or raise AudioError."""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mp3"  # an ID3 tag, or an MPEG audio frame's sync word
    if head[:4] == b"\x1aE\xdf\xa3":
        return "matroska"  # also WebM
    if head[4:8] == b"ftyp":
        return "mov"  # FFmpeg's demuxer for mp4, m4a, 3gp
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        return "aiff"
    raise AudioError(f"the upload is not a supported audio file; send {SUPPORTED}")


def _check_rate(rate: int) -> None:
    if not MIN_RATE <= (rate or 0) <= MAX_RATE:
        raise AudioError(f"sample rate {rate} Hz outside [{MIN_RATE}, {MAX_RATE}]")


def decode_media(data: bytes, limits: AudioLimits) -> np.ndarray:
    """(T,) float32 in [-1, 1] at 16 kHz from the first audio stream of `data`; stops reading past the limit."""
    if not data:
        raise AudioError("the uploaded file is empty")
    fmt = sniff_container(data[:16])
    max_samples = int(limits.max_seconds * TARGET_RATE)
    pieces: list[np.ndarray] = []
    count = 0
    try:
        with av.open(io.BytesIO(data), mode="r", format=fmt, metadata_errors="ignore") as container:
            stream = container.streams.audio[0] if container.streams.audio else None
            if stream is None:
                raise AudioError("the uploaded file holds no audio stream")
            if stream.channels and stream.channels > 8:
                raise AudioError(f"{stream.channels} channels; at most 8 are accepted")
            _check_rate(stream.sample_rate)
            # FFmpeg's resampler does the downmix and the rate change in one pass: float32 planar mono
            resampler = av.AudioResampler(format="flt", layout="mono", rate=TARGET_RATE)
            for frame in container.decode(stream):
                # checked before resampling: a frame at 1 Hz would grow 16,000 times in the resampler
                _check_rate(frame.sample_rate)
                if count + frame.samples * TARGET_RATE / frame.sample_rate > max_samples + TARGET_RATE:
                    raise AudioError(f"audio is longer than {limits.max_seconds:g} s, the limit",
                                     status="RESOURCE_EXHAUSTED")
                for out in resampler.resample(frame):
                    pieces.append(out.to_ndarray().reshape(-1))
                    count += pieces[-1].shape[0]
                if count > max_samples:
                    raise AudioError(f"audio is longer than {limits.max_seconds:g} s, the limit",
                                     status="RESOURCE_EXHAUSTED")
            for out in resampler.resample(None):  # what the resampler still holds
                pieces.append(out.to_ndarray().reshape(-1))
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, IndexError, StopIteration) as exc:
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        raise AudioError(f"cannot decode the upload as {fmt} audio ({reason}); send {SUPPORTED}") from None
    samples = np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)
    if samples.shape[0] == 0:
        raise AudioError("the uploaded file holds no audio samples")
    if samples.shape[0] > max_samples:
        raise AudioError(f"audio is {samples.shape[0] / TARGET_RATE:.1f} s long; the limit is {limits.max_seconds:.0f} s",
                         status="RESOURCE_EXHAUSTED")
    if not np.all(np.isfinite(samples)):
        raise AudioError("audio contains NaN or infinite samples")
    return np.clip(samples, -1.0, 1.0)
