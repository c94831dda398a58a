"""Written-form, word-confidence and word-timing scores: what a response's `text`, `words[].confidence` and
`words[].start_s/end_s` carry and normalised WER cannot see.

    python -m training.eval.written --commands data/dev_commands --word-times data/dev_word_times --peer-only

Sets: training/data/commands.py (written references with the digits and names they must contain) and
training/data/word_times.py (words with known start/end). Scorers are pure; a recogniser is any callable
audio_path, prompt -> (written text, [(word, start_s, end_s, confidence)]), so ours goes beside the peer
through `evaluate` once it returns words.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jiwer
import numpy as np
import soundfile as sf
from scipy.stats import rankdata

WordHyp = tuple[str, float, float, float]  # (word as written, start_s, end_s, confidence)
Recognise = Callable[[str, str], tuple[str, list[WordHyp]]]  # (audio path, prompt) -> (written text, words)
Normalize = Callable[[str], str]

MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
END_MARKS = (".", "?", "!")


def _fold(text: str) -> str:
    """Accents folded to ascii ("López" -> "Lopez"): the sets' names are ascii."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _digits_plain(text: str) -> str:
    """Thousands separators dropped ("$1,200" -> "$1200"), so either way of writing a number matches."""
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)


_B = r"(?<!\d)(?<!\d[.:,])"  # not inside a longer number before
_E = r"(?!\d)(?![.:,]\d)"  # nor after


def number_pattern(expected: str, time_dot: bool = False) -> re.Pattern[str]:
    """The ways of writing `expected` that keep it digits with its meaning:
    "7:30" (and with time_dot the British "7.30"); "6:15 p.m." / "9 a.m." as a.m., am, AM, A.M., spaced or not,
    a whole hour also as "9:00 a.m."; "$45" also "$45.00", "$ 45"; "30%" also "30 %"; "5th" also "May 5" or
    "5 May" (a bare day next to a month); "555-123-4567" with any of - . space or (555) between groups; other integers as is.
    Thousands separators are optional on both sides (match against `_digits_plain(hyp)`)."""
    exp = _digits_plain(expected.strip())
    colon = "[:.]" if time_dot else ":"
    if m := re.fullmatch(r"(\d{1,2})(?::(\d{2}))?\s*([ap])\.m\.", exp):
        hour, minute, half = m.groups()
        clock = f"{hour}{colon}{minute}" if minute else f"{hour}(?:{colon}00)?"
        return re.compile(rf"{_B}{clock}\s*[{half}{half.upper()}]\.?\s?[mM](?![a-zA-Z])")
    if m := re.fullmatch(r"(\d{1,2}):(\d{2})", exp):
        return re.compile(rf"{_B}{m.group(1)}{colon}{m.group(2)}{_E}")
    if m := re.fullmatch(r"\$(\d+)(?:\.(\d{2}))?", exp):
        dollars, cents = m.groups()
        tail = rf"\.{cents}" if cents and cents != "00" else r"(?:\.00)?"
        return re.compile(rf"\$\s?{dollars}{tail}{_E}")
    if m := re.fullmatch(r"(\d+(?:\.\d+)?)%", exp):
        return re.compile(rf"{_B}{re.escape(m.group(1))}\s?%")
    if m := re.fullmatch(r"(\d+)(st|nd|rd|th)", exp):
        day = m.group(1)
        return re.compile(rf"{_B}{day}(?:st|nd|rd|th)(?![a-zA-Z])|(?:{MONTHS})\.?\s+{day}{_E}(?!st|nd|rd|th)"
                          rf"|{_B}{day}\s+(?:{MONTHS}){_E}", re.IGNORECASE)
    if m := re.fullmatch(r"(\d{3})-(\d{3})-(\d{4})", exp):
        a, b, c = m.groups()
        return re.compile(rf"{_B}\(?{a}\)?[\s.\-]?{b}[\s.\-]?{c}{_E}")
    return re.compile(rf"(?<!\$){_B}{re.escape(exp)}{_E}")


def number_written(expected: str, hyp: str, time_dot: bool = False) -> bool:
    return number_pattern(expected, time_dot).search(_digits_plain(_fold(hyp))) is not None


