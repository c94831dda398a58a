"""Word-timing evaluation set: common words each said alone by a reserved voice, joined with known gaps (evaluation only).

    python -m training.data.word_times --out data/dev_word_times --count 40 --seed 202

Forced alignment of TTS audio would only tell us what an aligner thinks. Here each word is synthesised on its
own, its leading and trailing silence cut at an energy threshold, and the words are laid end to end with
random gaps of 50-300 ms (200 ms of silence at both edges), so every word's start_s and end_s is known by
construction: nothing but digital silence lies outside them.

Rows: id, audio, duration, text, words [{"word", "start_s", "end_s"}], voice.
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from shared.audio import TARGET_RATE
from shared.segments import loud_frames
from training.data.synth import eval_set_args, tts
from training.data.text import pin_hash_seed

DICTIONARY = Path("/usr/share/dict/american-english")
# frequent in wordfreq but spelled out or slurred when read alone, or not wanted in a dev set
SKIP = {"etc", "lol", "mrs", "non", "pre", "pro", "san", "via", "ass", "sex", "gay", "fuck", "shit", "damn", "hell", "god"}
FRAME = 80  # 5 ms at 16 kHz
EDGE_S, GAP_S = 0.2, (0.05, 0.3)


def common_words(n: int = 2000) -> list[str]:
    """wordfreq's top n English words of 3+ letters that the system dictionary knows (drops "uk", "nba", "lol")."""
    from wordfreq import top_n_list

    known = {w.strip() for w in DICTIONARY.read_text().splitlines()} if DICTIONARY.exists() else None
    return [w for w in top_n_list("en", n) if w.isalpha() and w.isascii() and len(w) >= 3 and w not in SKIP
            and (known is None or w in known)]


def trim(samples: np.ndarray, below_peak_db: float = 40.0, above_floor_db: float = 12.0, fade_s: float = 0.003) -> np.ndarray:
    """The word without its leading/trailing silence: (N,) -> (M,).

    5 ms frames, energy smoothed over three; speech is where it exceeds both peak - 40 dB and the noise floor
    (20th percentile) + 12 dB, so a vocoder's hum (ked sits at -60 dB) stays out and a soft onset stays in.
    A 3 ms fade at both cuts keeps them from clicking."""
    loud = np.flatnonzero(loud_frames(samples, FRAME, below_peak_db, above_floor_db, 20.0))
    if len(loud) == 0:
        raise ValueError("no speech above the threshold")
    word = samples[loud[0] * FRAME : (loud[-1] + 1) * FRAME].astype(np.float32).copy()
    k = min(int(fade_s * TARGET_RATE), len(word) // 2)
    ramp = np.linspace(0.0, 1.0, k, dtype=np.float32)
    word[:k] *= ramp
    word[len(word) - k :] *= ramp[::-1]
    return word


def utterance(words: list[str], voice: str, rng: random.Random) -> tuple[np.ndarray, list[dict]]:
    """Words joined with known gaps: (samples (N,), [{"word", "start_s", "end_s"}])."""
    edge = np.zeros(int(EDGE_S * TARGET_RATE), dtype=np.float32)
    parts, times, pos = [edge], [], len(edge)
    for i, w in enumerate(words):
        if i:
            gap = np.zeros(int(rng.uniform(*GAP_S) * TARGET_RATE), dtype=np.float32)
            parts.append(gap)
            pos += len(gap)
        audio = trim(tts(voice, w, 175, 50))
        times.append({"word": w, "start_s": round(pos / TARGET_RATE, 4), "end_s": round((pos + len(audio)) / TARGET_RATE, 4)})
        parts.append(audio)
        pos += len(audio)
    parts.append(edge)
    return np.concatenate(parts), times


def main() -> None:
    pin_hash_seed()
    args, voices = eval_set_args(__doc__ or "", 40, 202, "training voices make a set to tune word timing on")
    rng, vocab = random.Random(args.seed), common_words()
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(args.count):
        voice, words = voices[i % len(voices)], rng.sample(vocab, rng.randint(4, 9))
        try:
            samples, times = utterance(words, voice, rng)
        except (subprocess.SubprocessError, ValueError, RuntimeError) as exc:
            print(f"{voice} failed on {words}: {exc}")
            continue
        path = args.out / "wav" / f"{args.out.name}-{i:04d}.wav"
        sf.write(path, samples, TARGET_RATE, subtype="PCM_16")
        rows.append({"id": path.stem, "audio": str(path), "duration": round(len(samples) / TARGET_RATE, 3),
                     "text": " ".join(words), "words": times, "voice": voice})
    (args.out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} word-timing rows in {args.out} ({sum(len(r['words']) for r in rows)} words, "
          f"{sum(r['duration'] for r in rows) / 60:.1f} min)")


if __name__ == "__main__":
    main()
