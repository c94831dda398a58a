"""Language tags: what a caller may ask for, which of the model's languages that is, and how its output is written.

Callers speak BCP-47 ("en-US", "es-419", "zh-Hant-TW", "yue-HK"), OpenAI-style clients send ISO 639-1 codes or
Whisper's English names ("english"); the model knows one token per language (Whisper base: the 99 below, no
Cantonese token, so Cantonese is decoded as "zh"). A tag therefore resolves to the model's code, and for Chinese
also to the script the written output should be in: Whisper writes Chinese in either script, so the output is
converted with OpenCC to the one the caller asked for ("zh-TW" gets Taiwan's characters and phrases).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

# openai-whisper's LANGUAGES in token order (<|en|> is the first language token); a test checks the order against
# the shipped model's config.json lang_ids
WHISPER_LANGUAGES: dict[str, str] = {
    "en": "english", "zh": "chinese", "de": "german", "es": "spanish", "ru": "russian", "ko": "korean",
    "fr": "french", "ja": "japanese", "pt": "portuguese", "tr": "turkish", "pl": "polish", "ca": "catalan",
    "nl": "dutch", "ar": "arabic", "sv": "swedish", "it": "italian", "id": "indonesian", "hi": "hindi",
    "fi": "finnish", "vi": "vietnamese", "he": "hebrew", "uk": "ukrainian", "el": "greek", "ms": "malay",
    "cs": "czech", "ro": "romanian", "da": "danish", "hu": "hungarian", "ta": "tamil", "no": "norwegian",
    "th": "thai", "ur": "urdu", "hr": "croatian", "bg": "bulgarian", "lt": "lithuanian", "la": "latin",
    "mi": "maori", "ml": "malayalam", "cy": "welsh", "sk": "slovak", "te": "telugu", "fa": "persian",
    "lv": "latvian", "bn": "bengali", "sr": "serbian", "az": "azerbaijani", "sl": "slovenian", "kn": "kannada",
    "et": "estonian", "mk": "macedonian", "br": "breton", "eu": "basque", "is": "icelandic", "hy": "armenian",
    "ne": "nepali", "mn": "mongolian", "bs": "bosnian", "kk": "kazakh", "sq": "albanian", "sw": "swahili",
    "gl": "galician", "mr": "marathi", "pa": "punjabi", "si": "sinhala", "km": "khmer", "sn": "shona",
    "yo": "yoruba", "so": "somali", "af": "afrikaans", "oc": "occitan", "ka": "georgian", "be": "belarusian",
    "tg": "tajik", "sd": "sindhi", "gu": "gujarati", "am": "amharic", "yi": "yiddish", "lo": "lao",
    "uz": "uzbek", "fo": "faroese", "ht": "haitian creole", "ps": "pashto", "tk": "turkmen", "nn": "nynorsk",
    "mt": "maltese", "sa": "sanskrit", "lb": "luxembourgish", "my": "myanmar", "bo": "tibetan", "tl": "tagalog",
    "mg": "malagasy", "as": "assamese", "tt": "tatar", "haw": "hawaiian", "ln": "lingala", "ha": "hausa",
    "ba": "bashkir", "jw": "javanese", "su": "sundanese",
}

# languages written without spaces between words: a word error rate means nothing there, so text is scored
# per character, and the output is not joined with spaces
NO_SPACE_SCRIPTS: frozenset[str] = frozenset({"zh", "yue", "ja", "th", "lo", "my", "km", "bo"})

# codes a caller may use for a language the model knows under another code: macrolanguage members (Mandarin,
# Cantonese, Bokmål), deprecated ISO 639 codes still sent by old clients, and Whisper's non-standard "jw"
_ALIASES = {"cmn": "zh", "yue": "zh", "nb": "no", "jv": "jw", "iw": "he", "in": "id", "ji": "yi", "mo": "ro",
            "fil": "tl"}
# names openai-whisper accepts besides WHISPER_LANGUAGES' own
_NAMES = {name: code for code, name in WHISPER_LANGUAGES.items()} | {
    "mandarin": "zh", "cantonese": "yue", "castilian": "es", "flemish": "nl", "valencian": "ca", "burmese": "my",
    "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps", "panjabi": "pa", "moldavian": "ro", "moldovan": "ro",
    "sinhalese": "si"}

_SUBTAG = re.compile(r"[a-z0-9]{1,8}", re.ASCII | re.IGNORECASE)


@dataclass(frozen=True)
class Language:
    code: str  # the model's language code ("zh")
    tag: str  # the tag as asked, in canonical case ("zh-Hant-TW")
    script: Optional[str] = None  # OpenCC config for the written output ("t2s", "s2twp", "s2hk"); None: as decoded


def _chinese_script(primary: str, script: Optional[str], region: Optional[str]) -> str:
    """Simplified unless the tag says otherwise; Hong Kong/Macau (and Cantonese) get Hong Kong characters."""
    hk = region in ("HK", "MO") or (primary == "yue" and region not in ("TW", "CN", "SG", "MY"))
    if script == "Hans":
        return "t2s"
    if script == "Hant" or region in ("TW", "HK", "MO") or primary == "yue":
        return "s2hk" if hk else "s2twp"
    return "t2s"


def _how_to_ask(known: Sequence[str]) -> str:
    return f"a BCP-47 tag of one of the bundle's languages: {', '.join(known)}; or '' / 'auto' to identify it"


def parse_language(tag: str, known: Sequence[str]) -> Optional[Language]:
    """The model language (and written script) a caller's tag asks for; None for "" / "auto" (identify it).

    Raises ValueError when the tag is malformed or its language is not among `known` (the bundle's languages)."""
    asked = (tag or "").strip()
    if asked.lower() in ("", "auto"):
        return None
    if asked.lower() in _NAMES:  # "english", "Chinese", "cantonese"
        asked = _NAMES[asked.lower()]
    parts = re.split(r"[-_]", asked)
    if not all(_SUBTAG.fullmatch(p) for p in parts) or not re.fullmatch(r"[a-z]{2,3}", parts[0], re.ASCII | re.I):
        raise ValueError(f"language {tag!r} is not a language tag; ask with {_how_to_ask(known)}")
    primary, rest = parts[0].lower(), parts[1:]
    canonical = [primary]
    if primary == "zh" and rest and re.fullmatch(r"[a-z]{3}", rest[0], re.ASCII | re.I):  # extlang: zh-yue, zh-cmn
        primary = rest.pop(0).lower()
        canonical.append(primary)
    script = region = None
    if rest and re.fullmatch(r"[a-z]{4}", rest[0], re.ASCII | re.I):
        script = rest.pop(0).title()
        canonical.append(script)
    if rest and re.fullmatch(r"[a-z]{2}|[0-9]{3}", rest[0], re.ASCII | re.I):
        region = rest.pop(0).upper()
        canonical.append(region)
    canonical += [p.lower() for p in rest]  # variants, extensions: kept, not interpreted
    code = primary if primary in known else _ALIASES.get(primary, primary)
    if code not in known:
        raise ValueError(f"language {tag!r} is not one of this bundle's; ask with {_how_to_ask(known)}")
    chinese = code == "zh" or primary in ("zh", "cmn", "yue")
    return Language(code=code, tag="-".join(canonical), script=_chinese_script(primary, script, region) if chinese else None)


def language_name(code: str) -> str:
    """Whisper's English name of a model code, as OpenAI's verbose_json reports it ("english"); unknown: the code."""
    return WHISPER_LANGUAGES.get(code, "cantonese" if code == "yue" else code)


def spaced(code: str) -> bool:
    """Whether the language puts spaces between words (False for Chinese, Japanese, Thai, ...)."""
    return code.lower() not in NO_SPACE_SCRIPTS


_CONVERTERS: dict[str, Any] = {}
_CONVERTERS_LOCK = threading.Lock()


def _converter(script: str) -> Any:
    # loading a config reads its dictionaries (tens of ms): once per config per process. A loaded converter only
    # reads them, so threads share it without a lock.
    converter = _CONVERTERS.get(script)
    if converter is None:
        with _CONVERTERS_LOCK:
            converter = _CONVERTERS.get(script)
            if converter is None:
                try:
                    import opencc
                except ImportError as exc:
                    raise ImportError("Chinese script conversion needs OpenCC: pip install OpenCC") from exc
                converter = opencc.OpenCC(script if script.endswith(".json") else f"{script}.json")
                _CONVERTERS[script] = converter
    return converter


def to_script(text: str, script: Optional[str]) -> str:
    """text converted by the OpenCC config `script` ("t2s", "s2twp", "s2hk", ...); unchanged for None."""
    if not script or not text:
        return text
    return str(_converter(script).convert(text))


_FULLWIDTH = {",": "，", "?": "？", "!": "！", ":": "：", ";": "；", ".": "。"}
_HAN = "\u3400-\u9fff\uf900-\ufaff"
_AFTER_HAN = re.compile(f"(?<=[{_HAN}])([,?!:;]|\\.(?!\\d))\\s*")
# Whisper's spaces between its segments of Chinese ("把空调温度 调到23度"), which Chinese does not write; a space
# beside a Latin word (code-switched English) stays
_SPACE_IN_HAN = re.compile(f"(?<=[{_HAN}，。？！：；])\\s+(?=[{_HAN}\\d])|(?<=\\d)\\s+(?=[{_HAN}])")


def chinese_punctuation(text: str) -> str:
    """Whisper's ASCII punctuation after a Chinese character as Chinese writes it ("请帮我,给" -> "请帮我，给", "对,1号"
    -> "对，1号"), and no spaces between Chinese characters or between them and digits ("温度 调到 23度" ->
    "温度调到23度"); a decimal point (3.5), punctuation after Latin text and spaces around it (code-switched English)
    stay as they are."""
    return _SPACE_IN_HAN.sub("", _AFTER_HAN.sub(lambda m: _FULLWIDTH[m.group(1)], text))
