"""One long recording (several minutes) of held-out sentences in a reserved voice, with the
per-sentence segments kept so long-form WER can be compared with sentence-by-sentence WER.
    python -m training.data.long_form --out data/long_slt --minutes 4.5
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from shared.audio import TARGET_RATE
from training.data.synth import tts
from training.data.text import pin_hash_seed, sentence_stream


def main() -> None:
    pin_hash_seed()
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--minutes", type=float, default=4.5)
    ap.add_argument("--voice", default="flite:slt")
    ap.add_argument("--sentence-seed", type=int, default=909, help="another seed, other held-out sentences")
    args = ap.parse_args()
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(9)
    stream = sentence_stream(args.sentence_seed, dev=True)
    pieces: list[np.ndarray] = []
    segments: list[dict[str, Any]] = []
    t = 0.0
    while t < args.minutes * 60:
        text, _ = next(stream)
        audio = tts(args.voice, text, 175, 50)
        pause = np.zeros(int(rng.uniform(0.3, 0.9) * TARGET_RATE), dtype=np.float32)
        segments.append({"text": text, "start": round(t, 3), "end": round(t + len(audio) / TARGET_RATE, 3)})
        pieces += [audio, pause]
        t += (len(audio) + len(pause)) / TARGET_RATE
    path = args.out / "wav" / "long-0000.wav"
    sf.write(path, np.concatenate(pieces), TARGET_RATE, subtype="PCM_16")
    row = {"id": "long-0000", "audio": str(path), "text": " ".join(s["text"] for s in segments),
           "duration": round(t, 2), "voice": args.voice, "segments": segments}
    (args.out / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    print(f"{path}: {t / 60:.1f} min, {len(segments)} sentences")


if __name__ == "__main__":
    main()
