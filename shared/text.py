"""The one text normalisation used for training targets and for WER: lowercase, no punctuation,
digits spelled out, accents folded to ascii."""

from __future__ import annotations

import re
import unicodedata

from num2words import num2words

_NUMBER = re.compile(r"\d+(?:\.\d+)?")
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
    text = _NUMBER.sub(_spell, text)
    text = text.replace("-", " ")
    text = _KEEP.sub(" ", text)
    words = [w.strip("'") for w in text.split()]
    return " ".join(w for w in words if w)