def _name_pattern(name: str, flags: int = 0) -> re.Pattern[str]:
    words = [re.escape(w) for w in name.split()]
    return re.compile(r"(?<![A-Za-z])" + r"\s+".join(words) + r"(?![a-z])", flags)


def name_capitalised(name: str, hyp: str) -> bool:
    """The name as whole words with each word's capitals as expected (case-sensitive; possessive allowed)."""
    return _name_pattern(name).search(_fold(hyp)) is not None


def name_heard(name: str, hyp: str) -> bool:
    """The name spelled right in any case: the denominator of 'capitalised when heard'."""
    return _name_pattern(name, re.IGNORECASE).search(_fold(hyp)) is not None


def sentence_cased(hyp: str) -> bool:
    """First letter uppercase and an end mark last: a turn as a person writes it."""
    text = hyp.strip()
    first = next((c for c in text if c.isalpha()), "")
    return bool(first) and first.isupper() and text.endswith(END_MARKS)


def _share(n: int, total: int) -> float:
    return n / total if total else float("nan")


def written_form_scores(rows: Sequence[dict[str, Any]], hyps: Sequence[str]) -> dict[str, float | int]:
    """Over the commands set (rows carry numbers, names, question): counts, totals and shares of
    digits written as meant (strict, and with "7.30" taken for "7:30"), questions ending with "?", statements
    wrongly ending with "?", names capitalised (and capitalised among those spelled right), turns in sentence
    case with an end mark."""
    if len(rows) != len(hyps):
        raise ValueError(f"{len(rows)} rows but {len(hyps)} hypotheses")
    out: dict[str, float | int] = {}
    numbers = [(n, h) for r, h in zip(rows, hyps) for n in r.get("numbers", [])]
    names = [(n, h) for r, h in zip(rows, hyps) for n in r.get("names", [])]
    questions = [h for r, h in zip(rows, hyps) if r.get("question")]
    statements = [h for r, h in zip(rows, hyps) if not r.get("question")]
    counts = {
        "digits": (sum(number_written(n, h) for n, h in numbers), len(numbers)),
        "digits_time_dot": (sum(number_written(n, h, time_dot=True) for n, h in numbers), len(numbers)),
        "questions": (sum(h.rstrip().endswith("?") for h in questions), len(questions)),
        "statements_with_question_mark": (sum(h.rstrip().endswith("?") for h in statements), len(statements)),
        "names": (sum(name_capitalised(n, h) for n, h in names), len(names)),
        "names_capitalised_when_heard": (sum(name_capitalised(n, h) for n, h in names),
                                         sum(name_heard(n, h) for n, h in names)),
        "sentence_case_end_mark": (sum(sentence_cased(h) for h in hyps), len(hyps)),
    }
    for key, (n, total) in counts.items():
        out[key], out[f"{key}_n"], out[f"{key}_total"] = _share(n, total), n, total
    return out


def word_correctness(ref: str, hyp_words: Sequence[str], normalize: Normalize) -> list[bool]:
    """For each hypothesis word as written, whether it is right: the hypothesis is normalised word by word
    ("7:30" -> "seven thirty": two pieces), the pieces aligned to the normalised reference (jiwer), and a written
    word counts as right only when all its pieces align as 'equal'. A word that normalises to nothing (a lone
    dash) carries no words and counts as right."""
    pieces = [normalize(w).split() for w in hyp_words]
    owner = [i for i, p in enumerate(pieces) for _ in p]  # piece index -> written word index
    flat = [x for p in pieces for x in p]
    ref_norm = normalize(ref)
    equal = [False] * len(flat)
    if flat and ref_norm.strip():
        for chunk in jiwer.process_words(ref_norm, " ".join(flat)).alignments[0]:
            if chunk.type == "equal":
                equal[chunk.hyp_start_idx : chunk.hyp_end_idx] = [True] * (chunk.hyp_end_idx - chunk.hyp_start_idx)
    right = [True] * len(hyp_words)
    for piece, word in enumerate(owner):
        right[word] = right[word] and equal[piece]
    return right


