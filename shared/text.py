"""The one text normalisation, used for training targets, for WER (both sides) and for `normalized_text` in
API responses: the spoken form of a text, lowercase, no punctuation, accents folded to ascii, numerals written
out as a person says them, so that a peer writing "7:30 pm", "$5.50" or "the 3rd" is not counted wrong against
"seven thirty p m", "five dollars fifty cents", "the third".

This is the English form (`language="en"`, the default); other languages are below. Text without digits comes out
exactly as it always has: NFKC, then NFKD with everything non-ascii dropped (non-Latin scripts come out empty:
ask for their language), lowercase, "&" -> "and", "%" -> "percent", hyphens
split words, any other character but letters and inner apostrophes ("don't") ends a word.

Digits are read by the rules below, applied in this order (each only where digits are):
  currency    "$5" five dollars, "$1" one dollar, "$5.50" five dollars fifty cents, "$0.99" ninety nine cents,
              "$2.5 million" two point five million dollars; also pounds (pence) and euros (cents)
  degrees     "72°F" seventy two degrees fahrenheit, "20 °C" twenty degrees celsius, "90°" ninety degrees
  phones      "555-123-4567", "(555) 123-4567", "+1 555 123 4567", "1-800-555-1234": digit by digit, "+" dropped
  iso dates   "2024-12-25" twenty twenty four twelve twenty five ("12/25/2024" reads the same: "/" is a pause)
  ranges      "5-10" five to ten, "9am-5pm" nine a m to five p m, "2010–2015" twenty ten to twenty fifteen
  times       "7:30" seven thirty, "7:05" seven oh five, "7:00" seven o'clock, "7:00 pm" seven p m, "7pm" seven p m,
              "6.15 p.m." six fifteen p m (a dot only makes a time when am/pm follows); am/pm -> "a m" / "p m"
  decades     "1980s" nineteen eighties, "the '80s" eighties
  ordinals    "3rd" third, "21st" twenty first
  negatives   "-5" minus five (a "-" that does not follow a word or a number)
  years       a lone 1100-1999 or 2010-2099 (no comma, no decimal point, no "%" after, not money) is a year:
              "1984" nineteen eighty four, "2024" twenty twenty four, "1500" (meters too) fifteen hundred;
              "1,500" (with a comma) is one thousand five hundred
  numbers     cardinals as num2words writes them, "and" kept: "105" one hundred and five; decimals read the
              digits after the point one by one: "0.25" zero point two five; a number with a leading zero
              ("007"), more than nine digits without separators (ids, phone numbers) or more than eighteen with
              them is read digit by digit, so no input makes this raise.

Other languages (`language` is the model's code, shared/languages.py; a BCP-47 tag is cut to its language) keep
their letters: nothing is folded to ascii ("Straße" straße, "año" año), since an accent there is a different word.

Chinese ("zh"; also "cmn", "yue"), THE Chinese normaliser: its words are characters, so `jiwer.wer` over its output
is the character error rate for Chinese and the mixed error rate (characters + whole Latin words) for code-switching.
  NFKC (full-width digits, letters and punctuation to half-width), then numbers in digits are read as a speaker
  says them, in Chinese numerals:
    money       "$5" 五美元, "¥100" 一百元 (also € 欧元, £ 英镑)
    dates       "2024-12-25" / "2024/12/25" 二零二四年十二月二十五日
    years       four digits before 年 digit by digit: "2024年" 二零二四年
    times       "7:30" 七点三十, "7:05" 七点零五, "7:00" 七点
    phones      digit groups joined by "-" or spaces, seven digits or more: digit by digit, "+" dropped
    ranges      "5-10", "5~10" 五到十
    percents    "50%" 百分之五十, "2.5%" 百分之二点五
    negatives   "-5" 负五; degrees "26°C" 二十六摄氏度, "90°" 九十度
    numbers     "26" 二十六, "105" 一百零五, "1,500" 一千五百, "100,010" 十万零一十, "3.14" 三点一四;
                more than four digits without commas (phone numbers, ids, codes) or a leading zero ("007") is
                read digit by digit: "13800138000" 一三八零零一三八零零零; 〇 is written 零
  then every Chinese character is written in simplified characters (OpenCC t2s, character by character, so that
  both sides agree whatever script they were written in), punctuation (Chinese and ascii) is dropped, every
  CJK character is one word, and Latin words are kept whole, lowercased ("我明天要跟David去Spotify":
  "我 明 天 要 跟 david 去 spotify").

Other languages written without spaces (ja, th, lo, my, km, bo): NFKC, numbers as num2words reads them in that
language where it can (else each digit is a character), punctuation dropped, each character (with its combining
marks) one word, Latin words kept whole, lowercased.

Other languages, written with spaces (es, fr, de, pt, it, ...): NFKC, lowercase (not casefold: "ß" stays), words
are runs of letters (with their combining marks) and digits; an apostrophe or hyphen inside a word keeps it one
word ("aujourd'hui", "peut-être"; "’" is read as "'"); numbers as num2words reads them in that language (digits
kept where num2words does not know it): "1.500" and "1,500" (groups of three) are one thousand five hundred,
"3,5" and "3.5" are three, the language's decimal comma word, five; "%" is that language's word for percent where
known; characters of the languages above stay one word each. Money, times, ordinals, dates and minus signs are not
read in these languages yet: their symbols are dropped, their numbers read as numbers ("1º" reads "one o").
"""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

