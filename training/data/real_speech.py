"""A dev set of real recorded human speech with its own transcripts, from registry packages only:
the test recordings in PocketSphinx's PyPI source distribution (LibriVox read speech, spoken
commands, card names and digits; pinned by version and sha256) and, when Debian's alsa-utils is
installed, its channel-test announcements. Evaluation only, never training data.

    python -m training.data.real_speech --out data/dev_real_human
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import re
import tarfile
import urllib.request
from collections.abc import Iterator
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

RATE = 16_000
SDIST = "pocketsphinx-5.1.1.tar.gz"
SDIST_URL = ("https://files.pythonhosted.org/packages/61/e7/"
             "13e0e787ff467218de880310d79cba14424f13b87171ac44af0bde1e428c/" + SDIST)
SDIST_SHA256 = "675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355"
ALSA_SOUNDS = Path("/usr/share/sounds/alsa")
# recordings whose transcripts the source states in its own tests, not in a transcription file
STATED = {
    "test/data/goforward.raw": "go forward ten meters",  # test/unit/test_simple.c and many more
    "test/data/forever/input_2_16k.wav": "feels like these days go on forever",  # cython/test/alignment_test.py
}
_LINE = re.compile(r"<s>(.*)</s>\s*\((\S+)\)")


def fetch_sdist(cache: Path) -> bytes:
    path = cache / SDIST
    if not path.is_file():
        cache.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(SDIST_URL, timeout=120) as resp:  # PyPI: the registry, not a data hub
            path.write_bytes(resp.read())
    data = path.read_bytes()
    if (got := hashlib.sha256(data).hexdigest()) != SDIST_SHA256:
        path.unlink()
        raise SystemExit(f"{SDIST}: sha256 {got}, expected {SDIST_SHA256}")
    return data


def _transcriptions(files: dict[str, bytes]) -> dict[str, str]:
    """{member path of the audio: text} from the sdist's Sphinx transcription files."""
    out = dict(STATED)
    for folder, listing in (("librivox", "transcription"), ("cards", "cards.transcription")):
        for line in files[f"test/data/{folder}/{listing}"].decode().splitlines():
            if m := _LINE.search(line):
                out[f"test/data/{folder}/{m.group(2)}.wav"] = " ".join(m.group(1).split())
    return out


def sdist_recordings(sdist: bytes) -> Iterator[tuple[str, np.ndarray, str]]:
    """(id, samples at 16 kHz, text) for every recording of the sdist with a stated transcript."""
    files: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(sdist)) as tar:
        for member in tar.getmembers():
            name = member.name.split("/", 1)[-1]
            if member.isfile() and name.startswith("test/data/"):
                fh = tar.extractfile(member)
                assert fh is not None
                files[name] = fh.read()
    for name, text in sorted(_transcriptions(files).items()):
        if name.endswith(".raw"):  # headerless 16 kHz 16-bit mono, as the tests read it
            x = np.frombuffer(files[name], dtype="<i2").astype(np.float32) / 32768.0
        else:
            x, rate = sf.read(io.BytesIO(files[name]), dtype="float32")
            x = _to_rate(x, rate)
        yield "pocketsphinx-" + Path(name).stem, x, text


def alsa_recordings(folder: Path = ALSA_SOUNDS) -> Iterator[tuple[str, np.ndarray, str]]:
    """alsa-utils' 'Front Left', 'Rear Center'... announcements; Noise.wav says nothing and is left out."""
    for wav in sorted(folder.glob("*_*.wav")):
        x, rate = sf.read(wav, dtype="float32")
        yield "alsa-" + wav.stem.lower(), _to_rate(x, rate), wav.stem.replace("_", " ").lower()


def _to_rate(x: np.ndarray, rate: int) -> np.ndarray:
    if x.ndim > 1:
        x = x.mean(axis=1)
    g = gcd(RATE, rate)
    return x if rate == RATE else resample_poly(x, RATE // g, rate // g).astype(np.float32)


def build(out: Path, cache: Path) -> int:
    (out / "wav").mkdir(parents=True, exist_ok=True)
    rows = []
    recordings = list(sdist_recordings(fetch_sdist(cache)))
    if ALSA_SOUNDS.is_dir():
        recordings += list(alsa_recordings())
    for uid, x, text in recordings:
        wav = out / "wav" / f"{uid}.wav"
        sf.write(wav, np.clip(x, -1.0, 1.0), RATE, subtype="PCM_16")
        rows.append({"id": uid, "audio": str(wav), "text": text, "duration": round(len(x) / RATE, 3),
                     "voice": "human:" + uid.split("-")[0]})
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data/dev_real_human"))
    ap.add_argument("--cache", type=Path, default=Path("data/cache"))
    args = ap.parse_args()
    n = build(args.out, args.cache)
    print(f"{args.out}: {n} recordings of real speech")


if __name__ == "__main__":
    main()
