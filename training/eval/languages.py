"""Languages other than English, side by side with faster-whisper on the same weights, same audio, one run.

Each dev set whose rows carry a "language" (training/data/languages.py) is recognised four ways: ours and
faster-whisper with the language given, and each identifying it (ours among SEEDASR_LANGUAGES, faster-whisper among
the same candidates). Error rates use one normaliser per language (shared/text.py normalize_text): characters for
Chinese (CER), words elsewhere (WER). The language-ID set (several languages, one per row) reports how often each
system names the row's language; Cantonese counts as right when named `yue` or `zh` (Whisper has no Cantonese token
of its own in base). The Mandarin context set reports keyword recall and insertions through the English set's
scorer, whose keyword match reads Chinese by characters.

    python -m training.eval.languages --sets data/dev_zh_kokoro data/dev_es_pico ... [--lid data/dev_lid]
                                      [--context data/context_zh data/context_zh_test] [--model DIR] [--peer-model CT2_DIR]
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import jiwer

from shared.languages import spaced
from shared.text import normalize_text
from training.eval.context_scoring import context_prompt, score_context
from training.eval.peers import Whisper
from training.eval.served import ServedRecogniser

CANDIDATES = ("en", "zh", "es", "fr", "de")  # SEEDASR_LANGUAGES' default: what identification chooses among


def set_language(manifest: Path) -> Optional[str]:
    """The language of a dev set's rows ("language" of its first row), None for an English set without one."""
    with manifest.open() as f:
        first = f.readline()
    return json.loads(first).get("language") if first.strip() else None


def error_rate(refs: Sequence[str], hyps: Sequence[str], language: str) -> float:
    """WER, or CER for a language written without spaces (its normaliser puts one character per token)."""
    return float(jiwer.wer([normalize_text(r, language) or "<empty>" for r in refs],
                           [normalize_text(h, language) or "<empty>" for h in hyps]))


def right_language(got: str, want: str) -> bool:
    return got == want or (want == "yue" and got == "zh")


@dataclass
class LanguageResult:
    name: str
    language: str
    seconds: float = 0.0
    refs: list[str] = field(default_factory=list)
    row_languages: list[str] = field(default_factory=list)
    hyps: dict[str, list[str]] = field(default_factory=dict)  # "ours given", "ours identified", "fw given", ...
    named: dict[str, list[str]] = field(default_factory=dict)  # "ours", "fw": the identified language per row
    cpu: dict[str, float] = field(default_factory=dict)

    def rate(self, key: str) -> float:
        return error_rate(self.refs, self.hyps[key], self.language)

    def lid(self, who: str) -> float:
        """The share of rows whose language `who` ("ours", "fw") named right when it had to identify it."""
        named = zip(self.named[who], self.row_languages)
        return sum(right_language(got, want) for got, want in named) / max(len(self.row_languages), 1)


def eval_language_set(name: str, rows: list[dict[str, Any]], ours: ServedRecogniser, whisper: Optional[Whisper],
                      candidates: Sequence[str] = CANDIDATES, identify_only: bool = False) -> LanguageResult:
    """Every row four ways (two with identify_only: the language-ID set, whose rows mix languages)."""
    res = LanguageResult(name, rows[0].get("language", "en"))
    for r in rows:
        language = r.get("language", "en")
        res.refs.append(r["text"])
        res.row_languages.append(language)
        res.seconds += r["duration"]
        given = "zh" if language == "yue" else language  # Whisper base has no Cantonese token: Chinese is its nearest
        for mode, tag in (("given", given), ("identified", "")):
            if identify_only and mode == "given":
                continue
            resp = ours.recognize(r["audio"], no_context=True, language=tag)
            res.cpu[f"ours {mode}"] = res.cpu.get(f"ours {mode}", 0.0) + ours.last_cpu_s
            res.hyps.setdefault(f"ours {mode}", []).append(resp.alternatives[0].text if resp.alternatives else "")
            if mode == "identified":
                res.named.setdefault("ours", []).append(resp.language)
            if whisper is None:
                continue
            t = time.process_time()
            text = whisper(r["audio"], language=tag or None, candidates=candidates)
            res.cpu[f"fw {mode}"] = res.cpu.get(f"fw {mode}", 0.0) + time.process_time() - t
            res.hyps.setdefault(f"fw {mode}", []).append(text)
            if mode == "identified":
                res.named.setdefault("fw", []).append(whisper.last_language)
    return res


