"""Language tags: BCP-47 to the model's language code and the written script; Whisper's language table; OpenCC."""

from __future__ import annotations

import json
import threading

import pytest

from shared.languages import (
    NO_SPACE_SCRIPTS,
    WHISPER_LANGUAGES,
    Language,
    language_name,
    parse_language,
    spaced,
    to_script,
)

WHISPER = list(WHISPER_LANGUAGES)


def test_whisper_languages_table() -> None:
    assert len(WHISPER_LANGUAGES) == 99
    assert WHISPER[:4] == ["en", "zh", "de", "es"] and WHISPER[-1] == "su"
    assert "yue" not in WHISPER_LANGUAGES  # Whisper base has no Cantonese token


@pytest.mark.weights
def test_whisper_languages_follow_the_models_token_order() -> None:
    from shared.model.whisper_weights import WhisperWeightsError, ct2_model_dir

    try:
        folder = ct2_model_dir()
    except WhisperWeightsError as exc:
        pytest.skip(str(exc))
    lang_ids = json.loads((folder / "config.json").read_text())["lang_ids"]
    vocabulary = json.loads((folder / "vocabulary.json").read_text())
    assert [vocabulary[i].strip("<|>") for i in lang_ids] == WHISPER


@pytest.mark.parametrize(("tag", "code", "canonical", "script"), [
    ("en", "en", "en", None),
    ("en-US", "en", "en-US", None),
    ("EN_us", "en", "en-US", None),
    ("es-419", "es", "es-419", None),
    ("pt-BR", "pt", "pt-BR", None),
    ("sr-Latn-RS", "sr", "sr-Latn-RS", None),
    ("english", "en", "en", None),
    ("Chinese", "zh", "zh", "t2s"),
    ("zh", "zh", "zh", "t2s"),
    ("zh-CN", "zh", "zh-CN", "t2s"),
    ("zh-SG", "zh", "zh-SG", "t2s"),
    ("zh-Hans", "zh", "zh-Hans", "t2s"),
    ("cmn", "zh", "cmn", "t2s"),
    ("cmn-Hans-CN", "zh", "cmn-Hans-CN", "t2s"),
    ("zh-TW", "zh", "zh-TW", "s2twp"),
    ("zh_tw", "zh", "zh-TW", "s2twp"),
    ("zh-Hant", "zh", "zh-Hant", "s2twp"),
    ("zh-Hant-TW", "zh", "zh-Hant-TW", "s2twp"),
    ("cmn-Hant-TW", "zh", "cmn-Hant-TW", "s2twp"),
    ("zh-HK", "zh", "zh-HK", "s2hk"),
    ("zh-MO", "zh", "zh-MO", "s2hk"),
    ("zh-Hant-HK", "zh", "zh-Hant-HK", "s2hk"),
    ("yue", "zh", "yue", "s2hk"),
    ("yue-HK", "zh", "yue-HK", "s2hk"),
    ("zh-yue", "zh", "zh-yue", "s2hk"),
    ("cantonese", "zh", "yue", "s2hk"),
    ("yue-Hans-CN", "zh", "yue-Hans-CN", "t2s"),
    ("nb-NO", "no", "nb-NO", None),
    ("jv", "jw", "jv", None),
    ("iw", "he", "iw", None),
    ("haw", "haw", "haw", None),
    (" fr-CA ", "fr", "fr-CA", None),
])
def test_parse_language(tag: str, code: str, canonical: str, script: str | None) -> None:
    assert parse_language(tag, WHISPER) == Language(code=code, tag=canonical, script=script)


@pytest.mark.parametrize("tag", ["", "auto", "AUTO", "  "])
def test_empty_or_auto_identifies(tag: str) -> None:
    assert parse_language(tag, WHISPER) is None
    assert parse_language(tag, ["en"]) is None


@pytest.mark.parametrize(("tag", "known"), [
    ("zh", ["en"]), ("es-ES", ["en"]), ("yue", ["en"]), ("xx", WHISPER), ("klingon", WHISPER), ("e", WHISPER),
    ("en--US", WHISPER), ("en US", WHISPER), ("123", WHISPER), ("en-toolongsubtag", WHISPER),
])
def test_unknown_or_malformed_tags_say_how_to_ask(tag: str, known: list[str]) -> None:
    with pytest.raises(ValueError) as raised:
        parse_language(tag, known)
    message = str(raised.value)
    assert repr(tag) in message and "BCP-47" in message and "'auto'" in message
    assert ", ".join(known) in message


def test_a_bundle_that_knows_a_language_under_its_own_code_gets_it() -> None:
    assert parse_language("yue-HK", ["en", "zh", "yue"]) == Language("yue", "yue-HK", "s2hk")
    assert parse_language("en-GB", ["en"]) == Language("en", "en-GB", None)


def test_language_names() -> None:
    assert language_name("en") == "english"
    assert language_name("zh") == "chinese"
    assert language_name("ht") == "haitian creole"
    assert language_name("yue") == "cantonese"
    assert language_name("qq") == "qq"


def test_spaced() -> None:
    assert {c for c in WHISPER if not spaced(c)} == {"zh", "ja", "th", "lo", "my", "km", "bo"}
    assert not spaced("yue") and spaced("en") and spaced("ko") and spaced("es")
    assert NO_SPACE_SCRIPTS >= {"zh", "ja", "th", "lo", "my", "km", "bo"}


def test_to_script() -> None:
    pytest.importorskip("opencc")
    assert to_script("軟體與滑鼠", "t2s") == "软体与滑鼠"
    assert to_script("软件", "s2twp") == "軟體"
    assert to_script("鼠标", "s2twp") == "滑鼠"
    assert to_script("软件", "s2hk") == "軟件"
    assert to_script("请把空调温度调到26度", "s2t") == "請把空調溫度調到26度"
    assert to_script("請把空調溫度", parse_language("zh", WHISPER).script) == "请把空调温度"  # type: ignore[union-attr]
    assert to_script("Hello 你好 123", None) == "Hello 你好 123"
    assert to_script("", "t2s") == ""


def test_to_script_is_shared_between_threads() -> None:
    pytest.importorskip("opencc")
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(to_script("软件" * 200, "s2twp"))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["軟體" * 200] * 8


@pytest.mark.parametrize("raw, written", [
    ("请帮我,给王小明打电话.", "请帮我，给王小明打电话。"),
    ("对,1号", "对，1号"),
    ("我有3.5个苹果。", "我有3.5个苹果。"),  # a decimal point stays
    ("播放Spotify, 好吗?", "播放Spotify, 好吗？"),  # after Latin text: as written
    ("你好! 再见.", "你好！再见。"),
    ("把空调温度 调到 23度", "把空调温度调到23度"),  # Whisper's segment spaces: Chinese writes none
    ("我用 iPhone 打电话", "我用 iPhone 打电话"),  # beside a Latin word they stay
])
def test_chinese_punctuation(raw, written) -> None:
    from shared.languages import chinese_punctuation

    assert chinese_punctuation(raw) == written
