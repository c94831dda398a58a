"""Fuzz the public API: N random Recognize and StreamingRecognize calls against the embedded server,
run as its own process so that a crash shows.

    python -m services.fuzz -n 100000 [--model bundles/tiny] [--seed 0]     # make fuzz N=100000

A third of the calls carry random bytes or a valid message with bytes flipped, cut or inserted; the rest
are well-formed messages with hostile values (huge or odd strings, NaN and negative numbers, wrong
encodings, random audio, too many hotwords, streams in the wrong order). It prints the status codes,
the p50/p95 latency of rejections, and exits 1 on a crash, INTERNAL or UNKNOWN.
"""

from __future__ import annotations

import argparse
import collections
import io
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np

from seedasr.v1 import common_pb2, recognizer_pb2
from services.localmesh import Proc, free_port, wait_serving

ENCODINGS = ["", "wav", "pcm_s16le", "flac", "mp3", "ogg", "pcm_f32le", "ulaw", "x" * 300]
BAD = ["", "\x00", "é" * 50, "a" * 5000, "../../etc/passwd", "s" * 129, "\ud7ff" * 3, " ", "DROP TABLE", "ok-1"]


def _wav(rng: random.Random) -> bytes:
    import soundfile as sf

    rate = rng.choice([8000, 16000, 22050, 44100])
    samples = np.random.default_rng(rng.getrandbits(32)).normal(0, 0.1, int(rate * rng.uniform(0.02, 1.0)))
    buf = io.BytesIO()
    sf.write(buf, samples.astype(np.float32), rate, format="WAV", subtype=rng.choice(["PCM_16", "FLOAT", "PCM_U8"]))
    return buf.getvalue()


def _text(rng: random.Random) -> str:
    return rng.choice(BAD) if rng.random() < 0.5 else "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 40)))


def _number(rng: random.Random) -> float:
    return rng.choice([float("nan"), float("inf"), -1.0, 0.0, 0.5, 1.0, 3.0, 1e30, -1e30, rng.uniform(-5, 5)])


def _config(rng: random.Random) -> common_pb2.RecognitionConfig:
    cfg = common_pb2.RecognitionConfig(language=rng.choice(["", "en", "en-US", "zh", _text(rng)]),
                                       beam_size=rng.choice([0, 1, 2, 33, 2**31 - 1]), nbest=rng.choice([0, 1, 5, 1000]),
                                       disable_context=rng.random() < 0.3, word_timestamps=rng.random() < 0.3)
    for name in ("context_weight", "bias_bonus", "correction_margin", "oov_penalty"):
        if rng.random() < 0.3:
            setattr(cfg, name, _number(rng))
    return cfg


def _context(rng: random.Random) -> common_pb2.RequestContext:
    n = rng.choice([0, 1, 5, 300, 3000])
    return common_pb2.RequestContext(hotwords=[_text(rng) for _ in range(n)],
                                     history=[_text(rng) for _ in range(rng.choice([0, 2, 100]))],
                                     prompt=rng.choice(["", _text(rng), "p" * rng.choice([10, 5000, 300_000])]))


def _audio(rng: random.Random) -> common_pb2.Audio:
    content = _wav(rng) if rng.random() < 0.4 else rng.randbytes(rng.choice([0, 1, 7, 44, 1000, 64_000]))
    return common_pb2.Audio(content=content, encoding=rng.choice(ENCODINGS), sample_rate=rng.choice([0, 1, 8000, 16000, 10**9]),
                            channels=rng.choice([0, 1, 2, 9]))