def confidence_scores(conf: Sequence[float], correct: Sequence[bool], bins: int = 10) -> tuple[float, float]:
    """(AUROC, ECE) of word confidence. AUROC: chance that a right word outranks a wrong one (Mann-Whitney
    from ranks, ties averaged; nan when either class is empty). ECE: |accuracy - mean confidence| per
    equal-width bin on [0, 1], weighted by the bin's share of words."""
    c = np.clip(np.asarray(conf, dtype=np.float64), 0.0, 1.0)  # (N,)
    y = np.asarray(correct, dtype=bool)  # (N,)
    if c.shape != y.shape:
        raise ValueError(f"{c.shape[0]} confidences but {y.shape[0]} labels")
    if len(c) == 0:
        return float("nan"), float("nan")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos and n_neg:
        ranks = rankdata(c)  # (N,) average ranks for ties
        auroc = float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
    else:
        auroc = float("nan")
    which = np.minimum((c * bins).astype(int), bins - 1)  # (N,) bin index; 1.0 in the last bin
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(y[in_bin].mean() - c[in_bin].mean())
    return auroc, float(ece)


def timing_matches(truth: Sequence[dict[str, Any]], hyp: Sequence[tuple[str, float, float]],
                   normalize: Normalize) -> list[tuple[int, int]]:
    """(truth index, hypothesis index) of the words matched: both sides normalised, matched in order by
    difflib.SequenceMatcher; misheard, split and inserted words stay unmatched."""
    a = [normalize(t["word"]) for t in truth]
    b = [normalize(h[0]) for h in hyp]
    blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
    # two words that both normalise to nothing are no match
    return [(m.a + k, m.b + k) for m in blocks for k in range(m.size) if a[m.a + k]]


def timing_errors(truth: Sequence[dict[str, Any]], hyp: Sequence[tuple[str, float, float]],
                  normalize: Normalize) -> list[tuple[float, float]]:
    """(|start error|, |end error|) in seconds per hypothesis word matched to a truth word (`timing_matches`)."""
    return [(abs(hyp[j][1] - float(truth[i]["start_s"])), abs(hyp[j][2] - float(truth[i]["end_s"])))
            for i, j in timing_matches(truth, hyp, normalize)]


def timing_summary(errors: Sequence[tuple[float, float]]) -> dict[str, float]:
    """Median and 95th percentile of start and end errors, in ms."""
    e = np.asarray(errors, dtype=np.float64).reshape(-1, 2) * 1000  # (M, 2) ms
    if not len(e):
        return {k: float("nan") for k in ("start_median_ms", "start_p95_ms", "end_median_ms", "end_p95_ms")}
    return {"start_median_ms": float(np.median(e[:, 0])), "start_p95_ms": float(np.percentile(e[:, 0], 95)),
            "end_median_ms": float(np.median(e[:, 1])), "end_p95_ms": float(np.percentile(e[:, 1], 95))}


class WhisperWords:
    """Whisper base through faster-whisper, loaded as training/eval/peers.py's Whisper loads it (int8 on the CPU,
    beam 5, English, no VAD, no conditioning on previous text), plus word_timestamps=True: word times from
    cross-attention alignment, confidence = the word's probability.

    Unlike peers.Whisper it decodes with timestamp tokens (faster-whisper's default) unless timestamp_tokens=False:
    with word times on and timestamp tokens off, faster-whisper moves its seek to the last word's end and decodes
    the window's silent rest again, which appended "Thank you.", ". . ." or a repeated word to half of the turns."""

    name = "Whisper base"
    takes_prompt = True

    def __init__(self, threads: int = 2, compute_type: str = "int8", timestamp_tokens: bool = True) -> None:
        from faster_whisper import WhisperModel

        from shared.model.whisper_weights import ct2_model_dir

        self.model = WhisperModel(str(ct2_model_dir()), device="cpu", compute_type=compute_type, cpu_threads=threads)
        self.timestamp_tokens = timestamp_tokens

    def __call__(self, audio: str, prompt: str = "") -> tuple[str, list[WordHyp]]:
        x, rate = sf.read(audio, dtype="float32")
        if rate != 16000:
            raise ValueError(f"{audio}: {rate} Hz, expected 16000")
        segments, _ = self.model.transcribe(
            x, language="en", beam_size=5, initial_prompt=prompt or None, vad_filter=False,
            without_timestamps=not self.timestamp_tokens, condition_on_previous_text=False, word_timestamps=True)
        segments = list(segments)
        words = [(w.word.strip(), float(w.start), float(w.end), float(w.probability)) for s in segments for w in s.words or []]
        return " ".join(s.text.strip() for s in segments).strip(), words


