"""Soak: the mesh as processes under an hour (a setting) of mixed traffic, with a mesh component killed now and
then; a row every interval of what a leak or a slow drift shows, then each process's exit after SIGTERM.

    python -m services.soak --duration-s 3600 --interval-s 300        # make soak SOAK_S=3600

Traffic, one kind after another from each client thread: Recognize with history and hotwords; a stream of
several turns at twice real time (VAD endpointing, interims); a request the limits refuse (too many hotwords); a
stream dropped mid-turn (the client cancels); a stream that sends its config and goes silent (the idle timeout
ends it). Every --kill-every-s one of decoder, encoder, context is killed (-9) and started again. Each row: RSS,
threads and open files summed over the mesh's processes, server CPU seconds per audio second recognised, and the
calls by status in that interval. At the end, RSS by process, each against its first row since it (last)
started, which tells a leak from a killed process reloading its model. Needs Redis and NATS running (as the tests do).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import grpc
import numpy as np
import psutil

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.localmesh import ROOT, SERVICE_NAMES, Proc, free_port, start_mesh, wait_serving
from shared.audio import read_audio_file

SAMPLES = [ROOT / "samples" / "dialogue" / "user-1.wav", ROOT / "samples" / "dialogue" / "user-2.wav"]
KILLED = ("decoder", "encoder", "context")  # the decoder first: its RSS since the restart gets the most rows


class Traffic:
    def __init__(self, port: int, idle_s: float) -> None:
        self.port, self.idle_s = port, idle_s
        self.wavs = [p.read_bytes() for p in SAMPLES]
        silence = np.zeros(16_000, np.float32)
        turns = [np.concatenate([read_audio_file(str(p)), silence]) for p in SAMPLES]
        self.stream_pcm = (np.concatenate([silence[:8000], *turns]) * 32767).astype("<i2").tobytes()
        self.codes: collections.Counter[str] = collections.Counter()
        self.audio_s = 0.0
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def count(self, code: str, audio_s: float = 0.0) -> None:
        with self.lock:
            self.codes[code] += 1
            self.audio_s += audio_s

    def take(self) -> tuple[dict[str, int], float]:
        with self.lock:
            out, audio = dict(self.codes), self.audio_s
            self.codes.clear()
            self.audio_s = 0.0
        return out, audio

    def client(self, index: int) -> None:
        channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        stub = recognizer_pb2_grpc.RecognizerStub(channel)
        kinds = [self.recognize, self.stream, self.refused, self.dropped, self.recognize, self.stream, self.silent]
        for step in itertools.count(index):
            if self.stop.is_set():
                break
            try:
                kinds[step % len(kinds)](stub)
            except grpc.RpcError as err:
                self.count(err.code().name)
        channel.close()

    def recognize(self, stub: recognizer_pb2_grpc.RecognizerStub) -> None:
        ctx = common_pb2.RequestContext(history=["your pharmacy on kilbride street closes at six"], hotwords=["Kilbride"])
        resp = stub.Recognize(recognizer_pb2.RecognizeRequest(
            session_id=f"soak-{uuid.uuid4().hex[:8]}", audio=common_pb2.Audio(content=self.wavs[0]), context=ctx),
            timeout=60)
        self.count("OK", resp.audio_seconds)

    def _stream(self, stub: recognizer_pb2_grpc.RecognizerStub, pcm: bytes, then_idle: bool = False) -> int:
        def requests():  # 0.1 s of audio every 0.05 s
            yield recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
                session_id=f"soak-{uuid.uuid4().hex[:8]}", interim_results=True))
            for i in range(0, len(pcm), 3200):
                if self.stop.is_set():
                    return
                yield recognizer_pb2.StreamingRecognizeRequest(audio_chunk=pcm[i:i + 3200])
                time.sleep(0.05)
            if then_idle:
                time.sleep(self.idle_s + 2)

        finals = sum(r.is_final for r in stub.StreamingRecognize(requests(), timeout=120))
        return finals

    def stream(self, stub: recognizer_pb2_grpc.RecognizerStub) -> None:
        self._stream(stub, self.stream_pcm)
        self.count("OK", len(self.stream_pcm) / 32_000)

    def refused(self, stub: recognizer_pb2_grpc.RecognizerStub) -> None:
        ctx = common_pb2.RequestContext(hotwords=[f"word{i}" for i in range(10_000)])
        stub.Recognize(recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=self.wavs[1]), context=ctx), timeout=10)
        self.count("OK (not refused!)")

    def dropped(self, stub: recognizer_pb2_grpc.RecognizerStub) -> None:
        call = stub.StreamingRecognize(iter([recognizer_pb2.StreamingRecognizeRequest(
            streaming_config=recognizer_pb2.StreamingConfig(interim_results=True)),
            recognizer_pb2.StreamingRecognizeRequest(audio_chunk=self.stream_pcm[:32_000])]), timeout=60)
        time.sleep(0.3)
        call.cancel()
        self.count("CANCELLED (by the client)")

    def silent(self, stub: recognizer_pb2_grpc.RecognizerStub) -> None:
        self._stream(stub, b"", then_idle=True)


class Usage(NamedTuple):
    rss_mb: dict[str, float]  # by process name, its children included
    threads: int
    files: int
    cpu_s: dict[int, float]  # by pid: a process killed and started again is a new pid, its CPU counts from zero


def _usage(procs: dict[str, Proc]) -> Usage:
    """RSS by process, threads and open files summed over the mesh's processes (and their children), and each
    one's CPU seconds by pid."""
    rss: dict[str, float] = {}
    threads = files = 0
    cpu: dict[int, float] = {}
    for name, proc in procs.items():
        if proc.p is None or proc.p.poll() is not None:
            continue
        try:
            parent = psutil.Process(proc.p.pid)
            for p in [parent, *parent.children(recursive=True)]:
                with p.oneshot():
                    rss[name] = rss.get(name, 0.0) + p.memory_info().rss / 2**20
                    threads += p.num_threads()
                    files += p.num_fds()
                    cpu[p.pid] = sum(p.cpu_times()[:4])
        except psutil.Error:
            continue
    return Usage(rss, threads, files, cpu)


