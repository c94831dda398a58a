"""Latency and CPU per audio second of ours (the embedded Recognizer, no context) beside the peers,
Whisper base and PocketSphinx, on the same 2-5 s turns, interleaved call by call in one run.

    python -m training.eval.bench_peers [--model DIR] [--runs 3] [--audio FILE ...]

Default turns: the bundled sample dialogue and the 2-5 s recordings of data/dev_real_human when built.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

from training.eval.peers import PEERS
from training.eval.run import Ours

ROOT = Path(__file__).resolve().parents[2]


def default_turns() -> list[Path]:
    turns = sorted((ROOT / "samples" / "dialogue").glob("*.wav"))
    manifest = ROOT / "data" / "dev_real_human" / "manifest.jsonl"
    if manifest.exists():
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        turns += [Path(r["audio"]) for r in rows if 2.0 <= r["duration"] <= 5.0]
    return turns


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--runs", type=int, default=3, help="passes over the turns (the first call of each is warm-up)")
    ap.add_argument("--audio", nargs="*", type=Path)
    args = ap.parse_args()
    turns = args.audio or default_turns()
    if not turns:
        raise SystemExit("no audio to measure: pass --audio FILE ...")
    seconds = {t: sf.info(str(t)).duration for t in turns}
    systems: dict[str, Callable[[str], str]] = {"ours": Ours(args.model), **{cls.name: cls() for cls in PEERS.values()}}
    for call in systems.values():  # warm-up: first-call allocations are not what a serving process pays
        call(str(turns[0]))
    latency: dict[str, list[float]] = {n: [] for n in systems}
    cpu_per_s: dict[str, list[float]] = {n: [] for n in systems}
    for _ in range(args.runs):
        for turn in turns:
            for name, call in systems.items():  # interleaved: background load hits all alike
                c, w = time.process_time(), time.perf_counter()
                call(str(turn))
                latency[name].append((time.perf_counter() - w) * 1000)
                # ours runs in its server process (training/eval/served.py): count that process's CPU
                cpu = getattr(call, "last_cpu_s", None)
                cpu_per_s[name].append((time.process_time() - c if cpu is None else cpu) / seconds[turn])
    print(f"{len(turns)} turns of {min(seconds.values()):.1f}-{max(seconds.values()):.1f} s, {args.runs} passes, "
          "ours through its embedded server over gRPC (its process's CPU), peers in-process, no context")
    print(f"{'':14} {'p50 ms':>8} {'p95 ms':>8} {'CPU-s/audio-s p50':>18}")
    for name in systems:
        print(f"{name:14} {np.percentile(latency[name], 50):8.1f} {np.percentile(latency[name], 95):8.1f} "
              f"{np.median(cpu_per_s[name]):18.3f}")
    for name in systems:
        if name != "ours":
            ratio = np.median(cpu_per_s["ours"]) / np.median(cpu_per_s[name])
            print(f"ours / {name} CPU-s per audio-s: {ratio:.2f}")


if __name__ == "__main__":
    main()