@dataclass
class Report:
    """One recogniser over both sets."""

    name: str
    written: dict[str, float | int] = field(default_factory=dict)
    wer: float = float("nan")  # commands: normalised hypothesis vs normalised written reference
    wer_vs_spoken: float = float("nan")  # the same against the words the voice said
    auroc: float = float("nan")  # word confidence, both sets pooled
    ece: float = float("nan")
    auroc_commands: float = float("nan")
    auroc_word_times: float = float("nan")
    words_scored: int = 0
    words_right: int = 0
    timing: dict[str, float] = field(default_factory=dict)
    timing_after_first: dict[str, float] = field(default_factory=dict)  # each utterance's first word left out
    timing_matched: int = 0
    timing_truth_words: int = 0
    seconds: float = 0.0
    hyps: list[dict[str, Any]] = field(default_factory=list)


def evaluate(name: str, recognise: Recognise, commands: Sequence[dict[str, Any]], word_times: Sequence[dict[str, Any]],
             normalize: Normalize) -> Report:
    """Every score for one recogniser; call it once per system (the peer now, ours when it returns words)."""
    rep, start = Report(name), time.perf_counter()
    conf: dict[str, list[float]] = {"commands": [], "word_times": []}
    right: dict[str, list[bool]] = {"commands": [], "word_times": []}
    texts: list[str] = []
    errors: list[tuple[float, float]] = []
    later: list[tuple[float, float]] = []
    for set_name, rows in (("commands", commands), ("word_times", word_times)):
        for r in rows:
            text, words = recognise(r["audio"], "")
            ok = word_correctness(r["text"], [w[0] for w in words], normalize)
            conf[set_name] += [w[3] for w in words]
            right[set_name] += ok
            rep.hyps.append({"set": set_name, "id": r["id"], "text": text, "words": [list(w) for w in words]})
            if set_name == "commands":
                texts.append(text)
            else:
                timed = [w[:3] for w in words]
                for (i, _), err in zip(timing_matches(r["words"], timed, normalize), timing_errors(r["words"], timed, normalize)):
                    errors.append(err)
                    if i:
                        later.append(err)
                rep.timing_truth_words += len(r["words"])
    if commands:
        rep.written = written_form_scores(commands, texts)
        hyp_norm = [normalize(t) or "<empty>" for t in texts]
        rep.wer = float(jiwer.wer([normalize(r["text"]) for r in commands], hyp_norm))
        rep.wer_vs_spoken = float(jiwer.wer([normalize(r.get("spoken", r["text"])) for r in commands], hyp_norm))
    all_conf, all_right = conf["commands"] + conf["word_times"], right["commands"] + right["word_times"]
    rep.auroc, rep.ece = confidence_scores(all_conf, all_right)
    rep.auroc_commands = confidence_scores(conf["commands"], right["commands"])[0]
    rep.auroc_word_times = confidence_scores(conf["word_times"], right["word_times"])[0]
    rep.words_scored, rep.words_right = len(all_right), int(sum(all_right))
    rep.timing, rep.timing_matched = timing_summary(errors), len(errors)
    rep.timing_after_first = timing_summary(later)
    rep.seconds = time.perf_counter() - start
    return rep


