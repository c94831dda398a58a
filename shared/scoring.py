"""WER and keyword-weighted WER after the one normalisation (shared/text.py), via jiwer."""

from __future__ import annotations

import jiwer

from shared.text import normalize_text


def wer(reference: str, hypothesis: str) -> float:
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


def weighted_wer(reference: str, hypothesis: str, keywords: list[str], weight: float = 3.0) -> float:
    """Errors touching keyword words count `weight` times; normalised by the weighted reference length."""
    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    key_words = {w for k in keywords for w in normalize_text(k).split()}
    ref_words = ref.split()
    if not ref_words:
        return 0.0 if not hyp else 1.0
    if not hyp:  # everything deleted
        return 1.0
    out = jiwer.process_words(ref, hyp)
    hyp_words = hyp.split()
    cost = 0.0
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            continue
        if chunk.type in ("substitute", "delete"):
            cost += sum(weight if w in key_words else 1.0 for w in ref_words[chunk.ref_start_idx : chunk.ref_end_idx])
        else:  # insert
            cost += sum(weight if w in key_words else 1.0 for w in hyp_words[chunk.hyp_start_idx : chunk.hyp_end_idx])
    total = sum(weight if w in key_words else 1.0 for w in ref_words)
    return cost / total
