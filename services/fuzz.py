"""Fuzz every method the embedded server serves: N random calls against it, run as its own process (internal
services exposed) so that a crash shows, then SIGTERM and the time the process takes to exit.

    python -m services.fuzz -n 100000 [--model bundles/tiny] [--seed 0] [--threads 4]   # make fuzz N=100000
    python -m services.fuzz --messages 1000000   # calls until a million request messages were sent
    python -m services.fuzz --stream-cost        # server CPU per stream message, 100 to 100,000 messages

Half the calls are Recognize and StreamingRecognize with hostile values (huge or odd strings, NaN and negative
numbers, wrong encodings, random audio, too many hotwords, streams in the wrong order, never configured, chunks of
one sample at odd rates, non-finite silences); the other half go to every other method of every served service
(ours, Riva's, the internal ones, health, reflection) with messages built at random from the method's descriptor.
A third of all calls carry random bytes or a valid message with bytes flipped, cut or inserted. It prints the
status codes, the p50/p95 latency of rejections, and exits 1 on a crash, INTERNAL, UNKNOWN or a slow exit.
"""

from __future__ import annotations

import argparse
import collections
import io
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor

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


def hostile_stream(rng: random.Random) -> list[bytes]:
    """Streams that cost a careless server: never configured, one-sample chunks at odd rates, absurd silences."""
    kind = rng.random()
    if kind < 0.25:  # never configured: audio first, or nothing at all
        return [recognizer_pb2.StreamingRecognizeRequest(audio_chunk=b"\0\0").SerializeToString()] * rng.randint(0, 50)
    cfg = recognizer_pb2.StreamingConfig(sample_rate=rng.choice([8000, 11025, 22050, 44100, 47999, 48000]),
                                         silence_ms=rng.choice([0.0, -1.0, float("inf"), float("-inf"), float("nan"), 1e30]),
                                         encoding=rng.choice(["pcm_s16le", "pcm_f32le"]), interim_results=rng.random() < 0.5)
    width = 2 if cfg.encoding == "pcm_s16le" else 4
    chunk = rng.choice([width, width, 3 * width, 1])  # one sample; three; a byte short of one
    msgs = [recognizer_pb2.StreamingRecognizeRequest(streaming_config=cfg).SerializeToString()]
    msgs += [recognizer_pb2.StreamingRecognizeRequest(audio_chunk=rng.randbytes(chunk)).SerializeToString()
             for _ in range(rng.randint(1, 400))]
    return msgs


def random_message(descriptor: Descriptor, rng: random.Random, depth: int = 0) -> Any:
    """A message of `descriptor`'s type with random values in random fields (nested to depth 3)."""
    msg = message_factory.GetMessageClass(descriptor)()
    for f in descriptor.fields:
        if rng.random() < 0.5:
            continue
        if f.message_type is not None:
            if depth >= 3 or f.message_type.GetOptions().map_entry:
                continue
            count = rng.choice([1, 2, 50]) if f.is_repeated else 1
            for _ in range(count):
                sub = random_message(f.message_type, rng, depth + 1)
                getattr(msg, f.name).add().CopyFrom(sub) if f.is_repeated else getattr(msg, f.name).CopyFrom(sub)
            continue
        values = [_scalar(f, rng) for _ in range(rng.choice([1, 3, 300]) if f.is_repeated else 1)]
        try:
            getattr(msg, f.name).extend(values) if f.is_repeated else setattr(msg, f.name, values[0])
        except (ValueError, TypeError):  # an enum number out of range, a oneof clash: leave the field
            pass
    return msg


def _scalar(f: FieldDescriptor, rng: random.Random) -> Any:
    if f.type == FieldDescriptor.TYPE_STRING:
        return _text(rng)
    if f.type == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 1, 7, 4096]))
    if f.type == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if f.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return _number(rng)
    if f.type == FieldDescriptor.TYPE_ENUM:
        return rng.choice([v.number for v in f.enum_type.values])
    bits = 64 if f.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64) else 32
    unsigned = f.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
                          FieldDescriptor.TYPE_FIXED64)
    return rng.choice([0, 1, 7, 16000, 2**bits - 1 if unsigned else 2**(bits - 1) - 1, 0 if unsigned else -1])