def _mangle(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.4 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif op < 0.7 and out:
            del out[rng.randrange(len(out)):]
        else:
            pos = rng.randrange(len(out) + 1)
            out[pos:pos] = rng.randbytes(rng.randint(1, 16))
    return bytes(out)


def recognize_payload(rng: random.Random) -> bytes:
    sane = rng.random() < 0.4  # only the audio is hostile: calls get past validation into recognition
    req = recognizer_pb2.RecognizeRequest(audio=_audio(rng), config=common_pb2.RecognitionConfig() if sane else _config(rng),
                                          context=common_pb2.RequestContext(hotwords=["zorblatt"]) if sane else _context(rng),
                                          session_id=rng.choice(["", "fuzz-1", _text(rng)]))
    data = req.SerializeToString()
    roll = rng.random()
    if roll < 0.1:
        return rng.randbytes(rng.randint(0, 200))
    return _mangle(rng, data) if roll < 0.33 else data


def stream_payloads(rng: random.Random) -> list[bytes]:
    msgs: list[bytes] = []
    if rng.random() < 0.3:
        cfg = recognizer_pb2.StreamingConfig(interim_results=True, silence_ms=rng.choice([0.0, -1.0, 300.0]))
        msgs.append(recognizer_pb2.StreamingRecognizeRequest(streaming_config=cfg).SerializeToString())
    elif rng.random() < 0.8:
        cfg = recognizer_pb2.StreamingConfig(config=_config(rng), context=_context(rng), session_id=rng.choice(["", _text(rng)]),
                                             encoding=rng.choice(ENCODINGS), sample_rate=rng.choice([0, 16000, 1, 96000]),
                                             silence_ms=rng.choice([0.0, -1.0, 300.0, float("nan")]),
                                             interim_results=rng.random() < 0.5)
        msgs.append(recognizer_pb2.StreamingRecognizeRequest(streaming_config=cfg).SerializeToString())
    for _ in range(rng.randint(0, 4)):
        kind = rng.random()
        if kind < 0.6:
            msg = recognizer_pb2.StreamingRecognizeRequest(audio_chunk=rng.randbytes(rng.choice([0, 1, 320, 3200, 16000])))
        elif kind < 0.8:
            msg = recognizer_pb2.StreamingRecognizeRequest(end_of_turn=True)
        else:
            msg = recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig())
        msgs.append(msg.SerializeToString())
    if msgs and rng.random() < 0.25:
        i = rng.randrange(len(msgs))
        msgs[i] = _mangle(rng, msgs[i])
    return msgs


def run(n: int, port: int, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
    unary = channel.unary_unary("/seedasr.v1.Recognizer/Recognize", request_serializer=None, response_deserializer=None)
    stream = channel.stream_stream("/seedasr.v1.Recognizer/StreamingRecognize", request_serializer=None,
                                   response_deserializer=None)
    codes: collections.Counter[str] = collections.Counter()
    rejections: list[float] = []
    examples: dict[str, str] = {}
    for i in range(n):
        t = time.perf_counter()
        try:
            if i % 2:
                unary(recognize_payload(rng), timeout=30)
            else:
                payloads: Iterator[bytes] = iter(stream_payloads(rng))
                for _ in stream(payloads, timeout=30):
                    pass
            codes["OK"] += 1
        except grpc.RpcError as err:
            name = err.code().name
            codes[name] += 1
            rejections.append((time.perf_counter() - t) * 1000)
            examples.setdefault(name, f"call {i}: {err.details()}"[:200])
        if (i + 1) % 5000 == 0:
            print(f"{i + 1}/{n} calls: {dict(codes)}", file=sys.stderr, flush=True)
    channel.close()
    q = statistics.quantiles(rejections, n=20) if len(rejections) >= 20 else [0.0] * 19
    return {"codes": dict(codes), "rejection_p50_ms": statistics.median(rejections) if rejections else 0.0,
            "rejection_p95_ms": q[18], "examples": examples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / "bundles" / "tiny"))
    args = ap.parse_args()
    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="seedasr-fuzz-"))
    server = Proc("server", ["-m", "services.cli", "serve", "--port", str(port)],
                  {"SEEDASR_MODEL": args.model, "SEEDASR_RL_STORE": str(logs / "rl.jsonl"), "SEEDASR_HTTP_PORT": "-1"}, logs)
    try:
        wait_serving(port, server)
        started = time.time()
        result = run(args.n, port, args.seed)
        crashed = server.p is not None and server.p.poll() is not None
    finally:
        server.kill()
    codes = result["codes"]
    assert isinstance(codes, dict)
    bad = sum(codes.get(c, 0) for c in ("INTERNAL", "UNKNOWN"))
    print(f"| calls | crashes | INTERNAL+UNKNOWN | rejection p50 / p95 ms | minutes | codes |\n|---|---|---|---|---|---|\n"
          f"| {args.n} | {int(crashed)} | {bad} | {result['rejection_p50_ms']:.1f} / {result['rejection_p95_ms']:.1f} | "
          f"{(time.time() - started) / 60:.1f} | {codes} |")
    for name, example in dict(result["examples"]).items():  # type: ignore[call-overload]
        print(f"  {name}: {example}")
    if bad or crashed:
        print(f"server log: {logs / 'server.log'}")
    raise SystemExit(1 if bad or crashed else 0)


if __name__ == "__main__":
    main()
