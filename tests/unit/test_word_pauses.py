"""Word boundaries moved to the pauses in the audio (shared/word_pauses.py)."""

from __future__ import annotations

import numpy as np
import pytest

from shared.word_pauses import pauses, snap_to_pauses

RATE = 16_000


def spoken(spans: list[tuple[float, float]], total_s: float, noise_db: float = -200.0, seed: int = 0) -> np.ndarray:
    """Voiced bursts (a 150 Hz buzz with harmonics) over [start, end) spans, silence or noise elsewhere: (N,)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(total_s * RATE)) / RATE
    x = rng.standard_normal(len(t)) * 10 ** (noise_db / 20)
    buzz = sum(np.sin(2 * np.pi * 150 * h * t) / h for h in range(1, 6)) * 0.2
    for a, b in spans:
        x[int(a * RATE):int(b * RATE)] += buzz[int(a * RATE):int(b * RATE)]
    return x.astype(np.float32)


TRUTH = [(0.20, 0.62), (0.80, 1.31), (1.45, 1.90), (2.20, 2.71)]


@pytest.mark.parametrize("noise_db", [-200.0, -35.0])  # digital silence; noise 20 dB under the speech
def test_boundaries_move_to_the_pauses_between_words(noise_db: float) -> None:
    x = spoken(TRUTH, 3.0, noise_db)
    # the model's times: each word ends where the next starts (pause included), starts off by up to 0.2 s
    model = [(0.31, 0.70), (0.70, 1.60), (1.60, 2.05), (2.05, 3.0)]
    snapped = snap_to_pauses(model, x)
    for (s, e), (ts, te) in zip(snapped, TRUTH):
        assert abs(s - ts) <= 0.03 and abs(e - te) <= 0.03, (snapped, TRUTH)


def test_fluent_speech_keeps_the_models_times() -> None:
    x = spoken([(0.0, 3.0)], 3.0)  # no pause anywhere, sound to the very end
    model = [(0.0, 0.7), (0.7, 1.5), (1.5, 2.2), (2.2, 3.0)]
    assert np.allclose(snap_to_pauses(model, x), model)


def test_a_pause_far_from_the_models_boundary_stays_inside_its_word() -> None:
    # one word 0.2-1.6 s with a 60 ms closure at 1.0 s: the model's boundary at 0.5 s is nowhere near it
    x = spoken([(0.2, 1.0), (1.06, 1.6), (1.8, 2.3)], 2.6)
    snapped = snap_to_pauses([(0.2, 0.5), (0.5, 1.8), (1.8, 2.4)], x)
    # (the first word starts where the audio's leading silence ends: within a 10 ms frame of the model's start)
    assert snapped[0] == pytest.approx((0.2, 0.5), abs=0.011) and snapped[1][0] == pytest.approx(0.5)
    assert snapped[1][1] == pytest.approx(1.6, abs=0.03) and snapped[2] == pytest.approx((1.8, 2.3), abs=0.03)


def test_a_closure_in_a_word_the_model_started_late_is_no_boundary() -> None:
    # the model ended word one at 1.0 s and started word two at 1.52 s, inside word two's closure at 1.5 s:
    # that closure lies past the model's end of word one by more than overrun_s, so it moves nothing
    x = spoken([(0.2, 0.9), (1.1, 1.5), (1.56, 2.0)], 2.4)
    snapped = snap_to_pauses([(0.2, 1.0), (1.52, 2.2)], x)
    assert snapped[0] == pytest.approx((0.2, 1.0), abs=0.011) and snapped[1][0] == pytest.approx(1.52)


def test_words_never_end_before_they_start_and_stay_in_order() -> None:
    rng = np.random.default_rng(3)
    for trial in range(50):
        cuts = np.sort(rng.uniform(0.1, 4.9, 12))
        x = spoken([(a, b) for a, b in zip(cuts[::2], cuts[1::2])], 5.0, -40.0, seed=trial)
        starts = np.sort(rng.uniform(0.0, 4.8, rng.integers(1, 9)))
        model = [(float(s), float(e)) for s, e in zip(starts, [*starts[1:], 5.0])]
        snapped = snap_to_pauses(model, x)
        assert len(snapped) == len(model)
        assert all(s <= e for s, e in snapped)
        assert all(a[0] <= b[0] for a, b in zip(snapped, snapped[1:]))


def test_nothing_to_snap() -> None:
    assert snap_to_pauses([], np.zeros(16_000, np.float32)) == []
    assert snap_to_pauses([(0.0, 0.5)], np.zeros(0, np.float32)) == [(0.0, 0.5)]
    assert pauses(np.zeros(10, np.float32)) == ([], pytest.approx(np.zeros(0, bool)))


def test_a_sound_long_after_the_last_word_does_not_stretch_it() -> None:
    x = spoken([(0.2, 0.7), (0.9, 1.4), (2.5, 2.6)], 3.0)  # two words, then a cough a second later
    snapped = snap_to_pauses([(0.2, 0.9), (0.9, 1.5)], x)
    assert snapped[1][1] == pytest.approx(1.4, abs=0.03)


def test_a_start_the_model_placed_early_stays_before_the_next_word() -> None:
    # "a" placed in the pause before it, right where the next word starts: it keeps a frame of its own
    x = spoken([(0.2, 0.6), (0.9, 1.0), (1.05, 1.5)], 1.8)
    snapped = snap_to_pauses([(0.2, 0.62), (0.62, 0.9), (0.9, 1.6)], x)
    assert all(a[0] < b[0] for a, b in zip(snapped, snapped[1:])) and all(s <= e for s, e in snapped)


def test_audio_shorter_than_the_smoothing() -> None:
    runs, loud = pauses(np.ones(320, np.float32))  # two frames
    assert len(loud) == 2 and runs == []
