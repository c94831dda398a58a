"""Ours as users get it: the embedded server (`seedasr serve`) in a child process, called over gRPC.

The evaluation and the peer benchmark import no service code: they start the server the way a user does
and read its CPU time (psutil) around each call, so WER, CPU-s and latency are those of the served path.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import grpc
import psutil

from seedasr.v1 import common_pb2, recognizer_pb2, recognizer_pb2_grpc
from shared.bundle_store import REPO_ROOT
from shared.decoding import decoding_for
from shared.localnet import free_port, wait_serving
from shared.settings import load_settings

CHANNEL_OPTIONS = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]


def _exit_on_sigterm() -> None:
    """SIGTERM as SystemExit, so that atexit closes the servers; only where nobody installed a handler already."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
        except ValueError:  # not the main thread: leave it to the program
            pass


class ServedRecogniser:
    """`last_cpu_s`: the server's CPU seconds for the latest call (what a serving machine pays for it)."""

    def __init__(self, model: Optional[str] = None, prune_k: Optional[int] = None, start_timeout_s: float = 180.0,
                 call_timeout_s: float = 600.0, **settings: Any) -> None:
        """settings: SEEDASR_* settings of the server (lower case, as shared/settings.py names them)."""
        overrides: dict[str, Any] = {"model": model} if model else {}
        if prune_k:
            overrides["context_prune_k"] = prune_k
        overrides.update(settings)
        self.decoding = decoding_for(load_settings(**overrides))  # the values the server will use
        env = {**os.environ, "SEEDASR_RL_STORE": str(Path(tempfile.gettempdir()) / "seedasr-eval-rl.jsonl"),
               "SEEDASR_API_KEYS_FILE": ""}
        env.update({f"SEEDASR_{k.upper()}": str(v) for k, v in overrides.items()})
        self.port, self.call_timeout_s = free_port(), call_timeout_s
        self.log = tempfile.NamedTemporaryFile(prefix="seedasr-eval-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen([sys.executable, "-m", "services.cli", "serve", "--port", str(self.port)],
                                     cwd=REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        atexit.register(self.close)  # no server outlives the evaluation ...
        _exit_on_sigterm()  # ... nor an evaluation killed with SIGTERM (atexit runs only on a normal exit)
        self.server = psutil.Process(self.proc.pid)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}", options=CHANNEL_OPTIONS)
        self._wait_serving(start_timeout_s)
        self.stub = recognizer_pb2_grpc.RecognizerStub(self.channel)
        self.last_cpu_s = 0.0

    def _wait_serving(self, timeout_s: float) -> None:
        try:
            wait_serving(self.port, "the embedded server", lambda: self.proc.poll() is not None, self._log_tail, timeout_s)
        except (RuntimeError, TimeoutError):
            self.close()
            raise

    def _log_tail(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def _cpu(self) -> float:
        times = self.server.cpu_times()
        return float(times.user + times.system)

    def __call__(self, audio: str, history: Sequence[str] = (), hotwords: Sequence[str] = (), prompt: str = "",
                 alpha: Optional[float] = None, no_context: bool = False, bias: Optional[float] = None,
                 correction: Optional[float] = None) -> str:
        """The best transcript as written."""
        resp = self.recognize(audio, history, hotwords, prompt, alpha, no_context, bias, correction)
        return resp.alternatives[0].text if resp.alternatives else ""

    def recognize(self, audio: str, history: Sequence[str] = (), hotwords: Sequence[str] = (), prompt: str = "",
                  alpha: Optional[float] = None, no_context: bool = False, bias: Optional[float] = None,
                  correction: Optional[float] = None, word_timestamps: bool = False,
                  language: str = "") -> recognizer_pb2.RecognizeResponse:
        """The whole response (alternatives with confidences, words with times when asked); language "" is
        identified by the server."""
        cfg = common_pb2.RecognitionConfig(disable_context=no_context, word_timestamps=word_timestamps,
                                           language=language)
        if alpha is not None:
            cfg.context_weight = alpha
        if bias is not None:
            cfg.bias_bonus = bias
        if correction is not None:
            cfg.correction_margin = correction
        req = recognizer_pb2.RecognizeRequest(
            audio=common_pb2.Audio(content=Path(audio).read_bytes()), config=cfg,
            context=common_pb2.RequestContext(history=list(history), hotwords=list(hotwords), prompt=prompt))
        start = self._cpu()
        resp = self.stub.Recognize(req, timeout=self.call_timeout_s)
        self.last_cpu_s = self._cpu() - start
        return resp

    def close(self) -> None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def __enter__(self) -> ServedRecogniser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
