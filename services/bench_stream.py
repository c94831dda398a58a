"""Streaming benchmark: turns sent at real time in 100 ms chunks to the embedded server, as a microphone would.

Prints, per configuration: the final's latency after the client's end_of_turn (p50, p95), interims per turn, the
first interim's delay after the speech starts (the first chunk louder than the turn's noise floor), and the WER of
the streamed finals beside Recognize's on the same audio (same server, same run).

    python -m services.bench_stream [--model DIR] [--audio FILE ...] [--turns N] [--vad]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import grpc
import numpy as np
import soundfile as sf

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.localmesh import ROOT
from shared.localnet import free_port
from shared.scoring import wer
from shared.segments import frame_power

CHUNK_S = 0.1


def speech_span_s(x: np.ndarray, rate: int = 16_000) -> tuple[float, float]:
    """The first and last 10 ms frames within 30 dB of the loudest: when a listener hears the speech begin and end."""
    power = frame_power(x, rate // 100)
    loud = np.flatnonzero(power >= power.max(initial=0.0) * 1e-3)
    return (float(loud[0]) / 100, float(loud[-1] + 1) / 100) if len(loud) else (0.0, len(x) / rate)


def stream_turn(stub: recognizer_pb2_grpc.RecognizerStub, x: np.ndarray, vad: bool) -> dict[str, float | str | int]:
    """One turn at real time; returns the final text, its latency after end_of_turn (or after the audio with VAD),
    the interims and the first interim's delay after the speech starts."""
    pcm = (np.clip(x, -1, 1) * 32767).astype("<i2").tobytes()
    step = int(CHUNK_S * 16_000) * 2
    done = threading.Event()
    clock: dict[str, float] = {}

    def requests() -> Iterator[recognizer_pb2.StreamingRecognizeRequest]:
        cfg = recognizer_pb2.StreamingConfig(interim_results=True, silence_ms=0 if vad else -1)
        yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=cfg)
        clock["start"] = time.perf_counter()
        for k, i in enumerate(range(0, len(pcm), step)):
            # at real time: chunk k leaves when its audio has been "spoken"
            time.sleep(max(0.0, clock["start"] + (k + 1) * CHUNK_S - time.perf_counter()))
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i : i + step])
        clock["end"] = time.perf_counter()
        if not vad:
            yield recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)
            return
        silence = bytes(step)  # a microphone goes on sending: the server's VAD ends the turn on silence
        for k in range(1, 50):
            if done.wait(max(0.0, clock["end"] + k * CHUNK_S - time.perf_counter())):
                return
            yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=silence)

    interims: list[float] = []
    final_text, final_at, stages = "", 0.0, (0.0, 0.0)
    for resp in stub.StreamingRecognize(requests(), timeout=120):
        now = time.perf_counter()
        if resp.is_final:
            final_text, final_at = (resp.result.alternatives[0].text if resp.result.alternatives else ""), now
            stages = (resp.result.timings.encode_ms, resp.result.timings.decode_ms)
            done.set()
            break
        interims.append(now - clock["start"])
    onset, offset = speech_span_s(x)
    # after end_of_turn: from the moment it was sent; with VAD: from the end of the speech as the client sent it
    ended = clock["start"] + offset if vad else clock["end"]
    return {"text": final_text, "final_ms": (final_at - ended) * 1000, "interims": len(interims),
            "first_interim_s": (interims[0] - onset) if interims else float("nan"),
            "encode_ms": stages[0], "decode_ms": stages[1]}


def recognize(stub: recognizer_pb2_grpc.RecognizerStub, path: Path) -> str:
    resp = stub.Recognize(recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=path.read_bytes())), timeout=120)
    return resp.alternatives[0].text if resp.alternatives else ""