from shared.languages import NO_SPACE_SCRIPTS, to_script

_DIGITS = dict(zip("0123456789", "zero one two three four five six seven eight nine".split()))
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "£": ("pound", "pounds", "penny", "pence"),
               "€": ("euro", "euros", "cent", "cents")}
_AMPM = r"\s*([ap])\.?\s?m\b\.?"  # am, a.m., a. m., AM, A.M. (lowercased before this runs)
_INT = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"  # 1,500 or 1500


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII | re.IGNORECASE)


_MONEY = _re(rf"([$£€])\s?({_INT})(?:\.(\d+))?(?:\s?(thousand|million|billion|trillion)\b)?")
_DEGREES = _re(r"(?<=\d)\s?°\s?(?:([cf])(?![a-z]))?")
_DASH = _re(r"(?<=\d)\s?[‐‑‒–−]\s?(?=\d)|(?<!\w)−(?=\d)")  # unicode dashes and minus signs next to digits
_PHONE = _re(r"(?<![\d.])(?:\+\d{1,3}[ .-]?|1[ .-])?(?:\(\d{3}\) ?|\d{3}[ .-])\d{3}[ .-]\d{4}(?![\d-])")
_ISO_DATE = _re(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_RANGE = _re(r"(\d(?:\s*[ap]\.?\s?m\.?\s*)?)-\s*(?=\d)")
_CLOCK = _re(rf"(?<![\d:.])(\d{{1,2}}):([0-5]\d)(?![\d:])(?:{_AMPM})?")
_AMPM_TIME = _re(rf"(?<![\d:.])(\d{{1,2}})(?:\.([0-5]\d))?{_AMPM}")
_DECADE = _re(r"(?<![\d.,])'?([1-9]0|1[1-9]\d0|20\d0)'?s\b")
_ORDINAL = _re(rf"\b({_INT})(?:st|nd|rd|th)\b")
_NEGATIVE = _re(r"(?<![\w-])-(?=\d)")
_YEAR = _re(r"(?<![\d.,])(1[1-9]\d\d|20[1-9]\d)(?!\d|[.,]\d|\s*%)")
_NUMBER = _re(rf"({_INT})(?:\.(\d+)(?!\d|\.\d))?")
_KEEP = re.compile(r"[^a-z' ]+")


def _words(number: int, to: str = "cardinal") -> str:
    """num2words without its hyphens and commas ("twenty-one" -> "twenty one"), padded to stay a separate word."""
    return " " + str(num2words(number, to=to)).replace("-", " ").replace(",", "") + " "


def _digits(token: str) -> str:
    return " " + " ".join(_DIGITS[c] for c in token if c in _DIGITS) + " "


def _cardinal(token: str) -> str:
    digits = token.replace(",", "")
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > (18 if "," in token else 9):
        return _digits(digits)
    try:
        return _words(int(digits))
    except (OverflowError, ValueError, NotImplementedError):
        return _digits(digits)


def _decimal(whole: str, fraction: str | None) -> str:
    return _cardinal(whole) + (" point" + _digits(fraction) if fraction else "")


def _money(m: re.Match[str]) -> str:
    one, many, sub_one, sub_many = _CURRENCIES[m[1]]
    whole, fraction, scale = m[2], m[3], (m[4] or "").lower()
    if scale or (fraction and len(fraction) != 2):  # $2.5 million, $5.5: the amount as a decimal
        return f"{_decimal(whole, fraction)} {scale} {many} "
    units, cents = whole.replace(",", "").lstrip("0"), (fraction or "").lstrip("0")
    spoken = f"{_cardinal(whole)} {one if units == '1' else many} " if units or not cents else ""
    return spoken + (f"{_cardinal(cents)} {sub_one if cents == '1' else sub_many} " if cents else "")


def _degrees(m: re.Match[str]) -> str:
    scale = {"c": " celsius", "f": " fahrenheit"}.get((m[1] or "").lower(), "")
    return " degrees" + scale + " "


def _phone(m: re.Match[str]) -> str:
    return _digits(m[0])


def _time(m: re.Match[str]) -> str:
    hour, minutes, ampm = m[1], m[2], m[3]
    spoken = _words(int(hour))
    if minutes and minutes != "00":
        spoken += (" oh" + _digits(minutes[1])) if minutes[0] == "0" else _words(int(minutes))
    elif minutes and not ampm:
        spoken += " o'clock"
    return spoken + (f" {ampm} m " if ampm else " ")


def _decade(m: re.Match[str]) -> str:
    words = _words(int(m[1]), to="year" if len(m[1]) == 4 else "cardinal").split()
    last = words[-1][:-1] + "ies" if words[-1].endswith("y") else words[-1] + "s"
    return " " + " ".join([*words[:-1], last]) + " "


def _ordinal(m: re.Match[str]) -> str:
    digits = m[1].replace(",", "")
    return _digits(digits) if len(digits) > 18 else _words(int(digits), to="ordinal")


def _year(m: re.Match[str]) -> str:
    return _words(int(m[1]), to="year")


def _number(m: re.Match[str]) -> str:
    return _decimal(m[1], m[2])


def _english(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    # symbols that ascii folding would drop are read first, wherever digits go with them
    text = _MONEY.sub(_money, text)
    text = _DEGREES.sub(_degrees, text)
    text = _DASH.sub("-", text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    text = _PHONE.sub(_phone, text)
    text = _ISO_DATE.sub(r"\1 \2 \3", text)
    text = _RANGE.sub(r"\1 to ", text)
    text = _CLOCK.sub(_time, text)
    text = _AMPM_TIME.sub(_time, text)
    text = _DECADE.sub(_decade, text)
    text = _ORDINAL.sub(_ordinal, text)
    text = _NEGATIVE.sub(" minus ", text)
    text = _YEAR.sub(_year, text)
    text = _NUMBER.sub(_number, text)
    text = text.replace("&", " and ").replace("%", " percent ").replace("-", " ")
    text = _KEEP.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)


# --- other languages -------------------------------------------------------------------------------------------

# a run of these is not words but characters (CJK, kana, Thai, Lao, Tibetan, Myanmar, Khmer): each one a word
_NO_SPACE_CHARS = re.compile(
    "[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u19e0-\u19ff\u2e80-\u2fdf\u3005-\u3007\u3021-\u3029"
    "\u3038-\u303c\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua9e0-\ua9ff\uaa60-\uaa7f\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f]")
_ANY_DIGIT = re.compile(r"\d")  # any script's decimal digits, read as ascii ones first
_APOSTROPHES = str.maketrans({"’": "'", "ʼ": "'", "‘": "'", "‐": "-", "‑": "-"})
_INT_GROUPED = r"\d{1,3}(?:(?P<sep>[.,])\d{3})(?:(?P=sep)\d{3})*(?!\d)"  # 1.500 / 1,500 / 1.000.000: groups of three
# a number; after a grouped one only the other mark is its decimal one ("1.500,5")
_NUMBER_ANY = re.compile(rf"(?P<whole>{_INT_GROUPED}|\d+)(?:(?!(?P=sep))[.,](?P<fraction>\d+))?", re.ASCII)
_NUM2WORDS_CODES = {"kk": "kz"}  # model codes num2words spells otherwise
_DECIMAL_WORDS = {"es": "coma", "fr": "virgule", "de": "komma", "it": "virgola", "pt": "vírgula", "ca": "coma",
                  "nl": "komma", "sv": "komma", "da": "komma", "no": "komma", "pl": "przecinek", "tr": "virgül",
                  "fi": "pilkku", "ro": "virgulă", "ja": "点", "th": "จุด", "ko": "점"}
_PERCENT_WORDS = {"es": "por ciento", "fr": "pour cent", "de": "prozent", "it": "per cento", "pt": "por cento",
                  "ca": "per cent", "nl": "procent", "sv": "procent", "da": "procent", "no": "prosent",
                  "pl": "procent", "ja": "パーセント", "ko": "퍼센트"}


def _ascii_digits(text: str) -> str:
    return _ANY_DIGIT.sub(lambda m: str(unicodedata.decimal(m[0])), text)


def _words_in(text: str, hyphens: bool, split_digits: bool) -> list[str]:
    """Words of a lowercased text: runs of letters, combining marks and digits; a no-space character (with its
    marks) is a word on its own; "'" (and "-" when `hyphens`) inside a run keeps it one word; the rest separates."""
    words: list[str] = []
    word: list[str] = []
    alone = False  # the last word is a lone character that marks may still attach to

    def end() -> None:
        nonlocal alone
        if word:
            words.append("".join(word))
            word.clear()
        alone = False

    for i, c in enumerate(text):
        kind = unicodedata.category(c)[0]
        if kind == "M":
            if word:
                word.append(c)
            elif alone:
                words[-1] += c
        elif _NO_SPACE_CHARS.match(c) or (split_digits and c.isdigit()):
            end()
            words.append(c)
            alone = True
        elif kind == "L" or c.isdigit():
            if alone:
                alone = False
            word.append(c)
        elif c == "'" or (hyphens and c == "-"):
            after = text[i + 1] if i + 1 < len(text) else ""
            if word and after and (unicodedata.category(after)[0] == "L" or after.isdigit()) \
                    and not _NO_SPACE_CHARS.match(after) and not (split_digits and after.isdigit()):
                word.append(c)
            else:
                end()
        else:
            end()
    end()
    return words


# Chinese numerals ----------------------------------------------------------------------------------------------

_ZH_DIGITS = "零一二三四五六七八九"
_ZH_CURRENCIES = {"$": "美元", "¥": "元", "€": "欧元", "£": "英镑"}
_ZH_NUM = r"\d{1,3}(?:,\d{3})+(?!\d)|\d+"
_ZH_DEGREES = _re(r"(?<=\d)\s?°\s?([cf](?![a-z]))?")
_ZH_MONEY = _re(rf"([$¥€£])\s?((?:{_ZH_NUM})(?:\.\d+)?)")
_ZH_DATE = _re(r"(?<![\d.])(\d{4})([-/.])(\d{1,2})\2(\d{1,2})(?![\d.])")
_ZH_YEAR = _re(r"(?<![\d.,])(\d{4})(?=\s*年)")
_ZH_TIME = _re(r"(?<![\d:.])(\d{1,2}):([0-5]\d)(?![\d:])")
_ZH_PHONE = _re(r"(?<![\d.,])\+?\d+(?:(?:-| )\d+)+(?![\d.,])")
_ZH_RANGE = _re(r"(\d)\s*[-~〜]\s*(?=\d)")
_ZH_PERCENT = _re(rf"((?:{_ZH_NUM})(?:\.\d+)?)\s*%")
_ZH_NEGATIVE = _re(r"(?<![\w.])-(?=\d)")
_ZH_NUMBER = _re(rf"({_ZH_NUM})(?:\.(\d+))?")


def _zh_digits(digits: str) -> str:
    return "".join(_ZH_DIGITS[int(c)] for c in digits if c.isdigit())


def _zh_int(n: int) -> str:
    """A positive number below 10^16 in Chinese numerals, with the 零 a speaker says for skipped places."""
    if n >= 10**4:
        unit, width = (10**8, "亿") if n >= 10**8 else (10**4, "万")
        high, rest = divmod(n, unit)
        out = _zh_int(high) + width
        return out + (("零" if rest < unit // 10 else "") + _zh_int(rest) if rest else "")
    out, gap = "", False
    for value, name in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        d = n // value % 10
        if d:
            out += ("零" if gap and out else "") + _ZH_DIGITS[d] + name
        gap = not d
    return out


def _zh_number(whole: str, fraction: str | None = None) -> str:
    digits = whole.replace(",", "")
    if (len(digits) > 1 and digits[0] == "0") or len(digits) > (16 if "," in whole else 4):
        spoken = _zh_digits(digits)
    elif int(digits) == 0:
        spoken = "零"
    else:
        spoken = _zh_int(int(digits))
        spoken = spoken[1:] if spoken.startswith("一十") else spoken  # 十五, 十万: no 一 before a leading ten
    return spoken + ("点" + _zh_digits(fraction) if fraction else "")


def _zh_amount(amount: str) -> str:
    whole, _, fraction = amount.partition(".")
    return _zh_number(whole, fraction or None)


def _zh_money(m: re.Match[str]) -> str:
    return _zh_amount(m[2]) + _ZH_CURRENCIES[m[1]]


def _zh_date(m: re.Match[str]) -> str:
    return f"{_zh_digits(m[1])}年{_zh_number(m[3])}月{_zh_number(m[4])}日"


def _zh_time(m: re.Match[str]) -> str:
    minutes = m[2]
    spoken = "" if minutes == "00" else ("零" + _zh_digits(minutes[1])) if minutes[0] == "0" else _zh_number(minutes)
    return _zh_number(m[1]) + "点" + spoken


def _zh_phone(m: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", m[0])
    return _zh_digits(digits) if len(digits) >= 7 else m[0]


def _simplified(text: str) -> str:
    # character by character (the text is spaced), to a fixed point: OpenCC maps a few characters in two steps
    for _ in range(3):
        converted = to_script(text, "t2s")
        if converted == text:
            break
        text = converted
    return text


def _chinese(text: str) -> str:
    text = _ascii_digits(unicodedata.normalize("NFKC", text))
    text = _ZH_DEGREES.sub(lambda m: {"c": "摄氏度", "f": "华氏度"}.get((m[1] or "").lower(), "度"), text)
    text = _ZH_MONEY.sub(_zh_money, text)
    text = _ZH_DATE.sub(_zh_date, text)
    text = _ZH_YEAR.sub(lambda m: _zh_digits(m[1]), text)
    text = _ZH_TIME.sub(_zh_time, text)
    text = _ZH_PHONE.sub(_zh_phone, text)
    text = _ZH_RANGE.sub(r"\1到", text)
    text = _ZH_PERCENT.sub(lambda m: "百分之" + _zh_amount(m[1]), text)
    text = _ZH_NEGATIVE.sub("负", text)
    text = _ZH_NUMBER.sub(lambda m: _zh_number(m[1], m[2]), text)
    text = text.replace("〇", "零").lower()
    return _simplified(" ".join(_words_in(text, hyphens=False, split_digits=True)))


# other languages -------------------------------------------------------------------------------------------------

def _say(number: int, lang: str) -> str | None:
    try:
        return " " + str(num2words(number, lang=_NUM2WORDS_CODES.get(lang, lang))) + " "
    except Exception:  # num2words raises NotImplementedError, OverflowError, KeyError, ... for what it cannot say
        return None


def _say_digits(digits: str, lang: str) -> str:
    return " " + " ".join(_say(int(c), lang) or c for c in digits) + " "


def _say_number(m: re.Match[str], lang: str) -> str:
    whole, fraction = m["whole"], m["fraction"]
    digits = re.sub(r"\D", "", whole)
    too_long = len(digits) > (18 if len(digits) != len(whole) else 9)
    spoken = None if too_long or (len(digits) > 1 and digits[0] == "0") else _say(int(digits), lang)
    spoken = spoken or _say_digits(digits, lang)
    if fraction:
        spoken += f" {_DECIMAL_WORDS.get(lang, '')} {_say_digits(fraction, lang)}"
    return spoken


def _other(text: str, lang: str) -> str:
    text = _ascii_digits(unicodedata.normalize("NFKC", text)).translate(_APOSTROPHES)
    text = text.replace("%", f" {_PERCENT_WORDS.get(lang, '')} ")
    text = _NUMBER_ANY.sub(lambda m: _say_number(m, lang), text).lower()
    no_space = lang in NO_SPACE_SCRIPTS
    return " ".join(_words_in(text, hyphens=not no_space, split_digits=no_space))


def normalize_text(text: str, language: str = "en") -> str:
    """The spoken form of `text` in `language` (the model's code; "en" unless told): see the module docstring."""
    code = re.split(r"[-_]", (language or "en").strip().lower(), maxsplit=1)[0] or "en"
    if code in ("en", "auto"):
        return _english(text)
    if code in ("zh", "cmn", "yue"):
        return _chinese(text)
    return _other(text, code)
