"""A frozen encoder's outputs are cached row by row: each row gets its own utterance's frames whatever order the
length-bucketed batches ran in, and a second run reads the file without running the encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from tests.conftest import tone
from training.common import EncoderOutputCache, FeatureCache


class HalveAndDouble(torch.nn.Module):
    """A stand-in encoder: every other frame, times two, (B, T, F) -> (B, ceil(T/2), F)."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return x[:, ::2] * 2, (lengths + 1) // 2


def test_cached_outputs_belong_to_their_rows(tmp_path: Path) -> None:
    rows = []
    for i, seconds in enumerate([1.3, 0.4, 2.2, 0.9, 1.7]):
        wav = tmp_path / f"{i}.wav"
        sf.write(wav, tone(seconds, freq=150.0 + 60 * i), 16_000)
        rows.append({"audio": str(wav), "text": "x", "duration": seconds})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    features = FeatureCache(manifest, kind="whisper_mel")
    cache = EncoderOutputCache(features, HalveAndDouble(), tmp_path / "run" / "encoder_out.npy", max_frames=300)
    for i in range(len(rows)):
        np.testing.assert_allclose(cache.feats(i), features.feats(i)[::2] * 2, atol=1e-2)
    again = EncoderOutputCache(features, None, tmp_path / "run" / "encoder_out.npy")  # type: ignore[arg-type]
    np.testing.assert_array_equal(again.feats(2), cache.feats(2))