def method_payloads(method: MethodDescriptor, rng: random.Random) -> list[bytes]:
    """0-4 messages for a streaming request, exactly one for a unary one; a third of the time mangled."""
    count = rng.randint(0, 4) if method.client_streaming else 1
    msgs = [random_message(method.input_type, rng).SerializeToString() for _ in range(count)]
    for i in range(len(msgs)):
        roll = rng.random()
        if roll < 0.1:
            msgs[i] = rng.randbytes(rng.randint(0, 200))
        elif roll < 0.33:
            msgs[i] = _mangle(rng, msgs[i])
    return msgs


def stream_payloads(rng: random.Random) -> list[bytes]:
    if rng.random() < 0.2:
        return hostile_stream(rng)
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


def served_methods() -> list[MethodDescriptor]:
    """Every method the fuzzed server serves: ours, Riva's, the internal services, health and reflection."""
    from grpc_health.v1 import health_pb2
    from grpc_reflection.v1alpha import reflection_pb2
    from riva.client.proto import riva_asr_pb2

    from seedasr.v1 import internal_pb2

    services = [*recognizer_pb2.DESCRIPTOR.services_by_name.values(), *internal_pb2.DESCRIPTOR.services_by_name.values(),
                *riva_asr_pb2.DESCRIPTOR.services_by_name.values(), health_pb2.DESCRIPTOR.services_by_name["Health"],
                reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]]
    return [m for s in services for m in s.methods]


class Tally:
    def __init__(self) -> None:
        self.codes: collections.Counter[str] = collections.Counter()
        self.by_method: collections.Counter[str] = collections.Counter()
        self.rejections: list[float] = []
        self.messages = 0  # request messages sent: one per unary call, each chunk of a stream
        self.examples: dict[str, str] = {}
        self.lock = threading.Lock()

    def add(self, method: str, code: str, ms: float, details: str, messages: int = 1) -> None:
        with self.lock:
            self.messages += messages
            self.codes[code] += 1
            self.by_method[method] += 1
            if code not in ("OK", "DEADLINE_EXCEEDED"):  # a Watch or an idle stream runs to its deadline
                self.rejections.append(ms)
            if code in ("INTERNAL", "UNKNOWN"):
                self.examples.setdefault(f"{code} {method}", details[:300])
            else:
                self.examples.setdefault(code, f"{method}: {details}"[:200])


def _call(channel: grpc.Channel, method: MethodDescriptor, payloads: list[bytes], tally: Tally) -> None:
    path = f"/{method.containing_service.full_name}/{method.name}"
    # a server stream that never ends by itself (health's Watch) gets a short deadline
    timeout = 1.0 if method.server_streaming and method.containing_service.name == "Health" else 30.0
    kind = (channel.stream_stream if method.server_streaming else channel.stream_unary) if method.client_streaming else (
        channel.unary_stream if method.server_streaming else channel.unary_unary)
    call = kind(path, request_serializer=None, response_deserializer=None)
    t = time.perf_counter()
    try:
        if method.client_streaming:
            result = call(iter(payloads), timeout=timeout)
        else:
            result = call(payloads[0], timeout=timeout)
        if method.server_streaming:
            for _ in result:
                pass
        tally.add(path, "OK", 0.0, "", len(payloads))
    except grpc.RpcError as err:
        tally.add(path, err.code().name, (time.perf_counter() - t) * 1000, err.details() or "", len(payloads))


