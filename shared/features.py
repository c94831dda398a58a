"""Log-mel filterbank features, computed in numpy so the ONNX encoder path needs no torch."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class FbankConfig:
    sample_rate: int = 16_000
    n_fft: int = 512
    win_length: int = 400  # 25 ms
    hop_length: int = 160  # 10 ms
    n_mels: int = 80
    f_min: float = 20.0
    f_max: float = 7_600.0
    # frequency warp of the filterbank (vocal tract length normalisation): a filter meant for f reads the
    # spectrum at warp * f up to a knee, then linearly to f_max, so 1.1 reads a shorter vocal tract's
    # formants where a longer one's would be; 1.0 is the plain filterbank
    warp: float = 1.0


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log1p(hz / 700.0)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    return 700.0 * np.expm1(mel / 1127.0)


def warp_frequencies(hz: np.ndarray, warp: float, f_max: float) -> np.ndarray:
    """Piecewise-linear VTLN warp (Kaldi's shape): hz * warp below the knee, then a line to f_max,
    so that no filter leaves the band."""
    knee = 0.8 * f_max * min(1.0, 1.0 / warp)
    upper = knee * warp + (hz - knee) * (f_max - knee * warp) / (f_max - knee)
    return np.where(hz <= knee, hz * warp, upper)


@lru_cache(maxsize=16)
def mel_filters(cfg: FbankConfig) -> np.ndarray:
    """Triangular filters, shape (n_mels, n_fft // 2 + 1)."""
    bins = np.linspace(0, cfg.sample_rate / 2, cfg.n_fft // 2 + 1)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array(cfg.f_min)), _hz_to_mel(np.array(cfg.f_max)), cfg.n_mels + 2))
    if cfg.warp != 1.0:
        edges = warp_frequencies(edges, cfg.warp, cfg.f_max)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).astype(np.float32)


@lru_cache(maxsize=4)
def _window(cfg: FbankConfig) -> np.ndarray:
    win = np.hanning(cfg.win_length + 2)[1:-1].astype(np.float32)
    pad = cfg.n_fft - cfg.win_length
    return np.pad(win, (pad // 2, pad - pad // 2))


def num_frames(num_samples: int, cfg: FbankConfig = FbankConfig()) -> int:
    return max(1, 1 + (num_samples - cfg.win_length) // cfg.hop_length) if num_samples >= cfg.win_length else 1


def fbank(samples: np.ndarray, cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """Samples (N,) float32 at cfg.sample_rate -> log-mel features (T, n_mels) float32."""
    return log_mel(power_spectrum(samples, cfg), cfg)


def warped_fbanks(samples: np.ndarray, warps: Sequence[float], cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """Samples (N,) -> log-mel features under each frequency warp (K, T, n_mels), one FFT for all."""
    power = power_spectrum(samples, cfg)
    return np.stack([log_mel(power, dataclasses.replace(cfg, warp=w)) for w in warps])


def power_spectrum(samples: np.ndarray, cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """Samples (N,) -> pre-emphasised, windowed power spectrum (T, n_fft // 2 + 1) float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.shape[0] < cfg.win_length:
        samples = np.pad(samples, (0, cfg.win_length - samples.shape[0]))
    samples = np.append(samples[0], samples[1:] - 0.97 * samples[:-1])  # pre-emphasis
    t = num_frames(samples.shape[0], cfg)
    pad = (cfg.n_fft - cfg.win_length) // 2
    padded = np.pad(samples, (pad, cfg.n_fft))
    idx = np.arange(cfg.n_fft)[None, :] + cfg.hop_length * np.arange(t)[:, None]
    frames = padded[idx] * _window(cfg)[None, :]
    return (np.abs(np.fft.rfft(frames, n=cfg.n_fft, axis=1)) ** 2).astype(np.float32)


def log_mel(power: np.ndarray, cfg: FbankConfig = FbankConfig()) -> np.ndarray:
    """Power spectrum (T, n_fft // 2 + 1) -> log-mel features (T, n_mels) float32."""
    return np.log(power @ mel_filters(cfg).T + 1e-6).astype(np.float32)


def normalize(feats: np.ndarray) -> np.ndarray:
    """Per-utterance mean/variance normalisation, (T, F) -> (T, F)."""
    mean = feats.mean(axis=0, keepdims=True)
    std = feats.std(axis=0, keepdims=True) + 1e-5
    return ((feats - mean) / std).astype(np.float32)


# ---- Whisper's log-mel (the `whisper` encoder's input): 25 ms Hann frames every 10 ms, centred with
# reflect padding, 80 Slaney-normalised mel filters, log10 clamped to 8 below the utterance's peak.
WHISPER_N_FFT, WHISPER_HOP, WHISPER_RATE = 400, 160, 16_000


def _slaney_hz_to_mel(hz: np.ndarray) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    log_step = np.log(6.4) / 27.0
    return np.where(hz >= 1000.0, 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / log_step, 3.0 * hz / 200.0)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    log_step = np.log(6.4) / 27.0
    return np.where(mel >= 15.0, 1000.0 * np.exp(log_step * (mel - 15.0)), 200.0 * mel / 3.0)


@lru_cache(maxsize=4)
def whisper_mel_filters(n_mels: int = 80) -> np.ndarray:
    """Slaney-scale, area-normalised triangular filters (n_mels, n_fft // 2 + 1), as librosa builds Whisper's."""
    bins = np.linspace(0, WHISPER_RATE / 2, WHISPER_N_FFT // 2 + 1)
    edges = _slaney_mel_to_hz(np.linspace(0.0, float(_slaney_hz_to_mel(np.array(WHISPER_RATE / 2))), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - bins[None, :]
    rising, falling = -ramps[:-2] / widths[:-1, None], ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


def whisper_log_mel(samples: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Samples (N,) float32 at 16 kHz -> Whisper's normalised log-mel (max(N // 160, 1), n_mels) float32."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.shape[0] < WHISPER_N_FFT:
        samples = np.pad(samples, (0, WHISPER_N_FFT - samples.shape[0]))
    half = WHISPER_N_FFT // 2
    padded = np.pad(samples, (half, half), mode="reflect")
    t = samples.shape[0] // WHISPER_HOP  # torch.stft gives one more frame; Whisper drops the last
    idx = np.arange(WHISPER_N_FFT)[None, :] + WHISPER_HOP * np.arange(t)[:, None]
    window = np.hanning(WHISPER_N_FFT + 1)[:-1].astype(np.float32)  # periodic Hann, as torch.hann_window
    power = np.abs(np.fft.rfft(padded[idx] * window[None, :], axis=1)) ** 2
    log_spec = np.log10(np.maximum(power @ whisper_mel_filters(n_mels).T.astype(np.float64), 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return ((log_spec + 4.0) / 4.0).astype(np.float32)


def encoder_features(samples: np.ndarray, kind: str, warps: Sequence[float] = (1.0,), n_mels: int = 80) -> np.ndarray:
    """16 kHz float32 (N,) -> an encoder's input frames (K, T, F). kind "fbank": normalised log-mel under
    each warp (LUISE); "whisper_mel": Whisper's own frames with n_mels bins (128 for large-v3), once (warps do
    not apply to a pretrained encoder)."""
    if kind == "whisper_mel":
        return whisper_log_mel(samples, n_mels)[None]
    if kind != "fbank":
        raise ValueError(f"unknown feature kind {kind!r}")
    return np.stack([normalize(f) for f in warped_fbanks(samples, warps)])
