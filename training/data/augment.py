"""Waveform augmentation so a few synthetic voices cover many speakers and rooms.

Voice conversion (Praat's "Change gender": PSOLA pitch change plus formant scaling) turns a male
voice female and a female one male, so every engine lends its vocoder to speakers it does not ship.
Speed perturbation and vocal-tract-length-like formant warping (resampling then restoring the
duration), LPC vocoding (the envelope kept, the excitation replaced by pulses and noise: the buzz of the
diphone and statistical-parametric voices), additive white/pink/babble-like noise at random SNR, synthetic
reverberation and a telephone band, and silence added at the edges (served turns start and end with up to half a second
of it, synthesised ones with almost none). Feature-level SpecAugment lives in training/common.py.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, resample_poly, sosfilt

RATE = 16_000


def speed(samples: np.ndarray, factor: float) -> np.ndarray:
    """Play faster/slower (pitch and tempo together), like Kaldi's speed perturbation."""
    up = 100
    down = int(round(100 * factor))
    return resample_poly(samples, up, down).astype(np.float32)


def formant_shift(samples: np.ndarray, factor: float) -> np.ndarray:
    """Scale the spectral envelope (a vocal-tract-length change) while keeping the duration.

    Resample by `factor` (shifting every frequency), then time-stretch back with a phase-free
    overlap-add of windows, which keeps the shifted spectrum but restores the original tempo.
    """
    shifted = speed(samples, factor)
    win, hop_out = 512, 128
    hop_in = max(1, int(round(hop_out * len(shifted) / max(len(samples), 1))))
    window = np.hanning(win).astype(np.float32)
    n_frames = max(1, (len(samples) - win) // hop_out + 1)
    out = np.zeros(n_frames * hop_out + win, dtype=np.float32)
    norm = np.zeros_like(out)
    padded = np.pad(shifted, (0, win + hop_in * n_frames))
    for i in range(n_frames):
        seg = padded[i * hop_in : i * hop_in + win] * window
        out[i * hop_out : i * hop_out + win] += seg
        norm[i * hop_out : i * hop_out + win] += window
    return (out / np.maximum(norm, 1e-3))[: len(samples)].astype(np.float32)


def median_f0(samples: np.ndarray) -> float:
    """Median pitch in Hz of the voiced frames (Praat's pitch track); nan when nothing is voiced."""
    import parselmouth
    from parselmouth.praat import call

    return float(call(parselmouth.Sound(samples.astype(np.float64), RATE).to_pitch(), "Get quantile", 0, 0, 0.5, "Hertz"))


def change_voice(samples: np.ndarray, rng: np.random.Generator, cross_sex: bool = True) -> tuple[np.ndarray, str]:
    """A new speaker from an old one. Across sexes, a low voice (median F0 under 160 Hz) gets a higher
    pitch (170-240 Hz) and a shorter vocal tract (formants x1.08-1.22), a high one the reverse
    (90-135 Hz, x0.84-0.93). Within a sex (cross_sex=False) F0 and formants move less (low: 85-150 Hz,
    x0.92-1.06; high: 170-250 Hz, x0.95-1.10). Either way the intonation range is scaled by 0.5-1.4
    (diphone voices speak flatter than clustergen ones). Duration is kept.
    Returns the samples and a tag like "vc1.15f210r0.8" ("vs..." within a sex)."""
    import parselmouth
    from parselmouth.praat import call

    f0 = median_f0(samples)
    if not np.isfinite(f0):  # no voiced frames: nothing to convert
        return samples, ""
    low = f0 < 160
    if cross_sex:
        ratio, median = (rng.uniform(1.08, 1.22), rng.uniform(170, 240)) if low else \
            (rng.uniform(0.84, 0.93), rng.uniform(90, 135))
    else:
        ratio, median = (rng.uniform(0.92, 1.06), rng.uniform(85, 150)) if low else \
            (rng.uniform(0.95, 1.10), rng.uniform(170, 250))
    pitch_range = rng.uniform(0.5, 1.4)
    sound = parselmouth.Sound(samples.astype(np.float64), RATE)
    out = call(sound, "Change gender", 75, 600, ratio, median, pitch_range, 1.0)
    converted = out.values[0].astype(np.float32)[: len(samples)]
    return converted, f"{'vc' if cross_sex else 'vs'}{ratio:.2f}f{median:.0f}r{pitch_range:.1f}"


def _moving_rms(x: np.ndarray, win: int) -> np.ndarray:
    return np.sqrt(np.convolve(x * x, np.ones(win) / win, mode="same") + 1e-10)


def lpc_vocode(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """Resynthesise through an LPC vocoder (Praat through parselmouth): the spectral envelope of order
    12-22 per 5 ms frame is kept, the excitation becomes a pulse train at the tracked pitch (plus
    3-30% breath noise) where voiced and white noise elsewhere, scaled to the LPC residual's 10 ms
    energy. What is lost is what diphone (residual-excited LPC) and HMM / clustergen voices lose: the
    fine structure of a real source. The shipped model's WER on data/tune's first 40 utterances, so
    vocoded: 20.6 -> 24.6%. Duration is kept. Returns the samples and a tag like "lpc16b0.12"."""
    import parselmouth
    from parselmouth.praat import call

    order, breath = int(rng.integers(12, 23)), float(rng.uniform(0.03, 0.3))
    n = len(samples)
    sound = parselmouth.Sound(samples.astype(np.float64), RATE)
    lpc = call(sound, "To LPC (burg)", order, 0.025, 0.005, 50.0)  # pre-emphasis from 50 Hz
    residual = call([sound, lpc], "Filter (inverse)").values[0][:n]
    pitch = sound.to_pitch(time_step=0.005)
    voiced_frames = (pitch.selected_array["frequency"] > 0).astype(np.float64)
    if not voiced_frames.any():
        return samples, ""
    points = call([sound, pitch], "To PointProcess (cc)")
    pulses = call(points, "To Sound (pulse train)", RATE, 1.0, 0.05, 2000).values[0]
    pulses = np.pad(pulses, (0, max(0, n - len(pulses))))[:n]
    voiced = np.interp(np.arange(n) / RATE, pitch.xs(), voiced_frames, left=0, right=0) > 0.5
    white = rng.standard_normal(n)
    excitation = np.where(voiced, pulses / (_moving_rms(pulses, 400) + 1e-6) + breath * white, white)
    excitation *= _moving_rms(residual, 160) / _moving_rms(excitation, 160)
    out = call([parselmouth.Sound(excitation, RATE), lpc], "Filter", "no").values[0][:n]
    out = lfilter([1.0], [1.0, -np.exp(-2 * np.pi * 50 / RATE)], out)  # undo the analysis' pre-emphasis
    peak = float(np.max(np.abs(samples)))
    return (out * peak / (float(np.max(np.abs(out))) + 1e-9)).astype(np.float32), f"lpc{order}b{breath:.2f}"


def pad_edges(samples: np.ndarray, rng: np.random.Generator, lead_s: float = 0.5, trail_s: float = 0.8) -> tuple[np.ndarray, str]:
    """Prepend U(0, lead_s) and append U(0, trail_s) seconds of silence (a faint floor, not digital
    zero): a model that never heard a pause at the edges of a turn hallucinates or drops words there."""
    lead, trail = int(rng.uniform(0, lead_s) * RATE), int(rng.uniform(0, trail_s) * RATE)
    floor = 1e-4 * (float(np.max(np.abs(samples))) + 1e-6)
    head = (rng.standard_normal(lead) * floor).astype(np.float32)
    tail = (rng.standard_normal(trail) * floor).astype(np.float32)
    padded = np.concatenate([head, samples.astype(np.float32), tail])
    return padded, f"pad{lead / RATE:.2f}+{trail / RATE:.2f}"


def noise(n: int, rng: np.random.Generator, color: str) -> np.ndarray:
    white = rng.standard_normal(n).astype(np.float32)
    if color == "white":
        return white
    spectrum = np.fft.rfft(white)
    freqs = np.maximum(np.arange(len(spectrum)), 1)
    exponent = {"pink": 0.5, "brown": 1.0}[color]
    return np.fft.irfft(spectrum / freqs**exponent, n).astype(np.float32)


def add_noise(samples: np.ndarray, rng: np.random.Generator, snr_db: float, color: str = "pink") -> np.ndarray:
    nz = noise(len(samples), rng, color)
    sig_pow = float(np.mean(samples**2)) + 1e-9
    nz_pow = float(np.mean(nz**2)) + 1e-9
    return (samples + nz * np.sqrt(sig_pow / (nz_pow * 10 ** (snr_db / 10)))).astype(np.float32)


def reverb(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Convolve with an exponentially decaying noise impulse response (RT60 0.2-0.8 s)."""
    rt60 = rng.uniform(0.2, 0.8)
    n = int(rt60 * RATE)
    t = np.arange(n) / RATE
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    ir[0] = 1.0
    wet = fftconvolve(samples, ir / np.sqrt(np.sum(ir**2)))[: len(samples)]
    return (0.6 * samples + 0.4 * wet).astype(np.float32)


def telephone(samples: np.ndarray) -> np.ndarray:
    sos = butter(4, [300, 3400], btype="bandpass", fs=RATE, output="sos")
    narrow = resample_poly(sosfilt(sos, samples), 1, 2)
    return resample_poly(narrow, 2, 1).astype(np.float32)


def augment(samples: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Random chain of augmentations; about a third of utterances stay clean.

    Lighter than a production recipe on purpose: with minutes of CPU training, heavy corruption of
    nearly every utterance kept the acoustic model from learning the clean voices at all.
    """
    tags: list[str] = []
    if rng.random() < 0.35:
        return samples * np.float32(rng.uniform(0.3, 0.95) / (float(np.max(np.abs(samples))) + 1e-6)), ["clean"]
    if rng.random() < 0.6:
        f = float(rng.choice([0.9, 0.95, 1.05, 1.1]))
        samples, tags = speed(samples, f), tags + [f"speed{f}"]
    if rng.random() < 0.5:
        f = float(rng.uniform(0.85, 1.18))
        samples, tags = formant_shift(samples, f), tags + [f"vtlp{f:.2f}"]
    if rng.random() < 0.15:
        samples, tags = reverb(samples, rng), tags + ["reverb"]
    if rng.random() < 0.05:
        samples, tags = telephone(samples), tags + ["telephone"]
    if rng.random() < 0.5:
        snr = float(rng.uniform(5, 30))
        color = str(rng.choice(["white", "pink", "brown"]))
        samples, tags = add_noise(samples, rng, snr, color), tags + [f"{color}{snr:.0f}dB"]
    peak = float(np.max(np.abs(samples))) + 1e-6
    gain = rng.uniform(0.2, 0.95) / peak
    return (samples * gain).astype(np.float32), tags