class Drift:
    """Each process's RSS against its level at the first row after it (last) started: a killed process starts
    again from nothing, so only its rows since then tell a leak from the reload of its model."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, dict[str, float]]] = []
        self.since: dict[str, int] = {}  # name -> index of the first row after its latest start

    def add(self, minute: float, rss: dict[str, float], restarted: set[str]) -> None:
        for name in rss:
            if name in restarted or name not in self.since:
                self.since[name] = len(self.rows)
        self.rows.append((minute, rss))

    def table(self) -> list[str]:
        names = sorted({n for _, rss in self.rows for n in rss})
        lines = ["| minute | " + " | ".join(f"{n} MB" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
        for minute, rss in self.rows:
            lines.append(f"| {minute:.0f} | " + " | ".join(f"{rss.get(n, float('nan')):.0f}" for n in names) + " |")
        base = last = 0.0
        for n in names:
            first = self.rows[self.since[n]]
            b, e = first[1].get(n, 0.0), self.rows[-1][1].get(n, 0.0)
            base, last = base + b, last + e
            pct = 100 * (e - b) / b if b else float("nan")
            lines.append(f"{n}: {b:.0f} MB at minute {first[0]:.0f} (its first row since it started) -> {e:.0f} MB "
                         f"({pct:+.1f}%)")
        lines.append(f"mesh, each process against its own first row: {base:.0f} -> {last:.0f} MB "
                     f"({100 * (last - base) / base:+.1f}%)" if base else "mesh: no rows")
        return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=3600)
    ap.add_argument("--interval-s", type=float, default=300)
    ap.add_argument("--kill-every-s", type=float, default=1200)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--model", help="bundle directory (default: bundles/default)")
    args = ap.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="seedasr-soak-"))
    ports = {name: free_port() for name in SERVICE_NAMES}
    idle_s = 5.0
    env = {"SEEDASR_BRIDGE_DURABLE": f"soak-{uuid.uuid4().hex[:8]}", "SEEDASR_BRIDGE_DELIVER": "new",
           "SEEDASR_STREAM_IDLE_S": str(idle_s), **({"SEEDASR_MODEL": args.model} if args.model else {})}
    procs = start_mesh(env, logs, ports)
    traffic = Traffic(ports["gateway"], idle_s)
    clients = [threading.Thread(target=traffic.client, args=(k,), daemon=True) for k in range(args.clients)]
    print(f"soak: {args.duration_s / 60:.0f} min, a row every {args.interval_s / 60:.1f} min; logs in {logs}", flush=True)
    print("| minute | RSS MB | threads | open files | CPU-s per audio-s | kills | calls by status |", flush=True)
    print("|---|---|---|---|---|---|---|", flush=True)
    started = time.monotonic()
    last_kill, kills, victims = started, 0, itertools.cycle(KILLED)
    cpu_before = _usage(procs).cpu_s
    drift, restarted = Drift(), set()
    for client in clients:
        client.start()
    try:
        next_row = started + args.interval_s
        while time.monotonic() - started < args.duration_s:
            time.sleep(1)
            now = time.monotonic()
            if now - last_kill >= args.kill_every_s:
                name = next(victims)
                procs[name].kill()
                procs[name].start()
                wait_serving(ports[name], procs[name])
                restarted.add(name)
                last_kill, kills = now, kills + 1
            if now >= next_row:
                usage = _usage(procs)
                codes, audio_s = traffic.take()
                spent = sum(seconds - cpu_before.get(pid, 0.0) for pid, seconds in usage.cpu_s.items())
                per_audio = spent / audio_s if audio_s else float("nan")
                cpu_before = usage.cpu_s
                minute = (now - started) / 60
                drift.add(minute, usage.rss_mb, restarted)
                restarted = set()
                print(f"| {minute:.0f} | {sum(usage.rss_mb.values()):.0f} | {usage.threads} | {usage.files} | "
                      f"{per_audio:.3f} | {kills} | {codes} |", flush=True)
                next_row += args.interval_s
    finally:
        traffic.stop.set()
        for client in clients:
            client.join(60)
        exits = {}
        for name, proc in procs.items():
            signalled = time.monotonic()
            try:
                code = proc.terminate(timeout=30)
                exits[name] = f"{time.monotonic() - signalled:.1f} s (exit {code})"
            except Exception:
                exits[name] = "did not exit in 30 s"
                proc.kill()
        print("\nRSS by process:", *drift.table(), sep="\n")
        print(f"SIGTERM to exit: {exits}")


if __name__ == "__main__":
    main()
