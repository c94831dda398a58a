"""Word boundaries moved to the pauses the audio shows: numpy only (the gateway runs it on the turn's samples).

The decoder's times come from cross-attention (shared/model/whisper_align.py): a word starts within about 50 ms
of the truth, but it ends where the next word starts, pause included, and a few words start a few hundred ms off.
A pause between two words is plain in the audio, though: a run of frames near the noise floor. So each boundary
the model placed is moved to the pause nearest it, when one lies close enough: the word before ends where the pause
begins, the word after starts where it ends. The last word ends at the last sound after its start. Where the
speech runs on without a pause (most words of fluent speech), or the noise leaves no quiet run, the model's times
stay. On words synthesised one by one and joined with known gaps, in training voices (data/tune_word_times), clean
and with noise at 20 and 10 dB SNR, start / end error medians went 49 / 180, 81 / 194, 82 / 188 ms -> 9 / 6, 10 / 16,
14 / 61 ms (bundles/default/TUNING.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from shared.segments import loud_frames


@dataclass(frozen=True)
class PauseConfig:
    hop_s: float = 0.01  # energy frames
    smooth_frames: int = 3  # energy averaged over this many frames: one loud frame of noise is no speech
    below_peak_db: float = 40.0  # quiet: this far under the turn's loudest frame ...
    above_floor_db: float = 3.0  # ... or at most this far above its noise floor, whichever is higher
    floor_percentile: float = 10.0  # the noise floor: this percentile of the frames' energy
    min_pause_s: float = 0.03  # a quiet run at least this long is a pause (a stop's closure is often shorter)
    min_word_s: float = 0.08  # a pause begins at least this long after the start of the word before it
    late_s: float = 0.3  # a pause ending at most this long before a word's start (the model placed it late) ...
    early_s: float = 0.2  # ... or beginning at most this long after it (placed early) moves that start
    overrun_s: float = 0.3  # a pause beginning later than this after the model's end of the word before it is
    # a stop's closure in a later word (the model placed that start late), not their boundary


def pauses(samples: np.ndarray, rate: int = 16_000, cfg: PauseConfig = PauseConfig()) -> tuple[list[tuple[int, int]], np.ndarray]:
    """samples (N,) -> the pauses as [first, end) frame ranges, and whether each frame (F,) holds sound."""
    loud = loud_frames(samples, max(1, int(cfg.hop_s * rate)), cfg.below_peak_db, cfg.above_floor_db,
                       cfg.floor_percentile, cfg.smooth_frames)
    # run boundaries: where loudness flips; a run of quiet frames is a pause when long enough
    edges = np.flatnonzero(np.diff(np.concatenate([[True], loud, [True]]).astype(np.int8)))
    min_frames = max(1, round(cfg.min_pause_s / cfg.hop_s))
    runs = [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if b - a >= min_frames]
    return runs, loud


def snap_to_pauses(times: Sequence[tuple[float, float]], samples: np.ndarray, rate: int = 16_000,
                   cfg: PauseConfig = PauseConfig()) -> list[tuple[float, float]]:
    """(start_s, end_s) per word, in order, within `samples` (N,) -> the same words' times moved to the pauses.

    Each word's start is compared with the pauses between the previous word's start (plus min_word_s) and the next
    word's start: the one holding it, or else the nearest within late_s before or early_s after it, becomes the
    boundary. A pause that reaches the end of the audio is the trailing silence, not a boundary."""
    runs, loud = pauses(samples, rate, cfg)
    frames = len(loud)
    out = [[float(s), float(e)] for s, e in times]
    if not out or not runs:
        return [(s, e) for s, e in out]
    at = [min(frames, max(0, round(s / cfg.hop_s))) for s, _ in times]  # the model's starts, in frames
    ends = [round(e / cfg.hop_s) for _, e in times]  # and ends
    overrun = round(cfg.overrun_s / cfg.hop_s)
    min_word = round(cfg.min_word_s / cfg.hop_s)
    for k in range(len(out)):
        lo = round(out[k - 1][0] / cfg.hop_s) + min_word if k else 0  # the previous word's start as moved
        hi = at[k + 1] if k + 1 < len(out) else frames
        best: tuple[float, int, int] | None = None
        for a, b in runs:
            # (the word keeps at least a frame before the next one's start)
            if a < lo or b >= hi or b >= frames or (k and a > ends[k - 1] + overrun):
                continue
            s = at[k]
            # 0 when the pause holds the start, else its distance as a share of what is allowed on that side
            miss = 0.0 if a <= s <= b else (s - b) * cfg.hop_s / cfg.late_s if b < s else (a - s) * cfg.hop_s / cfg.early_s
            if miss <= 1.0 and (best is None or miss < best[0]):
                best = (miss, a, b)
        if best is not None:
            _, a, b = best
            out[k][0] = b * cfg.hop_s
            out[k][1] = max(out[k][1], out[k][0])
            if k:
                out[k - 1][1] = a * cfg.hop_s
    start = max(0, round(out[-1][0] / cfg.hop_s))
    # the last word ends with the last sound after its start, a sound well after the model's end (a cough) aside
    last = min(frames, max(start, ends[-1] + overrun))
    sound = np.flatnonzero(loud[start:last])
    if len(sound):
        out[-1][1] = (start + int(sound[-1]) + 1) * cfg.hop_s
    return [(s, e) for s, e in out]
