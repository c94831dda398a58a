"""The real-speech dev set is read from the PocketSphinx sdist's own transcripts (no network here: a stand-in
archive), and the eval tables put every peer beside ours, the context rows with the context as a peer's prompt."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile as sf

from tests.conftest import tone
from training.data import real_speech
from training.eval.run import SetResult, context_prompt, eval_context, set_table


def _sdist(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"pocketsphinx-5.1.1/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _wav(seconds: float, rate: int) -> bytes:
    out = io.BytesIO()
    sf.write(out, tone(seconds, rate=rate), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def test_recordings_come_with_the_sdists_transcripts() -> None:
    pcm = (tone(1.5) * 32767).astype("<i2").tobytes()
    files = {
        "test/data/librivox/transcription": b"<s> he was not an ill disposed young man </s> (book-0880)\n",
        "test/data/librivox/book-0880.wav": _wav(2.0, 16_000),
        "test/data/cards/cards.transcription": b"<s> ten of clubs  </s> (001)\n<s> five five </s> (002)\n",
        "test/data/cards/001.wav": _wav(1.0, 8_000),  # resampled to 16 kHz
        "test/data/cards/002.wav": _wav(1.0, 16_000),
        "test/data/goforward.raw": pcm,
        "test/data/forever/input_2_16k.wav": _wav(3.0, 16_000),
        "test/data/numbers.raw": pcm,  # no stated transcript: left out
    }
    got = {uid: (len(x), text) for uid, x, text in real_speech.sdist_recordings(_sdist(files))}
    assert got == {
        "pocketsphinx-book-0880": (32_000, "he was not an ill disposed young man"),
        "pocketsphinx-001": (16_000, "ten of clubs"),
        "pocketsphinx-002": (16_000, "five five"),
        "pocketsphinx-goforward": (24_000, "go forward ten meters"),
        "pocketsphinx-input_2_16k": (48_000, "feels like these days go on forever"),
    }


def test_alsa_announcements_are_named_by_their_files(tmp_path: Path) -> None:
    for name in ("Front_Left", "Rear_Center", "Noise"):
        sf.write(tmp_path / f"{name}.wav", tone(1.0, rate=48_000), 48_000, subtype="PCM_16")
    got = {uid: (len(x), text) for uid, x, text in real_speech.alsa_recordings(tmp_path)}
    assert got == {"alsa-front_left": (16_000, "front left"), "alsa-rear_center": (16_000, "rear center")}


class Echo:
    """A stand-in peer that hears the words of its prompt and nothing else."""

    name, takes_prompt = "Echo", True

    def __call__(self, audio: str, prompt: str = "") -> str:
        return prompt


class Silent:
    """A stand-in for our recogniser: says nothing whatever the context."""

    decoding = SimpleNamespace(context_prune_k=128)

    def __call__(self, audio: str, *args: object) -> str:
        return ""


class Deaf:
    name, takes_prompt = "Deaf", False

    def __call__(self, audio: str, prompt: str = "") -> str:
        return ""


def test_set_table_has_a_column_per_peer() -> None:
    res = SetResult("dev_x", hours=10 / 3600, refs=["go forward ten meters", "front left"],
                    ours=["go forward ten meters", "front"], peers={"Echo": ["go forward 10 meters", "front left"]},
                    our_cpu=1.0, our_wall=2.0, peer_cpu={"Echo": 5.0})
    head, _, row = set_table([res], ["Echo"])
    assert head.split(" | ")[3:5] == ["WER ours", "WER Echo"]
    assert row == "| dev_x | 2 | 0.00 | 16.7% | 0.0% | 0.200 | 0.100 | 0.500 |"


def test_context_rows_give_a_prompting_peer_the_context_once_without_and_once_with(tmp_path: Path) -> None:
    audio = tmp_path / "a.wav"
    sf.write(audio, np.zeros(1600, np.float32), 16_000)
    rows = [{"audio": str(audio), "text": "call tomasz wrobel", "keywords": ["tomasz wrobel"],
             "hotwords": ["tomasz wrobel"], "history": ["who should i call"]},
            {"audio": str(audio), "text": "turn it off", "distractor": True, "hotwords": ["kilbride street"]}]
    assert context_prompt(rows[0]) == "tomasz wrobel who should i call"
    table = eval_context(rows, ours_for=lambda k: Silent(), alphas=[0.9], prune_ks=[128], peers=[Echo(), Deaf()])  # type: ignore
    by = {t["setting"]: t for t in table}
    assert list(by) == ["no context", "alpha=0.9", "Echo", "Echo (context as prompt)", "Deaf"]
    assert by["alpha=0.9"]["keyword_recall"] == 0.0
    assert by["Echo"]["keyword_recall"] == 0.0 and by["Echo (context as prompt)"]["keyword_recall"] == 1.0
    assert by["Echo (context as prompt)"]["distractor_insertions"] == 1.0  # it said the distractor's hotword
    assert by["Deaf"]["distractor_insertions"] == 0.0
