import numpy as np

from shared.segments import Word, align_words, segment_audio
from tests.conftest import tone


def test_short_audio_is_one_window_without_the_silence_around_it() -> None:
    assert segment_audio(np.zeros(16_000, np.float32), 20) == [(0, 16_000)]  # nothing louder: nothing shed
    silence = np.zeros(16_000, np.float32)
    audio = np.concatenate([silence, tone(1.0), silence])  # a VAD-ended turn: 1 s of silence before and after
    ((start, end),) = segment_audio(audio, 20)
    assert 16_000 - start == 8_000 and end - 32_000 >= 8_000  # 0.5 s before; after, 0.5 s past the tone's fade
    assert end - 32_000 < 8_000 + 1_600
    assert segment_audio(audio, 20, keep_edge_s=5.0) == [(0, len(audio))]


def test_long_audio_is_cut_in_pauses() -> None:
    speech = tone(2.5)
    pause = np.zeros(8_000, np.float32)
    audio = np.concatenate([speech, pause] * 8)  # 24 s, a pause every 3 s
    windows = segment_audio(audio, max_s=7)
    assert windows[0] == segment_audio(audio, max_s=7, keep_edge_s=0.0)[0]  # speech from the first sample
    tail = len(audio) - segment_audio(audio, max_s=7, keep_edge_s=0.2)[-1][1]  # it ends with 0.5 s of silence
    assert windows[-1][1] == len(audio) and 4_800 <= tail < 4_800 + 1_600  # all kept at 0.5 s, 0.2 s kept at 0.2
    assert all(b - a <= 7 * 16_000 for a, b in windows)
    for (_, end), (start, _) in zip(windows, windows[1:]):
        # cut mid-pause, each window keeps 0.2 s of its 0.25 s half: the middle 0.1 s is in neither
        assert start - end == 1_600 and np.abs(audio[end - 3_200 : start + 3_200]).max() < 1e-6
        assert np.abs(audio[end - 3_300 : end]).max() > 0 and np.abs(audio[start : start + 3_300]).max() > 0
    assert segment_audio(audio, max_s=7, keep_pause_s=1.0)[0][1] == windows[0][1] + 800  # all of its half


def test_long_audio_gets_one_window_per_sentence_and_noise_falls_back_to_max_length() -> None:
    rng = np.random.default_rng(0)
    lengths = [2.0, 3.5, 1.0, 2.5, 4.0]  # sentences, 0.4 s pauses between them
    pieces = []
    for sec in lengths:
        pieces += [tone(sec), np.zeros(6_400, np.float32)]
    audio = np.concatenate(pieces)
    windows = segment_audio(audio, max_s=8)
    # the 1 s sentence is shorter than min_s (1.5 s): it shares a window with the sentence after it
    # half of a 0.4 s pause is all kept at a cut, and so are the 0.4 s the recording ends with
    assert [round((b - a) / 16_000, 1) for a, b in windows] == [2.2, 3.9, 4.3, 4.6]
    noise = rng.normal(0, 0.1, 16_000 * 20).astype(np.float32)  # no pause anywhere
    windows = segment_audio(noise, max_s=8)
    assert len(windows) == 3 and all(b - a <= 8 * 16_000 for a, b in windows)


def test_align_words_uses_anchors_and_interpolates() -> None:
    anchors = [Word("call", 0.1, 0.3), Word("now", 1.0, 1.2)]
    out = align_words("call my friend now", anchors, 2.0)
    assert [w.word for w in out] == ["call", "my", "friend", "now"]
    assert (out[0].start_s, out[-1].start_s) == (0.1, 1.0)
    assert 0.3 <= out[1].start_s < out[2].start_s < 1.0
    assert align_words("", anchors, 1.0) == []
