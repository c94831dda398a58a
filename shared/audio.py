"""Audio decoding and validation shared by the gateway, the CLI and training.

Every entry point turns untrusted bytes into mono float32 samples at 16 kHz through
`decode_audio`, which raises `AudioError` (carrying the gRPC status name to answer with)
instead of letting a library exception escape.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from math import gcd

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

TARGET_RATE = 16_000


class AudioError(ValueError):
    """Audio that cannot be recognised. `status` names the gRPC status code to answer with."""

    def __init__(self, message: str, status: str = "INVALID_ARGUMENT") -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class AudioLimits:
    max_seconds: float = 600.0
    max_channels: int = 2
    min_rate: int = 4_000
    max_rate: int = 192_000
    max_bytes: int = 64 * 1024 * 1024


RAW_ENCODINGS = {"pcm_s16le": ("<i2", 32768.0), "pcm_f32le": ("<f4", 1.0)}


def _check_shape(samples: np.ndarray, rate: int, limits: AudioLimits) -> None:
    if not limits.min_rate <= rate <= limits.max_rate:
        raise AudioError(f"sample rate {rate} Hz outside [{limits.min_rate}, {limits.max_rate}]")
    channels = 1 if samples.ndim == 1 else samples.shape[1]
    if channels > limits.max_channels:
        raise AudioError(f"{channels} channels; at most {limits.max_channels} are accepted")
    seconds = samples.shape[0] / rate
    if seconds > limits.max_seconds:
        raise AudioError(
            f"audio is {seconds:.1f} s long; the limit is {limits.max_seconds:.0f} s",
            status="RESOURCE_EXHAUSTED",
        )
    if samples.shape[0] == 0:
        raise AudioError("audio holds no samples")


def _to_mono_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    samples = samples.astype(np.float32, copy=False)
    if not np.all(np.isfinite(samples)):
        raise AudioError("audio contains NaN or infinite samples")
    if rate != TARGET_RATE:
        g = gcd(rate, TARGET_RATE)
        samples = resample_poly(samples, TARGET_RATE // g, rate // g).astype(np.float32)
    return np.clip(samples, -1.0, 1.0)


def decode_audio(
    data: bytes,
    *,
    encoding: str = "",
    sample_rate: int = 0,
    channels: int = 1,
    limits: AudioLimits = AudioLimits(),
) -> np.ndarray:
    """Decode WAV/FLAC/OGG bytes, or raw PCM when `encoding` names one of RAW_ENCODINGS.

    Returns mono float32 samples at 16 kHz, shape (N,).
    """
    if not data:
        raise AudioError("audio is empty")
    if len(data) > limits.max_bytes:
        raise AudioError(
            f"audio is {len(data)} bytes; the limit is {limits.max_bytes}", status="RESOURCE_EXHAUSTED"
        )
    if encoding:
        if encoding not in RAW_ENCODINGS:
            raise AudioError(f"unknown raw encoding {encoding!r}; use one of {sorted(RAW_ENCODINGS)}")
        if sample_rate <= 0:
            raise AudioError("raw PCM needs a positive sample_rate")
        if channels <= 0:
            raise AudioError("raw PCM needs a positive channel count")
        dtype, scale = RAW_ENCODINGS[encoding]
        width = np.dtype(dtype).itemsize * channels
        if len(data) % width:
            raise AudioError(f"raw PCM length {len(data)} is not a multiple of the frame size {width}")
        with np.errstate(invalid="ignore"):  # float bytes may be signalling NaNs: refused below, not warned about
            samples = np.frombuffer(data, dtype=dtype).astype(np.float32) / scale
        samples = samples.reshape(-1, channels) if channels > 1 else samples
        rate = sample_rate
    else:
        try:
            with sf.SoundFile(io.BytesIO(data)) as f:
                rate = f.samplerate
                if f.channels > limits.max_channels:
                    raise AudioError(f"{f.channels} channels; at most {limits.max_channels} are accepted")
                if f.frames > limits.max_seconds * rate:
                    raise AudioError(
                        f"audio is {f.frames / rate:.1f} s long; the limit is {limits.max_seconds:.0f} s",
                        status="RESOURCE_EXHAUSTED",
                    )
                samples = f.read(dtype="float32", always_2d=False)
        except AudioError:
            raise
        except Exception as exc:  # soundfile raises several types for corrupt input
            reason = str(exc).rsplit(": ", 1)[-1] or type(exc).__name__
            raise AudioError(f"cannot decode audio ({reason}); send WAV, FLAC or OGG, or raw PCM with an encoding") from None
        if sample_rate and sample_rate != rate:
            raise AudioError(f"declared sample_rate {sample_rate} differs from the file's {rate}")
    _check_shape(samples, rate, limits)
    return _to_mono_16k(samples, rate)


class PcmStream:
    """Raw PCM chunks of one stream -> mono float32 at 16 kHz, at a constant cost per sample: soxr's streaming
    resampler keeps its filter state between chunks (resampling each chunk on its own would cost a whole filter
    per chunk, seconds of CPU for a stream of 1-sample chunks at 47,999 Hz, and click at every chunk boundary)."""

    def __init__(self, encoding: str, rate: int) -> None:
        import soxr

        if encoding not in RAW_ENCODINGS:
            raise AudioError(f"streaming encoding must be one of {sorted(RAW_ENCODINGS)}")
        if not 8_000 <= rate <= 48_000:
            raise AudioError(f"streaming sample_rate must be in [8000, 48000], got {rate}")
        self.dtype, self.scale = RAW_ENCODINGS[encoding]
        self.width = np.dtype(self.dtype).itemsize
        self.resampler = soxr.ResampleStream(rate, TARGET_RATE, 1, dtype="float32") if rate != TARGET_RATE else None

    def samples(self, chunk: bytes) -> np.ndarray:
        """(n,) float32 in [-1, 1]; n may be 0 while the resampler fills its filter."""
        if len(chunk) % self.width:
            raise AudioError(f"raw PCM chunk of {len(chunk)} bytes is not a multiple of the sample size {self.width}")
        with np.errstate(invalid="ignore"):  # signalling NaNs among random float bytes: refused just below
            x = np.frombuffer(chunk, dtype=self.dtype).astype(np.float32) / self.scale
        if not np.all(np.isfinite(x)):
            raise AudioError("audio contains NaN or infinite samples")
        if self.resampler is not None:
            x = self.resampler.resample_chunk(x)
        return np.clip(x, -1.0, 1.0)


class SampleBuffer:
    """A growing (N,) float32 buffer with amortised O(1) appends (a list of chunks costs an array object, about
    100 bytes, per chunk: a million 1-sample chunks would hold 100 MB)."""

    def __init__(self) -> None:
        self.data = np.zeros(TARGET_RATE, dtype=np.float32)
        self.size = 0

    def append(self, x: np.ndarray) -> None:
        end = self.size + len(x)
        if end > len(self.data):
            grown = np.zeros(max(end, 2 * len(self.data)), dtype=np.float32)
            grown[:self.size] = self.data[:self.size]
            self.data = grown
        self.data[self.size:end] = x
        self.size = end

    def view(self) -> np.ndarray:
        return self.data[:self.size]

    def clear(self) -> None:
        self.data, self.size = np.zeros(TARGET_RATE, dtype=np.float32), 0


def read_audio_file(path: str, limits: AudioLimits = AudioLimits()) -> np.ndarray:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc.strerror}", status="NOT_FOUND") from None
    return decode_audio(data, limits=limits)


def encode_wav(samples: np.ndarray, rate: int = TARGET_RATE) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()
