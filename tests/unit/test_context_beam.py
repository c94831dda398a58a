"""context_beam_size: the beam of a search with a context stream, beside beam_size for one without."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from seedasr.v1 import common_pb2, internal_pb2
from services.convert import tensor_to_pb
from services.decoder.config import beam_config
from services.decoder.server import DecoderService
from shared.decoding import DecodingDefaults
from shared.recognition import NBestEntry
from shared.settings import load_settings
from tests.conftest import ROOT

PLAIN = common_pb2.RecognitionConfig()
SHIPPED = DecodingDefaults.from_bundle(ROOT / "bundles" / "default")


def test_the_context_beam_applies_only_with_a_context_stream() -> None:
    defaults = dataclasses.replace(SHIPPED, beam_size=8, context_beam_size=4, nbest=4)
    assert beam_config(PLAIN, defaults).beam_size == 8
    assert beam_config(PLAIN, defaults, with_context=True).beam_size == 4
    # a request's beam applies with and without context
    assert beam_config(common_pb2.RecognitionConfig(beam_size=3), defaults, with_context=True).beam_size == 3
    assert beam_config(common_pb2.RecognitionConfig(beam_size=6), defaults).beam_size == 6
    # unset (0): one beam for both
    assert beam_config(PLAIN, dataclasses.replace(SHIPPED, beam_size=5, context_beam_size=0), with_context=True).beam_size == 5
    # the gateway checks nbest against beam_size before it knows about context: the context beam widens to it
    widened = beam_config(common_pb2.RecognitionConfig(nbest=6), defaults, with_context=True)
    assert (widened.beam_size, widened.nbest) == (6, 6)
    with pytest.raises(ValueError, match="nbest"):  # a request's own beam is never widened
        beam_config(common_pb2.RecognitionConfig(nbest=6, beam_size=4), defaults, with_context=True)


class _Call:
    def is_active(self) -> bool:
        return True

    def time_remaining(self) -> float:
        return 10.0

    def abort(self, code: Any, details: str) -> None:
        raise AssertionError(f"aborted: {code} {details}")


def test_the_decoder_service_picks_the_beam_by_the_request_context(tiny_bundle) -> None:
    searched: list[int] = []

    def decode(speech, context_ids, cfg, *args, **kwargs) -> list[NBestEntry]:
        searched.append(cfg.beam_size)
        return [NBestEntry("ok", 0.0)]

    core = SimpleNamespace(bundle_dir=tiny_bundle, cfg=SimpleNamespace(lm=SimpleNamespace(d_model=4, vocab_size=10)),
                           tok=SimpleNamespace(vocab_size=10), decode=decode)
    service = DecoderService(core, load_settings(model=str(tiny_bundle), beam_size=7, context_beam_size=3))  # type: ignore[arg-type]
    speech = tensor_to_pb(np.zeros((5, 4), np.float32))
    service.Decode(internal_pb2.DecodeRequest(speech=speech), _Call())  # type: ignore[arg-type]
    service.Decode(internal_pb2.DecodeRequest(speech=speech, context_ids=[1, 2]), _Call())  # type: ignore[arg-type]
    assert searched == [7, 3]


def test_the_decoder_service_hands_a_draft_on_and_refuses_a_bad_one(tiny_bundle) -> None:
    drafts: list[list[int]] = []

    def decode(speech, context_ids, cfg, *args, **kwargs) -> list[NBestEntry]:
        drafts.append(kwargs["draft"])
        return [NBestEntry("ok", 0.0, tokens=[3, 4])]

    core = SimpleNamespace(bundle_dir=tiny_bundle, cfg=SimpleNamespace(lm=SimpleNamespace(d_model=4, vocab_size=10)),
                           tok=SimpleNamespace(vocab_size=10), decode=decode)
    service = DecoderService(core, load_settings(model=str(tiny_bundle)))  # type: ignore[arg-type]
    speech = tensor_to_pb(np.zeros((5, 4), np.float32))
    final = service.Decode(internal_pb2.DecodeRequest(speech=speech, draft_tokens=[1, 2]), _Call())  # type: ignore[arg-type]
    partial = service.Decode(internal_pb2.DecodeRequest(speech=speech, partial=True), _Call())  # type: ignore[arg-type]
    assert drafts == [[1, 2], []] and list(final.tokens) == [] and list(partial.tokens) == [3, 4]
    with pytest.raises(AssertionError, match="draft_tokens"):
        service.Decode(internal_pb2.DecodeRequest(speech=speech, draft_tokens=[10]), _Call())  # type: ignore[arg-type]
