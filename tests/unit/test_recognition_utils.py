import numpy as np

from shared.recognition import Word, align_words, segment_audio
from tests.conftest import tone


def test_short_audio_is_one_window() -> None:
    assert segment_audio(np.zeros(16_000, np.float32), 20) == [(0, 16_000)]


def test_long_audio_is_cut_in_pauses() -> None:
    speech = tone(2.5)
    pause = np.zeros(8_000, np.float32)
    audio = np.concatenate([speech, pause] * 8)  # 24 s, a pause every 3 s
    windows = segment_audio(audio, max_s=7)
    assert windows[0][0] == 0 and windows[-1][1] == len(audio)
    assert all(b - a <= 7 * 16_000 for a, b in windows)
    assert all(windows[i][1] == windows[i + 1][0] for i in range(len(windows) - 1))
    for _, cut in windows[:-1]:
        assert np.abs(audio[cut - 400 : cut + 400]).max() < 1e-6  # every cut lands in silence


def test_align_words_uses_anchors_and_interpolates() -> None:
    anchors = [Word("call", 0.1, 0.3), Word("now", 1.0, 1.2)]
    out = align_words("call my friend now", anchors, 2.0)
    assert [w.word for w in out] == ["call", "my", "friend", "now"]
    assert (out[0].start_s, out[-1].start_s) == (0.1, 1.0)
    assert 0.3 <= out[1].start_s < out[2].start_s < 1.0
    assert align_words("", anchors, 1.0) == []
