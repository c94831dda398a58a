"""Latency benchmark: Recognize through the mesh (separate processes over NATS) vs the embedded
server, on the same audio, measured side by side in one run. Prints medians, p95, ratios, per-stage
timings and the real-time factor.

    python -m services.bench [--model DIR] [--runs 20] [--audio FILE ...] [--profiles]
Needs Redis and NATS running (as the tests do).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import numpy as np

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.localmesh import ROOT, SERVICE_NAMES, start_mesh
from shared.localnet import free_port

DEFAULT_AUDIO = [ROOT / "samples" / "dialogue" / "user-1.wav", ROOT / "samples" / "dialogue" / "user-2.wav"]


def measure(port: int, audios: list[bytes], runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("latency_ms", "encode_ms", "context_ms", "decode_ms", "rtf")}
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = recognizer_pb2_grpc.RecognizerStub(ch)
        for i in range(runs + 2):
            audio = audios[i % len(audios)]
            req = recognizer_pb2.RecognizeRequest(session_id="bench", audio=common_pb2.Audio(content=audio),
                                                  context=common_pb2.RequestContext(hotwords=["kilbride street"]))
            t = time.perf_counter()
            resp = stub.Recognize(req, timeout=120)
            ms = (time.perf_counter() - t) * 1000
            if i < 2:
                continue  # warm-up
            out["latency_ms"].append(ms)
            out["encode_ms"].append(resp.timings.encode_ms)
            out["context_ms"].append(resp.timings.context_ms)
            out["decode_ms"].append(resp.timings.decode_ms)
            out["rtf"].append(ms / 1000 / resp.audio_seconds)
    return out


def p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


_LOAD = """
import resource, sys
from shared.recognition import AsrCore
from shared.settings import load_settings
if sys.argv[2] != "none":  # as a server loads it: the bundle's decoding defaults under the SEEDASR_* settings
    AsrCore.from_settings(load_settings(**({"model": sys.argv[1]} if sys.argv[1] else {})), sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def halves_memory(model: str | None) -> dict[str, float]:
    """Peak resident MB of a fresh process that loads the bundle whole, each half, or nothing (imports only)."""
    out = {}
    for half in ("none", "all", "encoder", "decoder"):
        run = subprocess.run([sys.executable, "-c", _LOAD, model or "", half], capture_output=True, text=True, check=True)
        out[half] = int(run.stdout.split()[-1]) / 1024
    return out


# The opt-in speed settings (bundles/default/TUNING.md), each an embedded server beside the default one with --profiles.
PROFILES: dict[str, dict[str, object]] = {
    "bf16 blocks": {"lm_blocks": "bf16"},
    "int8 encoder": {"encoder_int8": True},
    "both": {"lm_blocks": "bf16", "encoder_int8": True},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--audio", nargs="*", type=Path, default=DEFAULT_AUDIO)
    ap.add_argument("--profiles", action="store_true",
                    help=f"also embedded servers with the opt-in speed settings ({', '.join(PROFILES)}), side by side")
    args = ap.parse_args()
    mem = halves_memory(args.model)
    print("peak resident MB of a process that loads the model (imports alone: "
          f"{mem['none']:.0f}): whole {mem['all']:.0f}, encoder half {mem['encoder']:.0f}, decoder half {mem['decoder']:.0f}")
    audios = [a.read_bytes() for a in args.audio]
    env = {"SEEDASR_MODEL": args.model} if args.model else {}
    from services.app import serve_embedded
    from shared.settings import load_settings

    ports = {n: free_port() for n in SERVICE_NAMES}
    procs = start_mesh({**env, "SEEDASR_BRIDGE_DELIVER": "new"}, Path(tempfile.mkdtemp(prefix="bench-")), ports)
    model = {"model": args.model} if args.model else {}
    servers = {"embedded": serve_embedded(load_settings(**model), port=free_port(), http_port=-1)}
    for name, overrides in PROFILES.items() if args.profiles else ():
        servers[f"embedded, {name}"] = serve_embedded(load_settings(**model, **overrides), port=free_port(), http_port=-1)
    targets = {"mesh": ports["gateway"], **{name: server.port for name, server in servers.items()}}
    runs: dict[str, dict[str, list[float]]] = {name: {} for name in targets}
    try:
        for _ in range(2):  # interleaved, so background load hits all alike
            for name, port in targets.items():
                for k, v in measure(port, audios, args.runs // 2).items():
                    runs[name].setdefault(k, []).extend(v)
    finally:
        for server in servers.values():
            server.stop(0.5)
        for proc in procs.values():
            proc.kill()
    print(f"Recognize latency, {len(runs['mesh']['latency_ms'])} calls each, audio {', '.join(a.name for a in args.audio)}")
    width = max(len(name) for name in runs)
    print(f"{'':{width}} {'p50 ms':>8} {'p95 ms':>8} {'RTF p50':>8} {'encode':>8} {'context':>8} {'decode':>8}")
    for name, r in runs.items():
        print(f"{name:{width}} {p(r['latency_ms'], 50):8.1f} {p(r['latency_ms'], 95):8.1f} {p(r['rtf'], 50):8.3f} "
              f"{statistics.median(r['encode_ms']):8.1f} {statistics.median(r['context_ms']):8.1f} "
              f"{statistics.median(r['decode_ms']):8.1f}")
    print(f"mesh / embedded p50 ratio: {p(runs['mesh']['latency_ms'], 50) / p(runs['embedded']['latency_ms'], 50):.2f}")


if __name__ == "__main__":
    main()
