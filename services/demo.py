"""`make demo` / `seedasr demo`: the bundled sample dialogue through the embedded gRPC server.

Assistant turns are appended to a session; user turns are recognised with the session's history
(and the step's hotwords) as context, and once more with context disabled, side by side.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import grpc

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from shared.scoring import wer

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run(model: Optional[str] = None) -> int:
    from services.app import serve_embedded
    from shared.bundle import BundleError
    from shared.settings import load_settings

    settings = load_settings(**({"model": model} if model else {}))
    try:
        running = serve_embedded(settings, port=0, http_port=-1)
    except BundleError as exc:
        print(f"seedasr demo: {exc}", file=sys.stderr)
        return 2
    dialogue = json.loads((SAMPLES / "dialogue.json").read_text())
    session = dialogue["session_id"]
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    stub = recognizer_pb2_grpc.RecognizerStub(channel)
    print(f"model: {settings.model or 'bundles/default'}  server: 127.0.0.1:{running.port}  session: {session}\n")
    try:
        try:
            stub.DeleteSession(recognizer_pb2.DeleteSessionRequest(session_id=session), timeout=5)
        except grpc.RpcError:
            pass  # a fresh session is what we want either way
        for step in dialogue["steps"]:
            if step["role"] == "assistant":
                stub.AppendTurn(recognizer_pb2.AppendTurnRequest(
                    session_id=session, turn=common_pb2.Turn(role="assistant", text=step["text"])), timeout=10)
                print(f"assistant : {step['text']}")
                continue
            audio = common_pb2.Audio(content=(SAMPLES / step["audio"]).read_bytes())
            ctx = common_pb2.RequestContext(hotwords=step.get("hotwords", []))
            plain = stub.Recognize(recognizer_pb2.RecognizeRequest(
                audio=audio, config=common_pb2.RecognitionConfig(disable_context=True)), timeout=60)
            with_ctx = stub.Recognize(recognizer_pb2.RecognizeRequest(
                session_id=session, audio=audio, context=ctx), timeout=60)
            ref = step["reference"]
            best, base = with_ctx.alternatives[0].text, plain.alternatives[0].text
            print(f"user      : (audio {step['audio']}, {with_ctx.audio_seconds:.1f} s)")
            print(f"  reference       : {ref}")
            print(f"  with context    : {best}   [WER {wer(ref, best):.0%}, {with_ctx.timings.total_ms:.0f} ms]")
            print(f"  without context : {base}   [WER {wer(ref, base):.0%}]")
        turns = stub.GetSession(recognizer_pb2.GetSessionRequest(session_id=session), timeout=10).turns
        print(f"\nsession {session} now holds {len(turns)} turns")
    finally:
        channel.close()
        running.stop(1.0)
    return 0
