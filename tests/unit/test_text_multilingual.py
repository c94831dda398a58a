"""normalize_text beyond English: Chinese (the character-level form CER is taken over), languages written with
spaces (letters kept, numbers in the language), languages written without them; English pinned as it was."""

from __future__ import annotations

import importlib.util
import random
import re

import jiwer
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.text import normalize_text
from tests.unit.test_text_normalizer import CASES as ENGLISH_CASES

needs_opencc = pytest.mark.skipif(importlib.util.find_spec("opencc") is None, reason="Chinese needs OpenCC")

CHINESE = [
    ("北京欢迎你。", "北 京 欢 迎 你"),
    ("請把空調溫度調到26度", "请 把 空 调 温 度 调 到 二 十 六 度"),  # traditional in, simplified out
    ("请把空调温度调到２６度！", "请 把 空 调 温 度 调 到 二 十 六 度"),  # full-width digits and punctuation
    ("我明天要跟David去Spotify", "我 明 天 要 跟 david 去 spotify"),
    ("我说 “OK, don't stop” 吧", "我 说 ok don't stop 吧"),
    ("打13800138000", "打 一 三 八 零 零 一 三 八 零 零 零"),
    ("+86 138-0013-8000", "八 六 一 三 八 零 零 一 三 八 零 零 零"),
    ("010-12345678", "零 一 零 一 二 三 四 五 六 七 八"),
    ("房间007", "房 间 零 零 七"),
    ("2024年", "二 零 二 四 年"),
    ("二〇二四年", "二 零 二 四 年"),
    ("2024-12-25", "二 零 二 四 年 十 二 月 二 十 五 日"),
    ("2024/1/5", "二 零 二 四 年 一 月 五 日"),
    ("7:30开会", "七 点 三 十 开 会"),
    ("7:05", "七 点 零 五"),
    ("7:00", "七 点"),
    ("0", "零"),
    ("10", "十"),
    ("15个", "十 五 个"),
    ("105", "一 百 零 五"),
    ("110", "一 百 一 十"),
    ("1010", "一 千 零 一 十"),
    ("2000", "二 千"),
    ("1,500元", "一 千 五 百 元"),
    ("100,010", "十 万 零 一 十"),
    ("12,345,678", "一 千 二 百 三 十 四 万 五 千 六 百 七 十 八"),
    ("100,000,000", "一 亿"),
    ("3.14", "三 点 一 四"),
    ("0.5", "零 点 五"),
    ("增长了50%", "增 长 了 百 分 之 五 十"),
    ("2.5％", "百 分 之 二 点 五"),
    ("5-10个", "五 到 十 个"),
    ("5~10个", "五 到 十 个"),
    ("零下-5℃", "零 下 负 五 摄 氏 度"),
    ("26°C", "二 十 六 摄 氏 度"),
    ("$5", "五 美 元"),
    ("￥100", "一 百 元"),
    ("第3名", "第 三 名"),
    ("iPhone15很好", "iphone 十 五 很 好"),
    ("COVID-19", "covid 十 九"),
    ("", ""),
    ("。，！？", ""),
]


@needs_opencc
@pytest.mark.parametrize(("text", "spoken"), CHINESE)
def test_chinese(text: str, spoken: str) -> None:
    assert normalize_text(text, "zh") == spoken


@needs_opencc
@pytest.mark.parametrize("language", ["zh", "zh-TW", "cmn", "yue", "ZH_cn"])
def test_chinese_tags_share_the_chinese_form(language: str) -> None:
    assert normalize_text("請把空調溫度調到26度", language) == "请 把 空 调 温 度 调 到 二 十 六 度"


@needs_opencc
def test_chinese_wer_is_cer_and_mer_for_mixed_text() -> None:
    ref, hyp = "我明天要去北京。", "我明天要去背景"
    assert jiwer.wer(normalize_text(ref, "zh"), normalize_text(hyp, "zh")) == pytest.approx(2 / 7)
    assert jiwer.wer(normalize_text(ref, "zh"), normalize_text(hyp, "zh")) == pytest.approx(jiwer.cer("我明天要去北京", hyp))
    mixed_ref, mixed_hyp = "我用Spotify听歌", "我用spotify 听哥"
    assert jiwer.wer(normalize_text(mixed_ref, "zh"), normalize_text(mixed_hyp, "zh")) == pytest.approx(1 / 5)
    # the two scripts and digits vs numerals are not errors
    assert jiwer.wer(normalize_text("調到二十六度", "zh"), normalize_text("调到26度", "zh")) == 0


