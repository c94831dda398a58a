"""`seedasr`: serve, transcribe, demo, worker.

    seedasr serve [--port N]             embedded all-in-one server (every servicer, one process)
    seedasr serve SERVICE                one mesh service (encoder|context|decoder|gateway|reward)
    seedasr transcribe FILE...           print text
    seedasr transcribe --manifest IN.jsonl --output OUT.jsonl [--model DIR] [--no-context]
    seedasr demo                         the bundled sample dialogue through the embedded gRPC server
    seedasr worker                       the Celery reward worker (started again if it dies)
    seedasr bundle manifest|verify [--dir D] / fetch [SOURCE] [--dir D] / publish STORE [--dir D]   (shared/bundle_store.py)
    seedasr apikey TENANT [--file F]     make an API key: its hash goes to F, the key is printed once
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

from shared.settings import load_settings

EXIT_BAD_INPUT, EXIT_PARTIAL = 2, 3


def _embedded_recognizer(model: Optional[str]) -> Any:
    from services.app import build_embedded
    from shared.bundle import BundleError
    from shared.decoding import BundleConfigError

    settings = load_settings(**({"model": model} if model else {}))
    try:
        regs, _ = build_embedded(settings)
    except (BundleError, BundleConfigError) as exc:
        raise SystemExit(f"seedasr: {exc}") from None
    return regs[0].servicer


def _recognize_file(recognizer: Any, path: str, history: list[str], hotwords: list[str], prompt: str,
                    no_context: bool, verbatim: bool = False, word_timestamps: bool = False, language: str = "") -> Any:
    from seedasr.v1 import common_pb2, recognizer_pb2
    from shared.bus import CallContext

    with open(path, "rb") as f:
        content = f.read()
    req = recognizer_pb2.RecognizeRequest(
        audio=common_pb2.Audio(content=content),
        config=common_pb2.RecognitionConfig(disable_context=no_context, verbatim=verbatim, word_timestamps=word_timestamps,
                                            language=language),
        context=common_pb2.RequestContext(history=history, hotwords=hotwords, prompt=prompt),
    )
    return recognizer.Recognize(req, CallContext(None))


def _error_message(exc: Exception) -> str:
    details = getattr(exc, "details", None)
    return str(details()) if callable(details) else str(exc)


def cmd_transcribe(args: argparse.Namespace) -> int:
    from shared.bus import BusError

    if not args.manifest and not args.files:
        print("seedasr transcribe: give audio files or --manifest IN.jsonl --output OUT.jsonl", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.manifest and not args.output:
        print("seedasr transcribe: --manifest needs --output", file=sys.stderr)
        return EXIT_BAD_INPUT
    recognizer = _embedded_recognizer(args.model)
    failures = 0
    if not args.manifest:
        for path in args.files:
            try:
                resp = _recognize_file(recognizer, path, [], args.hotword or [], "", args.no_context, args.verbatim,
                                       language=args.language or "")
                text = resp.alternatives[0].text if resp.alternatives else ""
                print(f"{path}\t{resp.language}\t{text}" if args.show_language else f"{path}\t{text}")
            except (BusError, OSError) as exc:
                failures += 1
                print(f"seedasr: {path}: {_error_message(exc)}", file=sys.stderr)
        return EXIT_PARTIAL if failures else 0
    try:
        lines = Path(args.manifest).read_text().splitlines()
    except OSError as exc:
        print(f"seedasr: cannot read {args.manifest}: {exc.strerror}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from tqdm import tqdm

    with open(args.output, "w") as out:
        for n, line in enumerate(tqdm(lines, desc="transcribe", disable=not sys.stderr.isatty()), 1):
            if not line.strip():
                continue
            row: dict[str, Any] = {}
            try:
                parsed = json.loads(line)
                if not isinstance(parsed, dict) or not isinstance(parsed.get("audio"), str):
                    raise ValueError("each line must be a JSON object with an \"audio\" path")
                row = parsed
                resp = _recognize_file(recognizer, row["audio"], _strings(row, "history"), _strings(row, "hotwords"),
                                       str(row.get("prompt") or ""), args.no_context, args.verbatim, word_timestamps=True,
                                       language=str(row.get("language") or args.language or ""))
                result = {"id": row.get("id", str(n)), "audio": row["audio"], **manifest_result(resp)}
            except (BusError, OSError, ValueError) as exc:
                failures += 1
                msg = _error_message(exc)
                print(f"seedasr: {args.manifest}:{n}: {msg}", file=sys.stderr)
                result = {"id": row.get("id", str(n)), "audio": row.get("audio"), "text": "", "normalized_text": "",
                          "language": "", "language_probability": 0.0, "confidence": 0.0, "words": [], "alternatives": [],
                          "error": msg}
            out.write(json.dumps(result) + "\n")
    return EXIT_PARTIAL if failures else 0


def manifest_result(resp: Any) -> dict[str, Any]:
    """A manifest output line's recognition fields (README: Manifest lines)."""
    best = resp.alternatives[0] if resp.alternatives else None
    return {
        "text": best.text if best else "", "normalized_text": best.normalized_text if best else "",
        "language": resp.language or "en", "language_probability": round(resp.language_probability, 4),
        "confidence": round(best.confidence, 4) if best else 0.0,
        "words": [{"word": w.word, "start_s": round(w.start_s, 3), "end_s": round(w.end_s, 3),
                   "confidence": round(w.confidence, 4)} for w in (best.words if best else [])],
        "alternatives": [{"text": a.text, "normalized_text": a.normalized_text, "confidence": round(a.confidence, 4),
                          "score": round(a.score, 4)} for a in resp.alternatives],
    }


