"""The one text normalisation used for training targets and for WER: lowercase, no punctuation,
numerals spelled out (ordinals, thousands separators and currency too, so a peer that writes "10 meters",
"the 3rd", "1,500" or "$5" is not counted wrong against "ten meters", "the third", "one thousand five
hundred", "five dollars"), accents folded to ascii."""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_ORDINAL = re.compile(r"\b(\d+)(?:st|nd|rd|th)\b")
_THOUSANDS = re.compile(r"\b(\d{1,3})((?:,\d{3})+)\b")
_DOLLARS = re.compile(r"\$\s?(\d+(?:\.\d+)?)")
_KEEP = re.compile(r"[^a-z' ]+")


def _spell(match: re.Match[str]) -> str:
    token = match.group(0)
    try:
        return " " + str(num2words(float(token) if "." in token else int(token))) + " "
    except (OverflowError, ValueError):
        return " ".join(token)


def normalize_text(text: str) -> str:
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower().replace("&", " and ").replace("%", " percent ")
    text = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    text = _DOLLARS.sub(lambda m: f"{m.group(1)} dollars", text)
    text = _ORDINAL.sub(lambda m: " " + str(num2words(int(m.group(1)), to="ordinal")) + " ", text)
    text = _NUMBER.sub(_spell, text)
    text = text.replace("-", " ")
    text = _KEEP.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)