@needs_opencc
def test_chinese_numbers_agree_with_cn2an() -> None:
    cn2an = pytest.importorskip("cn2an")
    rng = random.Random(7)
    numbers = [*range(0, 10_001), *(rng.randrange(10 ** rng.randint(1, 16)) for _ in range(3000))]
    for n in numbers:  # commas: read as a number whatever its length (without them, more than 4 digits are an id)
        assert normalize_text(f"{n:,}", "zh").replace(" ", "") == cn2an.an2cn(str(n)), n


OTHER = [
    ("Tengo 25 años", "es", "tengo veinticinco años"),
    ("¿Dónde está el baño?", "es", "dónde está el baño"),
    ("Tengo 3,5 kilos y 1.500 euros: 25%", "es", "tengo tres coma cinco kilos y mil quinientos euros veinticinco por ciento"),
    ("Straße 5", "de", "straße fünf"),
    ("Größe: 21", "de", "größe einundzwanzig"),
    ("aujourd'hui, 3 pommes", "fr", "aujourd'hui trois pommes"),
    ("Aujourd’hui, l’homme — peut-être ?", "fr", "aujourd'hui l'homme peut-être"),
    ("J'ai 22 ans", "fr", "j'ai vingt-deux ans"),
    ("São Paulo tem 12 milhões", "pt", "são paulo tem doze milhões"),
    ("Città 007", "it", "città zero zero sette"),
    ("Привет, 21 мир!", "ru", "привет двадцать один мир"),
    ("हिन्दी भाषा", "hi", "हिन्दी भाषा"),
    ("東京タワー、3つ。", "ja", "東 京 タ ワ ー 三 つ"),
    ("ภาษาไทย", "th", "ภ า ษ า ไ ท ย"),
    ("ที่นี่", "th", "ที่ นี่"),  # a character with its marks is one
    ("Straße 5", "xx", "straße 5"),  # a language num2words does not know keeps its digits
    ("ສະບາຍດີ 12", "lo", "ສ ະ ບ າ ຍ ດີ 1 2"),
]


@pytest.mark.parametrize(("text", "language", "spoken"), OTHER)
def test_other_languages(text: str, language: str, spoken: str) -> None:
    assert normalize_text(text, language) == spoken


@pytest.mark.parametrize(("text", "spoken"), ENGLISH_CASES)
def test_english_is_the_default(text: str, spoken: str) -> None:
    assert normalize_text(text, "en") == normalize_text(text) == spoken
    assert normalize_text(text, "en-US") == spoken


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_english_unchanged_over_any_text(text: str) -> None:
    assert normalize_text(text, "en") == normalize_text(text) == normalize_text(text, "EN_gb")


_MIXED = st.text(alphabet=st.sampled_from(list("0123456789 :.,-/$¥€£%°~+()'’aZéßñ北京請把空調乾隆薴〇年月ひらカター"
                                             "ภาษาไทยี่ສະບາຍດີहिन्दी्Приветمرحبا１２％，。！？")), max_size=40)


@needs_opencc
@pytest.mark.parametrize("language", ["zh", "es", "fr", "de", "ja", "th", "lo", "hi", "ru", "it", "ar", "xx"])
def test_never_raises_and_is_idempotent(language: str) -> None:
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.text(), _MIXED))
    def check(text: str) -> None:
        once = normalize_text(text, language)
        assert normalize_text(once, language) == once
        assert once == " ".join(once.split())
        if language in ("zh", "es", "fr", "de", "ja", "th", "ru", "it"):  # num2words (or the Chinese rules) read digits
            assert not re.search(r"\d", once)

    check()


@needs_opencc
@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("北京請把空調溫度调到的是一个乾隆 abc")), max_size=30))
def test_chinese_words_are_characters(text: str) -> None:
    for word in normalize_text(text, "zh").split():
        assert len(word) == 1 or word.isascii()
