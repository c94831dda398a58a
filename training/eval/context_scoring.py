"""Scoring of context runs, in any language: keyword recall over keyword rows, context entities inserted into
distractor rows, WER (CER for Chinese), each under the row's own language ("language", English when absent)."""

from __future__ import annotations

from typing import Any

import jiwer
import numpy as np

from shared.languages import spaced
from shared.text import normalize_text


def row_error_rate(reference: str, hypothesis: str, language: str = "en") -> float:
    ref, hyp = normalize_text(reference, language), normalize_text(hypothesis, language)
    if not ref:
        return 0.0 if not hyp else 1.0
    return float(jiwer.wer(ref, hyp))


def keyword_hit(keyword: str, hyp: str, language: str = "en") -> bool:
    """The keyword as whole words, possessive included ("what is roy's phone number" says "roy"); in a language
    written without spaces, as a run of characters ("王小明" in "请给王小明打电话")."""
    if not spaced(language):
        needle = normalize_text(keyword, language).replace(" ", "")
        return bool(needle) and needle in normalize_text(hyp, language).replace(" ", "")
    needle, hay = f" {normalize_text(keyword, language)} ", f" {normalize_text(hyp, language)} "
    return needle in hay or needle in hay.replace("'s ", " ")


def score_context(rows: list[dict[str, Any]], hyps: list[str]) -> dict[str, float]:
    """Keyword recall over keyword rows, share of distractor rows with an inserted context entity, mean WER."""
    hits = keys = inserted = distractors = 0
    for r, hyp in zip(rows, hyps):
        language = r.get("language", "en")
        if r.get("distractor"):
            distractors += 1
            entities = [e for e in r.get("context_entities", [])] or _history_entities(r)
            inserted += any(keyword_hit(e, hyp, language) and not keyword_hit(e, r["text"], language) for e in entities)
        else:
            for k in r.get("keywords", []):
                keys += 1
                hits += keyword_hit(k, hyp, language)
    return {"keyword_recall": hits / max(keys, 1), "distractor_insertions": inserted / max(distractors, 1),
            "wer": float(np.mean([row_error_rate(r["text"], h, r.get("language", "en")) for r, h in zip(rows, hyps)]))}


def keyword_misses(rows: list[dict[str, Any]], hyps: list[str], plain: list[str]) -> list[dict[str, str]]:
    """Each keyword a context run missed, with the reference, that run's transcript and the transcript
    without context: what tells a decoding fault (heard without context, lost with it) from an acoustic one."""
    return [{"id": r["id"], "keyword": k, "text": r["text"], "with_context": h, "without_context": p}
            for r, h, p in zip(rows, hyps, plain) for k in r.get("keywords", [])
            if not keyword_hit(k, h, r.get("language", "en"))]


def context_prompt(row: dict[str, Any]) -> str:
    """The words our recogniser gets as context, as one prompt for a peer: prompt, hotwords, history."""
    parts = [row.get("prompt", ""), ", ".join(row.get("hotwords", [])), *row.get("history", [])]
    return " ".join(p.strip() for p in parts if p and p.strip())


def _history_entities(row: dict[str, Any]) -> list[str]:
    """Distractor entities: the hotwords plus the words of history turns not in the utterance."""
    ents = list(row.get("hotwords", []))
    ref = set(normalize_text(row["text"]).split())
    for turn in row.get("history", []):
        ents += [w for w in normalize_text(turn).split() if w not in ref and len(w) > 3]
    return ents
