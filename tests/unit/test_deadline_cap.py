"""A Recognize call's server-side deadline grows with its audio (SEEDASR_DEADLINE_PER_AUDIO_S); a caller's
shorter deadline still rules."""

import numpy as np
import pytest

from seedasr.v1 import common_pb2
from services.gateway.pipeline import Peers, TurnPipeline
from shared.settings import load_settings


class Stop(Exception):
    pass


class RecordingEncoder:
    def __init__(self) -> None:
        self.timeouts: list[float] = []

    def Encode(self, request, timeout: float):  # noqa: N802 (the RPC's name)
        self.timeouts.append(timeout)
        raise Stop


@pytest.mark.parametrize(("audio_s", "caller_s", "expected_s"), [(2.0, None, 11.0), (60.0, None, 40.0), (60.0, 5.0, 5.0)])
def test_the_deadline_cap_grows_with_the_audio(tiny_bundle, audio_s, caller_s, expected_s) -> None:
    settings = load_settings(model=str(tiny_bundle), deadline_s=10.0, deadline_per_audio_s=0.5)
    encoder = RecordingEncoder()
    pipeline = TurnPipeline(Peers(encoder, None, None), None, settings)  # type: ignore[arg-type]
    with pytest.raises(Stop):
        pipeline.recognize(np.zeros(int(audio_s * 16_000), np.float32), "", common_pb2.RecognitionConfig(disable_context=True),
                           common_pb2.RequestContext(), common_pb2.StageTimings(), deadline_s=caller_s)
    assert encoder.timeouts[0] == pytest.approx(expected_s, abs=0.5)