def run(n: int, port: int, seed: int, threads: int = 1, messages: int = 0) -> Tally:
    """n calls over `threads` callers; with `messages`, calls go on until that many request messages were sent."""
    methods = served_methods()
    by_name = {f"{m.containing_service.full_name}/{m.name}": m for m in methods}
    recognize, streaming = by_name["seedasr.v1.Recognizer/Recognize"], by_name["seedasr.v1.Recognizer/StreamingRecognize"]
    others = [m for m in methods if m not in (recognize, streaming)]
    tally = Tally()
    done = [0]

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.max_send_message_length", 64 << 20)])
        i = index
        while (tally.messages < messages) if messages else i < n:
            if i % 4 == 0:
                _call(channel, recognize, [recognize_payload(rng)], tally)
            elif i % 4 == 1:
                _call(channel, streaming, stream_payloads(rng), tally)
            else:
                method = rng.choice(others)
                _call(channel, method, method_payloads(method, rng), tally)
            i += threads
            with tally.lock:
                done[0] += 1
                if done[0] % 5000 == 0:
                    print(f"{done[0]} calls, {tally.messages} messages: {dict(tally.codes)}", file=sys.stderr, flush=True)
        channel.close()

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return tally


def stream_endings(port: int, pid: int, n: int, idle_s: float) -> None:
    """n streams, each ended one way (finished, refused for its config, over the rate, cancelled by the client,
    idle past the timeout, past its deadline); the server's threads, open files and RSS after a warm-up of n/10
    and at the end (printed as a table row)."""
    import psutil

    proc = psutil.Process(pid)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.stream_stream("/seedasr.v1.Recognizer/StreamingRecognize", request_serializer=None,
                                 response_deserializer=None)
    config = recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
        silence_ms=-1, interim_results=True)).SerializeToString()
    audio = recognizer_pb2.StreamingRecognizeRequest(audio_chunk=bytes(6400)).SerializeToString()
    flood = recognizer_pb2.StreamingRecognizeRequest(audio_chunk=bytes(32000 * 30)).SerializeToString()
    bad = recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
        silence_ms=float("nan"))).SerializeToString()
    ends: collections.Counter[str] = collections.Counter()

    def held(messages: list[bytes], hold_s: float) -> Iterator[bytes]:
        yield from messages
        time.sleep(hold_s)

    def one(i: int) -> None:
        way = ("finished", "refused", "rate", "cancelled", "idle", "deadline")[i % 6]
        try:
            if way == "finished":
                list(call(iter([config, audio, audio]), timeout=30))
            elif way == "refused":
                list(call(iter([bad]), timeout=30))
            elif way == "rate":
                list(call(iter([config] + [flood] * 3), timeout=30))
            elif way == "cancelled":
                future = call(held([config, audio], 5), timeout=30)
                time.sleep(0.02)
                future.cancel()
                ends[f"{way}: CANCELLED"] += 1
                return
            elif way == "idle":
                list(call(held([config], idle_s + 1), timeout=30))
            else:
                list(call(held([config, audio], 5), timeout=0.3))
        except grpc.RpcError as err:
            ends[f"{way}: {err.code().name}"] += 1
            return
        ends[f"{way}: OK"] += 1

    def state() -> tuple[int, int, float]:
        return proc.num_threads(), proc.num_fds(), proc.memory_info().rss / 2**20

    warm = max(60, n // 10)
    with ThreadPoolExecutor(8) as pool:  # idle and cancelled streams wait: several at once
        list(pool.map(one, range(warm)))
        time.sleep(idle_s + 2)
        before = state()
        list(pool.map(one, range(warm, n)))
    time.sleep(idle_s + 2)
    after = state()
    channel.close()
    print("| streams | threads after warm-up / end | open files | RSS MB | endings |\n|---|---|---|---|---|")
    print(f"| {n} | {before[0]} / {after[0]} | {before[1]} / {after[1]} | {before[2]:.0f} / {after[2]:.0f} "
          f"({100 * (after[2] / before[2] - 1):+.1f}%) | {dict(sorted(ends.items()))} |")


def stream_cost(port: int, pid: int) -> None:
    """Server CPU per message of a stream of one-sample messages (silence: the VAD runs, nothing is decoded), for
    streams of 100 to 100,000 messages at 16 kHz and at 47,999 Hz (every chunk resampled)."""
    import psutil

    proc = psutil.Process(pid)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.stream_stream("/seedasr.v1.Recognizer/StreamingRecognize", request_serializer=None,
                                 response_deserializer=None)
    print("| sample rate | messages | server CPU per message (µs) |\n|---|---|---|")
    for rate in (16_000, 47_999):
        for count in (100, 1_000, 10_000, 100_000):
            first = recognizer_pb2.StreamingRecognizeRequest(streaming_config=recognizer_pb2.StreamingConfig(
                sample_rate=rate)).SerializeToString()
            chunk = recognizer_pb2.StreamingRecognizeRequest(audio_chunk=b"\0\0").SerializeToString()
            before = sum(proc.cpu_times()[:2])
            for _ in call(iter([first] + [chunk] * count), timeout=600):
                pass
            print(f"| {rate} | {count} | {(sum(proc.cpu_times()[:2]) - before) / count * 1e6:.0f} |", flush=True)
    channel.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1000, help="calls")
    ap.add_argument("--messages", type=int, default=0, help="instead of -n: call until this many request messages were sent")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=4, help="concurrent callers (refusals are timed under load)")
    ap.add_argument("--stream-cost", action="store_true", help="only measure server CPU per stream message")
    ap.add_argument("--stream-endings", type=int, default=0, metavar="N",
                    help="only N streams ended every way, then the server's threads, files and RSS against warm-up")
    ap.add_argument("--model", default=str(Path(__file__).resolve().parent.parent / "bundles" / "tiny"))
    args = ap.parse_args()
    port = free_port()
    logs = Path(tempfile.mkdtemp(prefix="seedasr-fuzz-"))
    grace = 5.0
    server = Proc("server", ["-m", "services.cli", "serve", "--port", str(port)],
                  {"SEEDASR_MODEL": args.model, "SEEDASR_RL_STORE": str(logs / "rl.jsonl"), "SEEDASR_HTTP_PORT": "-1",
                   "SEEDASR_EXPOSE_INTERNAL": "1", "SEEDASR_GRACE_S": str(grace), "SEEDASR_STREAM_IDLE_S": "2",
                   "SEEDASR_MAX_STREAMS_PER_CLIENT": "64"}, logs)
    exit_s = float("nan")
    try:
        wait_serving(port, server)
        assert server.p is not None
        if args.stream_cost:
            stream_cost(port, server.p.pid)
            return
        if args.stream_endings:
            stream_endings(port, server.p.pid, args.stream_endings, idle_s=2.0)
            return
        started = time.time()
        tally = run(args.n, port, args.seed, args.threads, args.messages)
        crashed = server.p.poll() is not None
        if not crashed:  # the stop after all of that: within its grace + 5 s
            t = time.monotonic()
            server.p.send_signal(signal.SIGTERM)
            try:
                server.p.wait(timeout=grace + 60)
            except Exception:
                pass
            exit_s = time.monotonic() - t if server.p.poll() is not None else float("inf")
    finally:
        server.kill()
    bad = sum(tally.codes.get(c, 0) for c in ("INTERNAL", "UNKNOWN"))
    rej = tally.rejections
    q = statistics.quantiles(rej, n=20) if len(rej) >= 20 else [0.0] * 19
    slow = not exit_s <= grace + 5
    print(f"| calls | messages | methods | threads | crashes | INTERNAL+UNKNOWN | rejection p50 / p95 ms | "
          f"SIGTERM to exit s | minutes | codes |\n|---|---|---|---|---|---|---|---|---|---|\n"
          f"| {sum(tally.codes.values())} | {tally.messages} | {len(tally.by_method)} | {args.threads} | {int(crashed)} | "
          f"{bad} | "
          f"{statistics.median(rej) if rej else 0.0:.1f} / {q[18]:.1f} | {exit_s:.1f} | "
          f"{(time.time() - started) / 60:.1f} | {dict(tally.codes)} |")
    for name, example in tally.examples.items():
        print(f"  {name}: {example}")
    if bad or crashed or slow:
        print(f"server log: {logs / 'server.log'}")
    raise SystemExit(1 if bad or crashed or slow else 0)


if __name__ == "__main__":
    main()
