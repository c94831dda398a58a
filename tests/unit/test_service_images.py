"""The gateway, context and reward services run without torch, ONNX Runtime or KenLM (their images do not
install them: deploy/docker/Dockerfile), and the gateway's torch-free endpointer finds turns in speech."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import soundfile as sf

from tests.conftest import ROOT

WITHOUT_MODEL_PACKAGES = """
import sys
BLOCKED = ("torch", "onnxruntime", "kenlm", "safetensors", "silero_vad")

class Uninstalled:  # as if the image lacked them: any import raises ImportError
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not installed in this image")
        return None

sys.meta_path.insert(0, Uninstalled())
import services.app, services.cli
import services.gateway.server, services.gateway.streaming, services.gateway.pipeline
import services.context.server, services.reward.tasks, services.reward.bridge, services.reward.server
from seedasr.v1 import common_pb2
from services.convert import request_decoding
from services.gateway.streaming import Endpointer
from shared.decoding import DecodingDefaults
from shared.segments import segment_audio
import numpy as np
assert request_decoding(common_pb2.RecognitionConfig(beam_size=3), DecodingDefaults.from_bundle("bundles/default")).beam_size == 3
assert segment_audio(np.zeros(16000 * 3, np.float32), 20.0)
assert Endpointer(300)(np.zeros(512, np.float32)) is None
assert not any(name in sys.modules for name in BLOCKED)
print("ok")
"""


def test_gateway_context_and_reward_import_and_run_without_the_model_packages() -> None:
    run = subprocess.run([sys.executable, "-c", WITHOUT_MODEL_PACKAGES], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-2000:]


def test_endpointer_marks_one_turn_in_padded_speech() -> None:
    from services.gateway.endpointer import VAD_CHUNK, Endpointer

    speech, rate = sf.read(ROOT / "samples" / "dialogue" / "user-1.wav", dtype="float32")
    assert rate == 16_000
    audio = np.concatenate([np.zeros(8_000, np.float32), speech, np.zeros(16_000, np.float32)])
    endpointer = Endpointer(min_silence_ms=600)
    events = [(i, e) for i in range(0, len(audio) - VAD_CHUNK + 1, VAD_CHUNK)
              if (e := endpointer(audio[i: i + VAD_CHUNK]))]
    events = [(i, e) for i, e in events if e in ("start", "end")]  # pauses between words come and go
    assert [e for _, e in events] == ["start", "end"]
    start_s, end_s = events[0][0] / rate, events[1][0] / rate
    assert 0.3 <= start_s <= 1.0  # the speech begins after 0.5 s of silence
    assert 0.5 + len(speech) / rate <= end_s <= 0.5 + len(speech) / rate + 1.0  # 600 ms after it ends
    endpointer.reset()
    assert endpointer(np.zeros(VAD_CHUNK, np.float32)) is None and not endpointer.triggered
