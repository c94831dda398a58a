"""The evaluation's recogniser is the embedded server a user starts (training/eval/served.py): it answers
as the in-process servicer does, reports the server's CPU time per call, and leaves no process behind."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_served_recogniser_agrees_with_the_in_process_servicer(tiny_bundle, tmp_path) -> None:
    from seedasr.v1 import common_pb2, recognizer_pb2
    from services.app import build_embedded
    from shared.bus import CallContext
    from shared.settings import load_settings
    from training.eval.served import ServedRecogniser

    audio = ROOT / "samples" / "dialogue" / "user-1.wav"
    regs, _ = build_embedded(load_settings(model=str(tiny_bundle), rl_store=str(tmp_path / "rl.jsonl")))  # as served
    req = recognizer_pb2.RecognizeRequest(audio=common_pb2.Audio(content=audio.read_bytes()),
                                          config=common_pb2.RecognitionConfig(disable_context=True))
    resp = regs[0].servicer.Recognize(req, CallContext(None))
    with ServedRecogniser(str(tiny_bundle)) as served:
        assert served(str(audio), no_context=True) == resp.alternatives[0].text
        assert served.last_cpu_s > 0
        proc = served.proc
    assert proc.poll() is not None


def test_make_eval_writes_its_card_with_the_served_defaults(tiny_bundle, tmp_path) -> None:
    """`python -m training.eval.run` end to end on a one-utterance set (the sweep defaults come from the
    bundle the server runs: settings no longer carry them)."""
    import json

    from training.eval.run import main

    dev = tmp_path / "dev_one"
    dev.mkdir()
    row = {"audio": str(ROOT / "samples" / "dialogue" / "user-1.wav"), "text": "call tomasz wrobel please", "duration": 1.93}
    (dev / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    card = tmp_path / "EVAL.md"
    main(["--sets", str(dev), "--model", str(tiny_bundle), "--no-peer", "--context", str(tmp_path / "none"),
          "--long", str(tmp_path / "none"), "--card", str(card)])
    text = card.read_text()
    assert "| dev_one | 1 |" in text and "WER ours" in text


def test_an_evaluation_killed_with_sigterm_stops_its_server(tiny_bundle) -> None:
    import signal
    import subprocess
    import sys

    import psutil

    script = ("import sys, time\nfrom training.eval.served import ServedRecogniser\n"
              f"served = ServedRecogniser({str(tiny_bundle)!r})\nprint(served.proc.pid, flush=True)\ntime.sleep(120)\n")
    evaluation = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert evaluation.stdout is not None
    server = psutil.Process(int(evaluation.stdout.readline()))
    try:
        evaluation.send_signal(signal.SIGTERM)
        assert evaluation.wait(timeout=30) == 128 + signal.SIGTERM
        server.wait(timeout=30)  # raises psutil.TimeoutExpired if the server outlived the evaluation
    finally:
        evaluation.kill()
        if server.is_running():
            server.kill()
