"""Pieces of the no-loss guarantee that need no servers: the embedded bus, feedback on an unknown turn,
decoding that stops when its caller is gone, settings that refuse half a TLS pair."""

from __future__ import annotations

import threading

import grpc
import numpy as np
import pytest

from seedasr.v1 import recognizer_pb2
from shared.bus import BusError, CallContext
from shared.events import LocalBus
from shared.model.beam_search import BeamConfig, SearchCancelled


def test_local_bus_marks_an_event_seen_only_after_its_handlers_succeed() -> None:
    bus, calls = LocalBus(), []

    def flaky(msg_id: str, payload: bytes) -> None:
        calls.append(msg_id)
        if len(calls) == 1:
            raise ConnectionError("store down")

    bus.subscribe("asr.feedback", flaky)
    with pytest.raises(ConnectionError):
        bus.publish("asr.feedback", b"{}", msg_id="t1:fb")
    bus.publish("asr.feedback", b"{}", msg_id="t1:fb")  # the retry is handled, not swallowed as a duplicate
    bus.publish("asr.feedback", b"{}", msg_id="t1:fb")  # now it is a duplicate
    assert calls == ["t1:fb", "t1:fb"]


def test_embedded_feedback_on_an_unknown_turn_is_not_found_and_a_retry_is_stored(settings) -> None:
    from services.app import build_embedded

    regs, pipeline = build_embedded(settings)
    recognizer = regs[0].servicer
    from shared.turn_ids import new_turn_id

    turn_id = new_turn_id("")
    req = recognizer_pb2.SubmitFeedbackRequest(turn_id=turn_id, corrected_text="call alice", keywords=["alice"])
    with pytest.raises(BusError) as err:
        recognizer.SubmitFeedback(req, CallContext(5))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    pipeline.publish_turn(turn_id, "", [], "", "", 1.0)  # the turn arrives late
    assert recognizer.SubmitFeedback(req, CallContext(5)).accepted
    assert regs[-1].servicer.store.get_sample(turn_id)["reference"] == "call alice"


def test_decode_stops_when_cancelled_or_when_the_model_stays_busy(settings) -> None:
    from shared.recognition import AsrCore

    core = AsrCore(settings.model, "torch", 1)
    speech = np.random.default_rng(0).normal(size=(20, core.model.cfg.lm.d_model)).astype(np.float32)
    cfg = BeamConfig(beam_size=2, nbest=1, alpha=0.5, prune_k=8, ctc_weight=0.5)
    assert core.decode(speech, [], cfg)  # runs to the end when nobody cancels
    with pytest.raises(SearchCancelled):
        core.decode(speech, [], cfg, cancelled=lambda: True)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with core.lock:
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    try:
        with pytest.raises(SearchCancelled, match="busy"):
            core.decode(speech, [], cfg, wait_s=0.1)
    finally:
        release.set()
        thread.join()


def test_an_in_process_call_stops_with_the_call_it_serves() -> None:
    active = [True]
    ctx = CallContext(30, parent_active=lambda: active[0])
    assert ctx.is_active()
    active[0] = False
    assert not ctx.is_active()


@pytest.mark.parametrize("overrides, needle", [
    ({"tls_cert": "PEM"}, "no such file"),
    ({"tls_client_cert": __file__}, "SEEDASR_TLS_CLIENT_CERT and SEEDASR_TLS_CLIENT_KEY"),
    ({"tls_client_ca": __file__}, "SEEDASR_TLS_CLIENT_CA"),
])
def test_tls_settings_fail_fast_with_the_variable_named(overrides, needle, capsys) -> None:
    from shared.settings import load_settings

    with pytest.raises(SystemExit) as exc:
        load_settings(**overrides)
    assert exc.value.code == 2 and needle in capsys.readouterr().err