def default_audio(turns: int) -> list[tuple[Path, str]]:
    """2-5 s turns of the assistant-commands dev set (reserved voices) when it is there, else the samples."""
    manifest = ROOT / "data" / "dev_commands" / "manifest.jsonl"
    if manifest.exists():
        rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
        rows = [r for r in rows if 2.0 <= r["duration"] <= 5.0][:turns]
        return [(Path(r["audio"]), r["text"]) for r in rows]
    dialogue = json.loads((ROOT / "samples" / "dialogue.json").read_text())["steps"]
    return [(ROOT / "samples" / s["audio"], s["reference"]) for s in dialogue if "audio" in s]


def main(argv: Optional[list[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--audio", nargs="*", type=Path, help="wav files (16 kHz mono); default: dev_commands 2-5 s turns")
    ap.add_argument("--turns", type=int, default=30)
    ap.add_argument("--vad", action="store_true", help="also end turns by the server's VAD (no end_of_turn)")
    args = ap.parse_args(argv)
    from services.app import serve_embedded
    from shared.settings import load_settings

    audio = [(a, "") for a in args.audio] if args.audio else default_audio(args.turns)
    server = serve_embedded(load_settings(**({"model": args.model} if args.model else {})), port=free_port(),
                            http_port=-1)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = recognizer_pb2_grpc.RecognizerStub(channel)
            recognize(stub, audio[0][0])  # warm-up
            modes = [False, True] if args.vad else [False]
            rows: dict[bool, list[dict]] = {m: [] for m in modes}
            offline: list[str] = []
            for path, _ in audio:
                x, rate = sf.read(path, dtype="float32")
                if rate != 16_000:
                    raise SystemExit(f"{path}: {rate} Hz; the benchmark streams 16 kHz audio")
                offline.append(recognize(stub, path))
                for mode in modes:
                    rows[mode].append(stream_turn(stub, x, mode))
    finally:
        server.stop(0.5)
    refs = [ref for _, ref in audio]
    print(f"Streaming at real time in {CHUNK_S * 1000:.0f} ms chunks, {len(audio)} turns "
          f"({min(sf.info(p).duration for p, _ in audio):.1f}-{max(sf.info(p).duration for p, _ in audio):.1f} s)")
    print("final: ms after end_of_turn was sent, or with VAD after the end of speech (VAD waits silence_ms first)")
    print(f"{'turn end':>14} {'final p50 ms':>13} {'p95 ms':>8} {'interims/turn':>14} {'min':>4} "
          f"{'first interim p50 s':>20} {'max s':>6} {'WER stream':>11} {'WER Recognize':>14} {'same text':>10}")
    for mode, got in rows.items():
        finals = [g["final_ms"] for g in got]
        firsts = [g["first_interim_s"] for g in got if g["interims"]]
        counts = [g["interims"] for g in got]
        texts = [str(g["text"]) for g in got]
        same = sum(a == b for a, b in zip(texts, offline))
        stream_wer = np.mean([wer(r, t) for r, t in zip(refs, texts)]) if all(refs) else float("nan")
        rec_wer = np.mean([wer(r, t) for r, t in zip(refs, offline)]) if all(refs) else float("nan")
        print(f"{'VAD' if mode else 'end_of_turn':>14} {np.percentile(finals, 50):13.0f} {np.percentile(finals, 95):8.0f} "
              f"{np.mean(counts):14.1f} {min(counts):4d} {np.median(firsts) if firsts else float('nan'):20.2f} "
              f"{max(firsts) if firsts else float('nan'):6.2f} {stream_wer:11.1%} {rec_wer:14.1%} {same:>5}/{len(got)}")
        for t, o in zip(texts, offline):
            if t != o:
                print(f"{'':>14} differs: stream {t!r} / Recognize {o!r}")
        print(f"{'':>14} the final's encode {np.median([g['encode_ms'] for g in got]):.0f} ms, "
              f"decode {np.median([g['decode_ms'] for g in got]):.0f} ms (medians)")


if __name__ == "__main__":
    main()