def language_table(results: Sequence[LanguageResult], peer: bool) -> list[str]:
    """Markdown: per set, the error rate of each way, the share of rows whose language each system named, CPU."""
    ways = ["ours given", *(["fw given"] if peer else []), "ours identified", *(["fw identified"] if peer else [])]
    head = ["set", "language", "utts", "metric", *ways, "LID ours", *(["LID fw"] if peer else []),
            "CPU-s/audio-s ours", *(["CPU-s/audio-s fw"] if peer else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        metric = "WER" if spaced(res.language) else "CER"
        cells = [res.name, res.language, str(len(res.refs)), metric, *(f"{res.rate(w):.1%}" for w in ways),
                 f"{res.lid('ours'):.1%}", *([f"{res.lid('fw'):.1%}"] if peer else []),
                 f"{res.cpu['ours given'] / res.seconds:.3f}", *([f"{res.cpu['fw given'] / res.seconds:.3f}"] if peer else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def lid_table(res: LanguageResult, peer: bool) -> list[str]:
    """Markdown: identification accuracy per language of the language-ID set, ours beside faster-whisper."""
    by: dict[str, list[int]] = {}
    for i, language in enumerate(res.row_languages):
        by.setdefault(language, []).append(i)
    head = ["language", "turns", "ours right", *(["faster-whisper right"] if peer else [])]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for language, idx in [*sorted(by.items()), ("all", list(range(len(res.row_languages))))]:
        cells = [language, str(len(idx))]
        for who in ("ours", *(["fw"] if peer else [])):
            right = sum(right_language(res.named[who][i], res.row_languages[i]) for i in idx)
            cells.append(f"{right / len(idx):.1%}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def context_section(rows: list[dict[str, Any]], ours: ServedRecogniser, whisper: Optional[Whisper]) -> list[str]:
    """A context set in another language (Mandarin: training/data/languages.py --context-zh): keyword recall,
    insertions on distractor rows and CER, ours without and with the row's context (history, hotwords, prompt)
    beside faster-whisper without and with the same words as its prompt; the language given."""
    runs: list[tuple[str, list[str]]] = []
    for label, with_context in (("ours, no context", False), ("ours, context", True)):
        hyps = []
        for r in rows:
            resp = ours.recognize(r["audio"], r.get("history", []), r.get("hotwords", []), r.get("prompt", ""),
                                  no_context=not with_context, language=r.get("language", "zh"))
            hyps.append(resp.alternatives[0].text if resp.alternatives else "")
        runs.append((label, hyps))
    if whisper is not None:
        for label, with_context in (("faster-whisper", False), ("faster-whisper, context as prompt", True)):
            runs.append((label, [whisper(r["audio"], prompt=context_prompt(r) if with_context else "",
                                         language=r.get("language", "zh")) for r in rows]))
    lines = ["| setting | keyword recall | distractor insertions | CER |", "|---|---|---|---|"]
    for label, hyps in runs:
        score = score_context(rows, hyps)
        lines.append(f"| {label} | {score['keyword_recall']:.1%} | {score['distractor_insertions']:.1%} | "
                     f"{score['wer']:.1%} |")
    return lines


def read_rows(manifest: Path, limit: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def run(sets: Sequence[Path], lid: Optional[Path], ours: ServedRecogniser, whisper: Optional[Whisper],
        limit: int = 0, contexts: Sequence[Path] = ()) -> list[str]:
    """The per-language section of EVAL.md (markdown lines), printed as each table is done."""
    lines = ["## Languages", "",
             "Ours and faster-whisper (int8, beam 5) on the same weights and audio; `given`: the set's language in the "
             "request, `identified`: none (each system picks among " + ", ".join(CANDIDATES) + "). CER for Chinese, WER "
             "elsewhere, under shared/text.py's normaliser per language.", ""]
    results = [eval_language_set(p.name, read_rows(p / "manifest.jsonl", limit), ours, whisper) for p in sets]
    lines += language_table(results, whisper is not None)
    print("\n".join(lines), flush=True)
    if lid is not None and (lid / "manifest.jsonl").is_file():
        res = eval_language_set(lid.name, read_rows(lid / "manifest.jsonl", limit), ours, whisper, identify_only=True)
        table = ["", f"Language identification on {lid.name} (2-5 s turns):", "", *lid_table(res, whisper is not None)]
        print("\n".join(table), flush=True)
        lines += table
    for context in (c for c in contexts if (c / "manifest.jsonl").is_file()):
        table = ["", f"Context in Mandarin ({context.name}): keyword recall and insertions, the language given:", "",
                 *context_section(read_rows(context / "manifest.jsonl", limit), ours, whisper)]
        print("\n".join(table), flush=True)
        lines += table
    return lines


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", type=Path, required=True)
    ap.add_argument("--lid", type=Path, default=Path("data/dev_lid"))
    ap.add_argument("--context", type=Path, nargs="*", default=[Path("data/context_zh"), Path("data/context_zh_test")],
                    help="Mandarin context sets (context_zh tuned correction_margin_zh; context_zh_test is held out)")
    ap.add_argument("--model", help="bundle directory (default: bundles/default)")
    ap.add_argument("--peer-model", help="faster-whisper's CTranslate2 folder (default: the base package's)")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--card", type=Path, help="put the section into this EVAL.md (replacing its '## Languages')")
    args = ap.parse_args(argv)
    whisper = None if args.no_peer else Whisper(model_dir=args.peer_model)
    with ServedRecogniser(args.model, languages=",".join(CANDIDATES)) as ours:
        lines = run(args.sets, args.lid, ours, whisper, args.limit, args.context)
    if args.card:
        args.card.write_text(with_section(args.card.read_text() if args.card.exists() else "", "\n".join(lines)))


def with_section(card: str, section: str) -> str:
    """card with its '## Languages' section (up to the next '## ') replaced by section, or section added before the
    long-form one (the last), else at the end."""
    head, found, rest = card.partition("## Languages\n")
    if found:
        after = rest.find("\n## ")
        return head + section.rstrip("\n") + "\n" + (rest[after:] if after >= 0 else "")
    before, found, tail = card.partition("## Long-form")
    if found:
        return before + section.rstrip("\n") + "\n\n## Long-form" + tail
    return card.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"


if __name__ == "__main__":
    main()