def report_lines(reports: Sequence[Report]) -> list[str]:
    """Markdown table: one column per recogniser."""
    def pct(key: str) -> Callable[[Report], str]:
        return lambda r: f"{r.written[key]:.1%} ({r.written[key + '_n']}/{r.written[key + '_total']})"

    rows: list[tuple[str, Callable[[Report], str]]] = [
        ("digits written as meant", pct("digits")),
        ("digits, 7.30 taken for 7:30", pct("digits_time_dot")),
        ("questions ending with ?", pct("questions")),
        ("statements ending with ? (lower is better)", pct("statements_with_question_mark")),
        ("names capitalised", pct("names")),
        ("names capitalised when spelled right", pct("names_capitalised_when_heard")),
        ("sentence case + end mark", pct("sentence_case_end_mark")),
        ("normalised WER, commands (vs written ref)", lambda r: f"{r.wer:.1%}"),
        ("normalised WER, commands (vs spoken words)", lambda r: f"{r.wer_vs_spoken:.1%}"),
        ("word confidence AUROC (both sets)", lambda r: f"{r.auroc:.3f}"),
        ("word confidence AUROC commands / word times", lambda r: f"{r.auroc_commands:.3f} / {r.auroc_word_times:.3f}"),
        ("word confidence ECE (10 bins)", lambda r: f"{r.ece:.3f}"),
        ("words right / scored", lambda r: f"{r.words_right}/{r.words_scored}"),
        ("start error median / p95 (ms)", lambda r: f"{r.timing['start_median_ms']:.0f} / {r.timing['start_p95_ms']:.0f}"),
        ("end error median / p95 (ms)", lambda r: f"{r.timing['end_median_ms']:.0f} / {r.timing['end_p95_ms']:.0f}"),
        ("start / end error median, first words left out (ms)",
         lambda r: f"{r.timing_after_first['start_median_ms']:.0f} / {r.timing_after_first['end_median_ms']:.0f}"),
        ("timed words matched / truth", lambda r: f"{r.timing_matched}/{r.timing_truth_words}"),
        ("wall seconds", lambda r: f"{r.seconds:.0f}"),
    ]
    lines = ["| score | " + " | ".join(r.name for r in reports) + " |", "|---|" + "---|" * len(reports)]
    return lines + ["| " + label + " | " + " | ".join(f(r) for r in reports) + " |" for label, f in rows]


def served(ours: Any) -> Recognise:
    """Ours as served (training/eval/served.py's ServedRecogniser): the written text and its words with times and
    confidences; a prompt goes as the request's prompt context."""

    def recognise(audio: str, prompt: str = "") -> tuple[str, list[WordHyp]]:
        resp = ours.recognize(audio, prompt=prompt, no_context=not prompt, word_timestamps=True)
        if not resp.alternatives:
            return "", []
        best = resp.alternatives[0]
        return best.text, [(w.word, w.start_s, w.end_s, w.confidence) for w in best.words]

    return recognise


def written_section(ours: Any, commands: Sequence[dict[str, Any]], word_times: Sequence[dict[str, Any]],
                    peer_threads: int = 1) -> list[str]:
    """`make eval`'s markdown: ours and Whisper base with its word timestamps on the same audio, one run."""
    from shared.text import normalize_text

    peer = WhisperWords(threads=peer_threads)
    reports = [evaluate(name, rec, commands, word_times, normalize_text)
               for name, rec in (("ours", served(ours)), (peer.name, peer))]
    return [f"{len(commands)} assistant commands and questions (training/data/commands.py) and {len(word_times)} "
            "utterances of words with known boundaries (training/data/word_times.py), reserved voices:", "",
            *report_lines(reports)]


def read_rows(folder: Path, limit: int = 0) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def main() -> None:
    from shared.text import normalize_text

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--commands", type=Path, default=Path("data/dev_commands"))
    ap.add_argument("--word-times", type=Path, default=Path("data/dev_word_times"))
    ap.add_argument("--peer-only", action="store_true", help="Whisper base only")
    ap.add_argument("--model", help="our bundle (default: the served default)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for faster-whisper")
    ap.add_argument("--limit", type=int, default=0, help="first N rows of each set")
    ap.add_argument("--no-timestamp-tokens", action="store_true",
                    help="decode Whisper as peers.Whisper does (without timestamp tokens; see WhisperWords)")
    ap.add_argument("--json", type=Path, default=None, help="write the reports (hypotheses included) here")
    args = ap.parse_args()
    commands, word_times = read_rows(args.commands, args.limit), read_rows(args.word_times, args.limit)
    peer = WhisperWords(threads=args.threads, timestamp_tokens=not args.no_timestamp_tokens)
    systems: list[tuple[str, Recognise]] = [(peer.name, peer)]
    if not args.peer_only:
        from training.eval.served import ServedRecogniser

        systems.insert(0, ("ours", served(ServedRecogniser(args.model))))
    reports = [evaluate(name, rec, commands, word_times, normalize_text) for name, rec in systems]
    print(f"{len(commands)} command turns, {len(word_times)} word-timing utterances")
    print("\n".join(report_lines(reports)))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=1))


if __name__ == "__main__":
    main()