def _strings(row: dict[str, Any], key: str) -> list[str]:
    """A manifest field that must be a list of strings (the manifest contract in the README), or a clear error."""
    value = row.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"\"{key}\" must be a list of strings")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    from services.runtime import wait_for_signal
    from shared.malloc import configure_malloc

    settings = load_settings()
    configure_malloc(settings.malloc_arenas, settings.malloc_trim_s)  # before the server's threads start
    if args.service:
        from services.app import serve_service

        if args.http_port is not None:
            settings = settings.model_copy(update={"http_port": args.http_port})
        return serve_service(args.service, settings, args.port)
    from services.app import serve_embedded

    running = serve_embedded(settings, args.port if args.port is not None else settings.port, args.http_port)
    http = f", HTTP on {settings.host}:{running.http_port}" if running.http_port is not None else ""
    print(f"seedasr: embedded server listening on {settings.host}:{running.port} (gRPC){http}", flush=True)
    return wait_for_signal(running, settings.grace_s)


def cmd_bundle(args: argparse.Namespace) -> int:
    from shared.bundle_store import ManifestError, fetch, problems, publish, write_manifest

    if args.action == "build":
        return build_bundle(args)
    bundle = Path(args.dir or "bundles/default")
    try:
        if args.action == "manifest":
            print(f"seedasr: wrote {write_manifest(bundle)}")
        elif args.action == "verify":
            found = problems(bundle)
            for line in found:
                print(f"seedasr: {bundle}: {line}", file=sys.stderr)
            if found:
                return EXIT_PARTIAL
            print(f"seedasr: {bundle} matches its manifest")
        elif args.action == "publish":
            if not args.source:
                print("seedasr bundle publish: give STORE (the folder to copy the bundle into)", file=sys.stderr)
                return EXIT_BAD_INPUT
            got = publish(bundle, Path(args.source))
            print(f"seedasr: published {len(got)} files of {bundle} to {args.source}")
        else:
            got = fetch(args.source, bundle)
            print(f"seedasr: fetched {', '.join(got) if got else 'nothing (already complete)'} into {bundle}")
    except (ManifestError, OSError) as exc:
        print(f"seedasr: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


def build_bundle(args: argparse.Namespace) -> int:
    """`bundle build --from SRC --dir OUT`: a user's Whisper checkpoint made into a bundle by the export tool, run as
    its own process (services import no training code; the tool also exports the ONNX encoder)."""
    if not args.source_checkpoint:
        print("seedasr bundle build: give --from (a CTranslate2 / faster-whisper folder or an OpenAI .pt)", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.dir is None:
        print("seedasr bundle build: give --dir, the new bundle's folder", file=sys.stderr)
        return EXIT_BAD_INPUT
    command = [sys.executable, "-m", "training.export.whisper_bundle", "--from", args.source_checkpoint, "--out", args.dir]
    if args.tokenizer_json:
        command += ["--tokenizer-json", args.tokenizer_json]
    if args.licence:
        command += ["--licence", args.licence]
    code = subprocess.call(command)
    if code == 0:
        print(f"seedasr: built {args.dir}; serve it with SEEDASR_MODEL={args.dir}")
    return EXIT_BAD_INPUT if code == 2 else code


def cmd_apikey(args: argparse.Namespace) -> int:
    """Make a key for TENANT: its sha256 goes into the keys file, the key itself is printed once."""
    import secrets

    from services.guard import TENANT_CHARS, hash_key

    if not args.tenant or len(args.tenant) > 64 or not set(args.tenant) <= TENANT_CHARS:
        print("seedasr apikey: TENANT must be 1-64 letters, digits, _ and -", file=sys.stderr)
        return EXIT_BAD_INPUT
    key = secrets.token_urlsafe(32)
    path = Path(args.file)
    with path.open("a") as f:
        f.write(f"{args.tenant} {hash_key(key)}\n")
    path.chmod(0o600)
    print(key)
    print(f"seedasr: added a key for {args.tenant} to {path}; serve with SEEDASR_API_KEYS_FILE={path}", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from services.reward.supervisor import supervise, worker_command

    command = worker_command(args.concurrency)
    if args.no_restart:
        return subprocess.call(command)
    return supervise(command)


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="seedasr", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the embedded server, or one mesh service")
    s.add_argument("service", nargs="?", choices=["encoder", "context", "decoder", "gateway", "reward"])
    s.add_argument("--port", type=int, default=None)
    s.add_argument("--http-port", type=int, default=None,
                   help="HTTP front (OpenAI audio API, WebSocket, live page, /metrics); default 8080, -1 = off")
    s.set_defaults(fn=cmd_serve)
    t = sub.add_parser("transcribe", help="recognise files or a JSONL manifest")
    t.add_argument("files", nargs="*")
    t.add_argument("--manifest")
    t.add_argument("--output")
    t.add_argument("--model", help="bundle directory (default: bundles/default or $SEEDASR_MODEL)")
    t.add_argument("--no-context", action="store_true", help="ignore history and hotwords")
    t.add_argument("--verbatim", action="store_true",
                   help="the spoken form (lower case, no punctuation, numbers as words) in text, as Riva's verbatim_transcripts")
    t.add_argument("--hotword", action="append", help="hotword for FILE mode (repeatable)")
    t.add_argument("--language", help="BCP-47 tag (en, zh-CN, zh-TW, es...); default: identified (SEEDASR_LANGUAGES); a "
                                      "manifest line's own \"language\" wins")
    t.add_argument("--show-language", action="store_true", help="FILE mode: print the language between path and text")
    t.set_defaults(fn=cmd_transcribe)
    d = sub.add_parser("demo", help="recognise the bundled sample dialogue with context")
    d.add_argument("--model")
    d.set_defaults(fn=lambda a: __import__("services.demo", fromlist=["run"]).run(a.model))
    w = sub.add_parser("worker", help="run the Celery reward worker")
    w.add_argument("--concurrency", type=int, default=1)
    w.add_argument("--no-restart", action="store_true", help="do not start the worker again when it dies")
    w.set_defaults(fn=cmd_worker)
    b = sub.add_parser("bundle", help="a bundle's manifest: write it, verify files against it, fetch what is "
                                      "missing, publish the files to a store; build one from a Whisper checkpoint")
    b.add_argument("action", choices=["manifest", "verify", "fetch", "publish", "build"])
    b.add_argument("source", nargs="?", help="fetch: a folder, an http(s) URL or git:REV:PATH holding the bundle's "
                                             "files (default: the manifest's sources); publish: the store folder")
    b.add_argument("--dir", help="the bundle folder (default bundles/default; build: required, the new bundle)")
    b.add_argument("--from", dest="source_checkpoint", help="build: a multilingual Whisper checkpoint of any size, a "
                                                            "CTranslate2 (faster-whisper) folder or an OpenAI .pt")
    b.add_argument("--tokenizer-json", help="build: the checkpoint's tokenizer.json, if not beside it (needed unless "
                                            "its vocabulary is the multilingual 51,865 tokens)")
    b.add_argument("--licence", help="build: the licence of its weights, for the model card (default: Whisper's MIT)")
    b.set_defaults(fn=cmd_bundle)
    k = sub.add_parser("apikey", help="make an API key for a tenant (its hash is appended to the keys file)")
    k.add_argument("tenant")
    k.add_argument("--file", default="api_keys.txt")
    k.set_defaults(fn=cmd_apikey)
    args = ap.parse_args(argv)
    if getattr(args, "model", None):
        os.environ["SEEDASR_MODEL"] = args.model
    return int(args.fn(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
