"""The long-form eval splits its WER gap in two: the service's windows decoded alone against the whole recording
(what the previous window's context costs) and against the reference sentences (what the window edges cost)."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf

from tests.conftest import tone
from training.eval.run import eval_long


class BurstCounter:
    """A stand-in recogniser: one word per burst of sound, and a spurious one wherever a call holds several
    bursts (as the model reads two sentences in one window worse than each alone)."""

    decoding = SimpleNamespace(segment_s=5.0)

    def __call__(self, audio: str, no_context: bool = False) -> str:
        x, rate = sf.read(audio, dtype="float32")
        hop = rate // 100
        loud = (x[: len(x) // hop * hop].reshape(-1, hop) ** 2).mean(1) > 1e-6
        edges = np.diff(np.concatenate([[0], loud.astype(np.int8), [0]]))
        starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        bursts = 1 + int(np.sum(starts[1:] - ends[:-1] > 5)) if len(starts) else 0
        return " ".join(["word"] * bursts + (["extra"] if bursts > 1 else []))


def long_row(tmp_path: Path, pauses_s: list[float]) -> dict:
    pieces, segments, t = [], [], 0.0
    for pause_s in [*pauses_s, 0.5]:
        speech = tone(1.8)
        segments.append({"text": "word", "start": t, "end": t + 1.8})
        pieces += [speech, np.zeros(int(pause_s * 16_000), np.float32)]
        t += 1.8 + pause_s
    path = tmp_path / "long.wav"
    sf.write(path, np.concatenate(pieces), 16_000, subtype="PCM_16")
    return {"audio": str(path), "text": " ".join(s["text"] for s in segments), "duration": t, "segments": segments}


def test_windows_on_sentence_pauses_cost_nothing_but_the_whole_call_does(tmp_path: Path) -> None:
    result = eval_long(long_row(tmp_path, [0.6, 0.6, 0.6]), BurstCounter())
    assert result["windows"] == result["sentences"] == 4
    assert result["wer_windows_alone"] == result["wer_sentence_by_sentence"] == 0.0
    assert result["wer_whole"] == 0.25  # the stand-in's one spurious word over the whole recording


def test_a_pause_too_short_to_cut_merges_two_sentences_into_one_window(tmp_path: Path) -> None:
    result = eval_long(long_row(tmp_path, [0.6, 0.15, 0.6]), BurstCounter())  # 0.15 s: under min_pause_s
    assert (result["windows"], result["sentences"]) == (3, 4)
    assert result["wer_windows_alone"] == 0.25 and result["wer_sentence_by_sentence"] == 0.0
