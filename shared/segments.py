"""Turn audio into decodable windows and give words their times: numpy only (the gateway runs these
and installs no torch)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Word:
    word: str
    start_s: float
    end_s: float
    confidence: float = 0.0  # probability the word is right, where the decoder computed one



def frame_power(samples: np.ndarray, hop: int) -> np.ndarray:
    """samples (N,) -> mean power of each whole frame of `hop` samples, (N // hop,) float64."""
    frames = len(samples) // hop
    return (samples[: frames * hop].astype(np.float64).reshape(frames, hop) ** 2).mean(1)


def loud_frames(samples: np.ndarray, hop: int, below_peak_db: float, above_floor_db: float, floor_percentile: float,
                smooth_frames: int = 3) -> np.ndarray:
    """samples (N,) -> whether each frame of `hop` samples holds sound, (N // hop,) bool: its power, averaged over
    smooth_frames (one loud frame of noise is no sound), above both the loudest frame - below_peak_db and the noise
    floor (the floor_percentile-th frame) + above_floor_db."""
    power = frame_power(samples, hop)
    if len(power) == 0:
        return np.zeros(0, dtype=bool)
    if len(power) >= smooth_frames:  # ("same" returns the longer of the two)
        power = np.convolve(power, np.ones(smooth_frames) / smooth_frames, mode="same")
    db = 10 * np.log10(power + 1e-12)
    return db > max(db.max() - below_peak_db, np.percentile(db, floor_percentile) + above_floor_db)


def align_words(text: str, anchors: list[Word], duration_s: float) -> list[Word]:
    """Word timings for `text`: words matching the CTC greedy words take their times, the rest are
    spread evenly between their matched neighbours."""
    words = text.split()
    if not words:
        return []
    times: list[Optional[tuple[float, float]]] = [None] * len(words)
    matcher = difflib.SequenceMatcher(a=[w.word for w in anchors], b=words, autojunk=False)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            a = anchors[block.a + k]
            times[block.b + k] = (a.start_s, a.end_s)
    out: list[Word] = []
    i = 0
    while i < len(words):
        if times[i] is not None:
            start, end = times[i]  # type: ignore[misc]
            out.append(Word(words[i], start, end))
            i += 1
            continue
        j = i
        while j < len(words) and times[j] is None:
            j += 1
        left = out[-1].end_s if out else 0.0
        right = times[j][0] if j < len(words) else duration_s  # type: ignore[index]
        step = max(right - left, 0.0) / (j - i)
        for k in range(i, j):
            out.append(Word(words[k], left + (k - i) * step, left + (k - i + 1) * step))
        i = j
    return out


def segment_audio(samples: np.ndarray, max_s: float, rate: int = 16_000, min_s: float = 1.5,
                  min_pause_s: float = 0.25, quiet_db: float = 35.0, keep_pause_s: float = 0.2,
                  keep_edge_s: float = 0.5) -> list[tuple[int, int]]:
    """Windows of at most max_s seconds to recognise one by one, without the silence the model reads badly.

    Long audio is cut in the middle of every pause (min_pause_s of 10 ms frames quieter than the
    loudest by quiet_db) once a window holds min_s of audio: the model trained on one sentence per
    utterance and reads one sentence per window best (long-form set: 47.6% WER, against 53.2% with
    windows filled up to max_s). Where no such pause comes within max_s (noise, fast speech),
    the window is cut at its quietest 100 ms in its last third, so a cut still lands between words.
    Short audio (<= max_s) is one window.

    The model trained on synthesised sentences with their engines' own silence (medians 0.01 s
    before, 0.14 s after) and reads extra silence badly, so windows shed it: a window keeps at most
    keep_pause_s of the pause at each cut (long-form set 47.6% -> 43.1%; kept 0.05 / 0.1 / 0.2 / 0.3 s /
    all on data/long_tune, a training voice: 23.7 / 24.5 / 22.7 / 24.5 / 26.2%), and at most keep_edge_s
    of the silence the audio starts or ends with (what a VAD-ended turn trails). data/tune, 60
    sentences as synthesised / with 0.6 s of silence after / before: kept all 20.4 / 27.7 / 24.9%,
    0.25 s 21.4 / 21.7 / 23.4%, 0.3 s 20.2 / 22.2 / 21.7%, 0.4 s 20.2 / 24.0 / 21.2%, 0.5 s 20.6 / 22.2 /
    21.9%. 0.5 s it is: espeak ends its sentences with up to 0.5 s of its own silence (held-out accents:
    31.7% WER with 0.5 s kept as with all, 34.6% with 0.3 s)."""
    n = len(samples)
    hop = rate // 100  # 10 ms energy frames
    power = samples.astype(np.float64) ** 2
    frames = frame_power(samples, hop)
    quiet = frames < frames.max(initial=0.0) * 10 ** (-quiet_db / 10)
    limit = int(max_s * rate)
    windows, start = [], 0
    if n > limit:
        pause_centres = _pause_centres(quiet, int(min_pause_s * 100)) * hop
        energy = np.convolve(power, np.ones(hop * 10) / (hop * 10), mode="same")[::hop]
        while True:
            in_reach = pause_centres[(pause_centres >= start + min_s * rate) & (pause_centres <= start + limit)]
            if len(in_reach) and n - in_reach[0] >= min_s * rate:
                cut = int(in_reach[0])
            elif n - start > limit:
                lo, hi = start + limit * 2 // 3, start + limit
                cut = max((lo // hop + int(np.argmin(energy[lo // hop : hi // hop]))) * hop, start + hop)
            else:
                break
            windows.append((start, cut))
            start = cut
    windows.append((start, n))
    pause, edge = int(keep_pause_s * rate), int(keep_edge_s * rate)
    return [_shed_silence(quiet, hop, a, b, pause if a > 0 else edge, pause if b < n else edge) for a, b in windows]


def _shed_silence(quiet: np.ndarray, hop: int, start: int, end: int, keep_start: int, keep_end: int) -> tuple[int, int]:
    """Window [start, end) with at most keep_start / keep_end samples of the quiet frames at its edges."""
    def quiet_run(first: int, step: int) -> int:  # samples of quiet frames from frame `first` on, walking `step`
        f = first
        while 0 <= f < len(quiet) and quiet[f]:
            f += step
        return abs(f - first) * hop

    new_start = start + max(0, quiet_run(start // hop, 1) - keep_start)
    new_end = end - max(0, quiet_run(min(end // hop, len(quiet)) - 1, -1) - keep_end)
    return (new_start, new_end) if new_end > new_start else (start, end)


def _pause_centres(quiet: np.ndarray, min_frames: int) -> np.ndarray:
    """quiet (F,) bool per frame -> frame indices of the centres of quiet runs of at least min_frames."""
    edges = np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ends - starts >= min_frames
    return (starts[keep] + ends[keep]) // 2
