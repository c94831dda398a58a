"""The bundle's word n-gram LM (word_lm.arpa.gz) for shallow fusion in beam search (shared/model/word_lm.py).

    python -m training.export.word_lm --out bundles/default/word_lm.arpa.gz [--sentences 200000]

Text: the training split of the synthesis text stream (training/data/text.py, the source the MoE LM
pretrains on) and every training-split fortune; a dev sentence never (`is_dev`). Interpolated
Kneser-Ney trigram, written as ARPA, the file KenLM reads at serving time, so a user's own ARPA model
(KenLM's lmplz, SRILM, on their domain text) drops in as the same file. The estimate is done here
because no packaged estimator writes a usable ARPA (lmplz is in neither PyPI's kenlm nor Debian;
PyPI's arpabo writes every backoff weight as 0, so its probabilities do not sum to one).
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
ORDER = 3
STREAM_SENTENCES = 200_000  # drawn from the training text stream, beside every training-split fortune


def training_sentences(count: int = STREAM_SENTENCES, seed: int = 1) -> list[str]:
    from training.data.text import fortune_sentences, is_dev, sentence_stream

    sents = [s for s, _ in itertools.islice(sentence_stream(seed, dev=False), count)]
    return sents + [s for s in fortune_sentences() if not is_dev(s)]


def _discount(counts: Counter) -> float:
    """Ney's estimate D = n1 / (n1 + 2 n2) from the counts of counts (0.5 when they say nothing)."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    return n1 / (n1 + 2 * n2) if n1 and n2 else 0.5


Gram = tuple[str, ...]


def adjusted_counts(sentences: Iterable[str], order: int = ORDER) -> list[Counter]:
    """Per length L = 1..order, the counts Kneser-Ney estimates from: raw counts at the top order and
    for n-grams that start with <s> (nothing precedes them); below the top, the number of distinct
    words seen right before the n-gram (its continuation count)."""
    raw: list[Counter] = [Counter() for _ in range(order)]
    for sent in sentences:
        words = [BOS, *sent.split(), EOS]
        for i in range(1, len(words)):
            for n in range(min(order, i + 1)):
                raw[n][tuple(words[i - n: i + 1])] += 1
    adjusted: list[Counter] = [Counter() for _ in range(order)]
    adjusted[-1] = raw[-1]
    for n in range(order - 2, -1, -1):
        for gram in raw[n + 1]:
            adjusted[n][gram[1:]] += 1
        for gram, c in raw[n].items():
            if gram[0] == BOS:
                adjusted[n][gram] = c
    return adjusted


def kneser_ney(sentences: Iterable[str], order: int = ORDER) -> list[dict[Gram, tuple[float, float]]]:
    """Interpolated Kneser-Ney: per length, n-gram -> (log10 p, log10 backoff weight as a history).

    p_L(w | h) = max(a(h w) - D_L, 0) / a(h .) + gamma(h) p_{L-1}(w | h minus its first word), with
    gamma(h) = D_L * |{w : a(h w) > 0}| / a(h .) and p_0 uniform over the words and <unk>. An n-gram
    unseen at length L then takes gamma(h) p_{L-1}, which is exactly what ARPA's backoff weights say."""
    adjusted = adjusted_counts(sentences, order)
    vocab_size = sum(1 for g in adjusted[0] if g[0] != BOS) + 1  # + <unk>
    probs: list[dict[Gram, float]] = []
    gammas: list[dict[Gram, float]] = []  # gammas[n]: histories of length n
    for n in range(order):
        d = _discount(adjusted[n])
        totals: dict[Gram, int] = defaultdict(int)
        types: dict[Gram, int] = defaultdict(int)
        for gram, c in adjusted[n].items():
            totals[gram[:-1]] += c
            types[gram[:-1]] += 1
        gamma = {h: d * types[h] / totals[h] for h in totals}
        level: dict[Gram, float] = {}
        for gram, c in adjusted[n].items():
            lower = probs[n - 1][gram[1:]] if n else 1.0 / vocab_size
            level[gram] = max(c - d, 0.0) / totals[gram[:-1]] + gamma[gram[:-1]] * lower
        if n == 0:
            level[(UNK,)] = gamma[()] / vocab_size
        probs.append(level)
        gammas.append(gamma)
    out: list[dict[Gram, tuple[float, float]]] = []
    for n in range(order):
        nxt = gammas[n + 1] if n + 1 < order else {}
        out.append({g: (math.log10(p), math.log10(nxt.get(g, 1.0))) for g, p in probs[n].items()})
    out[0][(BOS,)] = (-99.0, math.log10(gammas[1].get((BOS,), 1.0)) if order > 1 else 0.0)
    return out


def arpa_text(tables: list[dict[Gram, tuple[float, float]]]) -> str:
    lines = ["\\data\\", *(f"ngram {n + 1}={len(t)}" for n, t in enumerate(tables)), ""]
    for n, table in enumerate(tables):
        lines.append(f"\\{n + 1}-grams:")
        top = n == len(tables) - 1
        for gram in sorted(table):
            logp, bow = table[gram]
            lines.append(f"{logp:.4f}\t{' '.join(gram)}" + ("" if top else f"\t{bow:.4f}"))
        lines.append("")
    lines.append("\\end\\")
    return "\n".join(lines) + "\n"


def write_word_lm(out: Path, sentences: Iterable[str], order: int = ORDER) -> None:
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        f.write(arpa_text(kneser_ney(sentences, order)))


def main() -> None:
    from training.data.text import pin_hash_seed

    pin_hash_seed()  # Faker's lists follow the hash seed: same seed, same sentences
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sentences", type=int, default=STREAM_SENTENCES, help="sentences drawn from the training text stream")
    ap.add_argument("--order", type=int, default=ORDER)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    start = time.time()
    sents = training_sentences(args.sentences, args.seed)
    write_word_lm(args.out, sents, args.order)
    size = args.out.stat().st_size / 1e6
    print(f"{args.out}: {args.order}-gram LM of {len(sents)} sentences, {size:.1f} MB, {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
