"""Evaluation: WER per dev set side by side with the peers, PocketSphinx and Whisper base (same audio,
one run, one text normalisation), CPU time and RTF of each; context keyword recall / distractor
insertions with an alpha sweep (Whisper given the same context words as its prompt); the other languages' sets
and language identification beside faster-whisper (training/eval/languages.py); long-form WER.

    python -m training.eval.run --sets data/dev_* [--model DIR] [--limit N] [--peers pocketsphinx,whisper]
                                [--card bundles/default/EVAL.md]

Everything is recognised through the embedded Recognizer servicer: the code path users get.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import jiwer
import soundfile as sf

from shared.scoring import wer
from shared.text import normalize_text
from training.eval.context_scoring import context_prompt, keyword_hit, keyword_misses, score_context
from training.eval.languages import run as language_section
from training.eval.languages import set_language
from training.eval.peers import PEERS, Peer, PocketSphinx, Whisper
from training.eval.served import ServedRecogniser
from training.eval.written import written_section

__all__ = ["PocketSphinx", "Ours", "eval_set", "eval_context", "eval_long", "context_prompt", "keyword_hit",
           "keyword_misses", "score_context"]


@dataclass
class SetResult:
    name: str
    hours: float
    refs: list[str] = field(default_factory=list)
    ours: list[str] = field(default_factory=list)
    peers: dict[str, list[str]] = field(default_factory=dict)
    our_cpu: float = 0.0
    our_wall: float = 0.0
    peer_cpu: dict[str, float] = field(default_factory=dict)

    def wer(self, hyps: list[str]) -> float:
        refs = [normalize_text(r) for r in self.refs]
        return float(jiwer.wer(refs, [normalize_text(h) or "<empty>" for h in hyps]))


# ours, as served: the embedded server in a child process over gRPC (training/eval/served.py)
Ours = ServedRecogniser


def read_rows(manifest: Path, limit: int) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return rows[:limit] if limit else rows


def eval_set(name: str, rows: list[dict[str, Any]], ours: Ours, peers: Sequence[Peer] = ()) -> SetResult:
    """Ours and every peer on each utterance in turn (no context), so that all see the same machine load."""
    res = SetResult(name, sum(r["duration"] for r in rows) / 3600)
    for r in rows:
        res.refs.append(r["text"])
        w = time.perf_counter()
        res.ours.append(ours(r["audio"], no_context=True))
        res.our_cpu += ours.last_cpu_s
        res.our_wall += time.perf_counter() - w
        for peer in peers:
            c = time.process_time()
            res.peers.setdefault(peer.name, []).append(peer(r["audio"]))
            res.peer_cpu[peer.name] = res.peer_cpu.get(peer.name, 0.0) + time.process_time() - c
    return res


def set_table(results: Sequence[SetResult], peer_names: Sequence[str]) -> list[str]:
    """Markdown rows: WER of ours and each peer, our wall RTF, CPU-s per audio-s of ours and each peer."""
    head = ["set", "utts", "hours", "WER ours", *(f"WER {n}" for n in peer_names), "RTF ours (wall)",
            "CPU-s/audio-s ours", *(f"CPU-s/audio-s {n}" for n in peer_names)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        secs = res.hours * 3600
        cells = [res.name, str(len(res.refs)), f"{res.hours:.2f}", f"{res.wer(res.ours):.1%}",
                 *(f"{res.wer(res.peers[n]):.1%}" for n in peer_names), f"{res.our_wall / secs:.3f}",
                 f"{res.our_cpu / secs:.3f}", *(f"{res.peer_cpu[n] / secs:.3f}" for n in peer_names)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def eval_context(rows: list[dict[str, Any]], ours_for: Callable[[int], Ours], alphas: list[float],
                 prune_ks: list[int], peers: Sequence[Peer] = (), biases: Sequence[float] = (0.0,),
                 margins: Sequence[float] = (0.0,)) -> list[dict]:
    """Keyword recall on keyword rows, insertion rate of context entities on distractor rows, for
    every alpha, phrase-bias bonus and phrase-correction margin at every context prune_k (one
    recogniser per prune_k: it is a server setting; the others are request parameters). Each peer
    runs once without and once with the row's context words (prompt, hotwords, history) as its prompt;
    a peer that takes no prompt (PocketSphinx) ignores it."""
    table = []
    runs: list[tuple[str, Ours, Optional[float], bool, float, float]] = [
        ("no context", ours_for(prune_ks[0]), None, True, 0.0, 0.0)]
    for k in prune_ks:
        for b in biases:
            for m in margins:
                suffix = (f", prune_k={k}" if len(prune_ks) > 1 else "") + (f", bias={b:g}" if len(biases) > 1 else "")
                suffix += f", correction={m:g}" if len(margins) > 1 else ""
                runs += [(f"alpha={a:g}{suffix}", ours_for(k), a, False, b, m) for a in alphas]
    for label, ours, alpha, no_ctx, bias, margin in runs:
        hyps = [ours(r["audio"], r.get("history", []), r.get("hotwords", []), r.get("prompt", ""), alpha, no_ctx, bias,
                     margin) for r in rows]
        table.append({"setting": label, "alpha": alpha, "prune_k": ours.decoding.context_prune_k, "bias": bias,
                      "correction": margin, "hyps": hyps, **score_context(rows, hyps)})
        print(f"context {label}: recall {table[-1]['keyword_recall']:.1%}", flush=True)
    for peer in peers:
        for with_context in (False, True) if peer.takes_prompt else (False,):
            hyps = [peer(r["audio"], prompt=context_prompt(r) if with_context else "") for r in rows]
            label = f"{peer.name}" + (" (context as prompt)" if with_context else "")
            table.append({"setting": label, **score_context(rows, hyps)})
    return table


def served_run(table: list[dict], served: Any) -> dict:
    """The context run at the served alpha, bias, correction and prune_k; else the first context run."""
    runs = [t for t in table if t.get("alpha") is not None]
    same = [t for t in runs if (t["alpha"], t["bias"], t["correction"], t["prune_k"]) ==
            (served.context_weight, served.bias_bonus, served.correction_margin, served.context_prune_k)]
    return (same or runs)[0]


def eval_long(row: dict[str, Any], ours: Ours) -> dict[str, float]:
    """WER of the whole recording as served, of the service's own windows decoded alone (no previous
    window's text as context) and of the reference sentences one by one: whole - alone is what the
    previous-window context costs, alone - one by one what the window edges cost."""
    from shared.segments import segment_audio

    whole = ours(row["audio"], no_context=True)
    x, rate = sf.read(row["audio"], dtype="float32")

    def decode_alone(spans: list[tuple[int, int]]) -> str:
        texts = []
        with tempfile.TemporaryDirectory() as tmp:  # its own folder: evals run side by side
            for start, end in spans:
                sf.write(Path(tmp) / "span.wav", x[start:end], rate, subtype="PCM_16")
                texts.append(ours(str(Path(tmp) / "span.wav"), no_context=True))
        return " ".join(texts)

    windows = segment_audio(x, ours.decoding.segment_s, rate=rate)
    sentences = [(int(s["start"] * rate), int(s["end"] * rate)) for s in row["segments"]]
    return {"minutes": row["duration"] / 60, "wer_whole": wer(row["text"], whole),
            "windows": len(windows), "sentences": len(sentences),
            "wer_windows_alone": wer(row["text"], decode_alone(windows)),
            "wer_sentence_by_sentence": wer(row["text"], decode_alone(sentences))}


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=[str(p) for p in sorted(Path("data").glob("dev_*"))])
    ap.add_argument("--model")
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)}; '' for none")
    ap.add_argument("--no-peer", action="store_true", help="same as --peers ''")
    ap.add_argument("--context", default="data/context_eval")
    ap.add_argument("--long", default="data/long_slt")
    ap.add_argument("--commands", default="data/dev_commands", help="written-form set (training/data/commands.py)")
    ap.add_argument("--context-zh", type=Path, nargs="*", default=[Path("data/context_zh"), Path("data/context_zh_test")],
                    help="Mandarin context sets (the second held out from tuning)")
    ap.add_argument("--lid", type=Path, default=Path("data/dev_lid"), help="language-ID set (training/data/languages.py)")
    ap.add_argument("--word-times", default="data/dev_word_times", help="word-boundary set (training/data/word_times.py)")
    ap.add_argument("--alphas", default="0.3,0.5,0.7,0.9")
    # the sweeps' defaults are what the model serves with (its bundle's decoding defaults, under any SEEDASR_* override)
    ap.add_argument("--prune-ks", help="context prune_k values to sweep alpha at (first = default; default: served)")
    ap.add_argument("--biases", help="phrase-bias bonuses to sweep alpha at (shared/model/biasing.py; default: 0 and served)")
    ap.add_argument("--corrections",
                    help="phrase-correction margins to sweep alpha at (shared/model/phrase_correction.py; default: 0 and served)")
    ap.add_argument("--card", type=Path, help="write the tables as markdown here")
    ap.add_argument("--misses", type=Path,
                    help="write each keyword the served context setting missed here (JSON lines, with and without context)")
    args = ap.parse_args(argv)
    ours = Ours(args.model)
    served = ours.decoding
    args.prune_ks = args.prune_ks or str(served.context_prune_k)
    args.biases = args.biases or f"0,{served.bias_bonus:g}"
    args.corrections = args.corrections or f"0,{served.correction_margin:g}"
    names = [] if args.no_peer else [n.strip() for n in args.peers.split(",") if n.strip()]
    if unknown := [n for n in names if n not in PEERS]:
        ap.error(f"unknown peer(s) {unknown}; choose from {sorted(PEERS)}")
    peers = [PEERS[n]() for n in names]
    results, other_languages = [], []
    for s in args.sets:
        manifest = Path(s) / "manifest.jsonl"
        if not manifest.exists() or Path(s).resolve() == args.lid.resolve():
            continue
        if set_language(manifest) not in (None, "en"):  # their own table, beside faster-whisper on the same weights
            other_languages.append(Path(s))
            continue
        results.append(eval_set(Path(s).name, read_rows(manifest, args.limit), ours, peers))
        print(set_table(results[-1:], [p.name for p in peers])[-1], flush=True)
    out = ["## WER per dev set (same audio, one run)", "", *set_table(results, [p.name for p in peers]), ""]
    ctx_manifest = Path(args.context) / "manifest.jsonl"
    if ctx_manifest.exists():
        alphas = [float(a) for a in args.alphas.split(",")]
        prune_ks = [int(k) for k in args.prune_ks.split(",")]
        recognisers = {ours.decoding.context_prune_k: ours}

        def ours_for(k: int) -> Ours:
            if k not in recognisers:
                recognisers[k] = Ours(args.model, k)
            return recognisers[k]

        biases = [float(b) for b in args.biases.split(",")]
        margins = [float(m) for m in args.corrections.split(",")]
        ctx_rows = read_rows(ctx_manifest, args.limit)
        table = eval_context(ctx_rows, ours_for, alphas, prune_ks, peers, biases, margins)
        out += ["## Context: keyword recall and distractor insertions (reserved voice flite slt)", "",
                "| setting | keyword recall | distractor insertions | WER |", "|---|---|---|---|"]
        out += [f"| {t['setting']} | {t['keyword_recall']:.1%} | {t['distractor_insertions']:.1%} | {t['wer']:.1%} |"
                for t in table]
        out.append("")
        if args.misses:
            missed = keyword_misses(ctx_rows, served_run(table, served)["hyps"], table[0]["hyps"])
            args.misses.write_text("".join(json.dumps(m) + "\n" for m in missed))
        _plot_alpha(table, (args.card.parent if args.card else Path("runs")) / "alpha_sweep.png")
    if (Path(args.commands) / "manifest.jsonl").exists() and (Path(args.word_times) / "manifest.jsonl").exists():
        commands, word_times = read_rows(Path(args.commands) / "manifest.jsonl", args.limit), \
            read_rows(Path(args.word_times) / "manifest.jsonl", args.limit)
        section = ["## Written form, word confidence and word times", "", *written_section(ours, commands, word_times), ""]
        print("\n".join(section), flush=True)
        out += section
    if other_languages:
        whisper = next((p for p in peers if isinstance(p, Whisper)), None)
        out += [*language_section(other_languages, args.lid, ours, whisper, args.limit, args.context_zh), ""]
    long_manifest = Path(args.long) / "manifest.jsonl"
    if long_manifest.exists():
        lf = eval_long(read_rows(long_manifest, 0)[0], ours)
        out += ["## Long-form", "", f"{lf['minutes']:.1f} min recording, {lf['sentences']} sentences in "
                f"{lf['windows']} windows: WER whole {lf['wer_whole']:.1%}, its windows each alone "
                f"{lf['wer_windows_alone']:.1%}, the sentences one by one {lf['wer_sentence_by_sentence']:.1%}", ""]
    text = "\n".join(out)
    print(text)
    if args.card:
        args.card.write_text("# Evaluation\n\n`python -m training.eval.run` output.\n\n" + text)


def _plot_alpha(table: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    for k, b, m in sorted({(t["prune_k"], t["bias"], t["correction"]) for t in table if t.get("alpha") is not None}):
        pts = sorted((t["alpha"], t["keyword_recall"], t["distractor_insertions"]) for t in table
                     if t.get("alpha") is not None and (t["prune_k"], t["bias"], t["correction"]) == (k, b, m))
        a, r, i = zip(*pts)
        ax.plot(a, r, "o-", label=f"recall (prune_k {k}, bias {b:g}, correction {m:g})")
        ax.plot(a, i, "s--", label=f"insertions (prune_k {k}, bias {b:g}, correction {m:g})")
    ax.set_xlabel("alpha (context weight)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)


if __name__ == "__main__":
    main()
