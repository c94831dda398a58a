"""Training-data synthesis: the voice mix never names a reserved voice, and the in-process pico
engine renders the words it is given (PocketSphinx, the eval peer, recognises them)."""

import random

import jiwer
import numpy as np
import pytest
import soundfile as sf

from training.data.synth import check_training_voice, make_jobs, train_voice, tts


@pytest.mark.parametrize("voice", ["flite:slt", "festival:cmu_us_slt_arctic_hts", "festival:ked_diphone", "festival:kal_diphone"])
def test_reserved_voices_are_refused(voice: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        check_training_voice(voice)
    with pytest.raises(ValueError, match="reserved"):
        make_jobs("train", "/tmp/unused", 2, 1, [voice], None)


def test_training_mix_uses_every_engine_and_no_reserved_voice() -> None:
    rng = random.Random(0)
    voices = [train_voice(rng) for _ in range(2000)]
    engines = {v.split(":")[0] for v in voices}
    assert engines == {"espeak", "flite", "pico"}
    assert not any("slt" in v or v.startswith("festival") for v in voices)


def test_pico_speaks_the_text_and_follows_the_rate(tmp_path) -> None:
    pytest.importorskip("ttspico")
    pytest.importorskip("pocketsphinx")
    from training.eval.run import PocketSphinx
    text = "that's one thing wrong with history"
    slow, fast = tts("pico:en-US", text, 120, 50), tts("pico:en-US", text, 210, 50)
    assert slow.dtype == np.float32 and 0.01 < np.abs(slow).max() <= 1.0
    assert len(slow) > 1.3 * len(fast)  # 16 kHz samples; a lower rate speaks longer
    sf.write(tmp_path / "gb.wav", tts("pico:en-GB", text, 160, 50), 16000, subtype="PCM_16")
    assert jiwer.wer(text, PocketSphinx()(str(tmp_path / "gb.wav"))) <= 0.35
