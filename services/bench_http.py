"""What the HTTP front adds: gRPC Recognize vs OpenAI's /v1/audio/transcriptions (raw multipart and through the
`openai` client) on one embedded server, the same audio, interleaved call by call. Prints medians and p95 of the
latency, and of the overhead: the latency less the server's own recognition time (StageTimings.total_ms over
gRPC, the openai-processing-ms header over HTTP), which the model's run-to-run noise does not blur.

    python -m services.bench_http [--model DIR] [--runs 30] [--audio FILE ...]
    python -m services.bench_http --manifest data/dev_flite_slt/manifest.jsonl   # WER through both, same files
    python -m services.bench_http --manifest data/context_eval/manifest.jsonl    # + keyword recall: gRPC history
                                                                                  #   vs the HTTP prompt
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import grpc
import httpx
import numpy as np

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from services.localmesh import ROOT
from shared.localnet import free_port

DEFAULT_AUDIO = [ROOT / "samples" / "dialogue" / "user-1.wav", ROOT / "samples" / "dialogue" / "user-2.wav"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--audio", nargs="*", type=Path, default=DEFAULT_AUDIO)
    ap.add_argument("--manifest", type=Path, help="JSONL rows (audio, text; history, hotwords, keywords): WER and "
                    "keyword recall through gRPC and the openai client instead of latency")
    args = ap.parse_args()
    import openai

    from services.app import serve_embedded
    from shared.settings import load_settings

    server = serve_embedded(load_settings(**({"model": args.model} if args.model else {})), port=free_port(), http_port=0)
    audios = [(a.name, a.read_bytes()) for a in args.audio]
    hotwords = ["kilbride street"]
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    stub = recognizer_pb2_grpc.RecognizerStub(channel)
    base = f"http://127.0.0.1:{server.http_port}"
    http = httpx.Client(base_url=base, timeout=120)
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="bench", max_retries=0)

    def via_grpc(audio: bytes) -> tuple[str, float]:
        req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=audio),
                                              context=common_pb2.RequestContext(hotwords=hotwords))
        resp = stub.Recognize(req, timeout=120)
        return str(resp.alternatives[0].text), resp.timings.total_ms

    def via_http(audio: bytes) -> tuple[str, float]:
        resp = http.post("/v1/audio/transcriptions", files={"file": ("a.wav", audio)},
                         data={"model": "whisper-1", "hotwords": ",".join(hotwords)})
        resp.raise_for_status()
        return str(resp.json()["text"]), float(resp.headers["openai-processing-ms"])

    def via_openai(audio: bytes) -> tuple[str, float]:
        raw = client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=("a.wav", audio),
                                                                   extra_body={"hotwords": ",".join(hotwords)})
        return raw.parse().text, float(raw.headers["openai-processing-ms"])

    if args.manifest:
        try:
            parity(stub, client, [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()])
        finally:
            http.close()
            channel.close()
            server.stop(0.5)
        return
    paths = {"gRPC Recognize": via_grpc, "HTTP multipart": via_http, "openai client": via_openai}
    times: dict[str, list[float]] = {name: [] for name in paths}
    overheads: dict[str, list[float]] = {name: [] for name in paths}
    texts: dict[str, list[str]] = {name: [] for name in paths}
    try:
        for i in range(args.runs + 2):
            _, audio = audios[i % len(audios)]
            for name, call in paths.items():
                t = time.perf_counter()
                text, server_ms = call(audio)
                ms = (time.perf_counter() - t) * 1000
                if i >= 2:  # warm-up
                    times[name].append(ms)
                    overheads[name].append(ms - server_ms)
                    texts[name].append(text)
    finally:
        http.close()
        channel.close()
        server.stop(0.5)
    print(f"Recognize vs HTTP on one embedded server, {args.runs} calls each, interleaved; audio "
          f"{', '.join(n for n, _ in audios)}")
    print(f"{'':16} {'p50 ms':>8} {'p95 ms':>8} {'overhead p50':>13} {'overhead p95':>13} {'same text':>10}")
    grpc_overhead = float(np.percentile(overheads["gRPC Recognize"], 50))
    for name, values in times.items():
        same = sum(a == b for a, b in zip(texts[name], texts["gRPC Recognize"]))
        print(f"{name:16} {np.percentile(values, 50):8.1f} {np.percentile(values, 95):8.1f} "
              f"{np.percentile(overheads[name], 50):13.1f} {np.percentile(overheads[name], 95):13.1f} "
              f"{same:>5}/{len(values)}")
    for name in ("HTTP multipart", "openai client"):
        print(f"{name} adds {np.percentile(overheads[name], 50) - grpc_overhead:.1f} ms p50 over gRPC Recognize")


def parity(stub: recognizer_pb2_grpc.RecognizerStub, client: object, rows: list[dict]) -> None:
    """Each row through gRPC Recognize (its history as history) and the openai client (its history as the prompt,
    its hotwords as our extension field): WER of each, how many texts agree, and keyword recall."""
    import jiwer

    from shared.text import normalize_text

    refs: list[str] = []
    outs: dict[str, list[str]] = {"gRPC Recognize": [], "openai client": []}
    found = {name: 0 for name in outs}
    keywords = 0
    for row in rows:
        audio = (ROOT / row["audio"]).read_bytes()  # an absolute path stays itself
        history, hotwords = row.get("history", []), row.get("hotwords", [])
        req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=audio), context=common_pb2.RequestContext(
            history=history, hotwords=hotwords))
        outs["gRPC Recognize"].append(normalize_text(stub.Recognize(req, timeout=120).alternatives[0].text))
        extra = {"hotwords": ",".join(hotwords)} if hotwords else {}
        text = client.audio.transcriptions.create(  # type: ignore[attr-defined]
            model="whisper-1", file=("a.wav", audio), prompt=". ".join(history), extra_body=extra).text
        outs["openai client"].append(normalize_text(text))
        refs.append(normalize_text(row["text"]))
        for keyword in row.get("keywords", []):
            keywords += 1
            for name in outs:
                found[name] += f" {normalize_text(keyword)} " in f" {outs[name][-1]} "
    same = sum(a == b for a, b in zip(outs["gRPC Recognize"], outs["openai client"]))
    print(f"{len(rows)} utterances; the two paths gave the same text on {same}")
    for name, hyps in outs.items():
        recall = f", keyword recall {found[name]}/{keywords}" if keywords else ""
        print(f"{name:16} WER {100 * jiwer.wer(refs, hyps):.2f}%{recall}")


if __name__ == "__main__":
    main()
