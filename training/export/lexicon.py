"""The bundle's word list (lexicon.txt) for the decoder's out-of-lexicon penalty (shared/model/lexicon.py).

    python -m training.export.lexicon --out bundles/default/lexicon.txt [--top 100000]

General English, not the dev sets: wordfreq's most frequent words plus Debian's wamerican word list
when it is installed. Users extend it with their domain's words (one per line, lowercase); the
request's context words are always in.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import wordfreq

SYSTEM_WORDS = Path("/usr/share/dict/american-english")


def build_lexicon(top: int = 100_000, system_words: Path = SYSTEM_WORDS) -> list[str]:
    words = {w for w in wordfreq.top_n_list("en", top) if any(c.isalpha() for c in w)}
    if system_words.exists():
        words |= {w.strip().lower() for w in system_words.read_text(encoding="utf-8").splitlines() if w.strip()}
    return sorted(words)


def write_lexicon(out: Path, top: int = 100_000) -> int:
    words = build_lexicon(top)
    out.write_text("\n".join(words) + "\n", encoding="utf-8")
    return len(words)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--top", type=int, default=100_000, help="how many of wordfreq's most frequent English words")
    args = ap.parse_args()
    print(f"{args.out}: {write_lexicon(args.out, args.top)} words")


if __name__ == "__main__":
    main()
