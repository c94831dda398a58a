"""Conversions between protobuf messages and numpy / request types, shared by services (no torch:
the gateway image does not install it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seedasr.v1 import common_pb2
from shared.decoding import KNOB, DecodingDefaults


def tensor_to_pb(array: np.ndarray) -> common_pb2.Tensor:
    array = np.ascontiguousarray(array, dtype="<f4")
    return common_pb2.Tensor(shape=list(array.shape), data=array.tobytes())


def tensor_from_pb(t: common_pb2.Tensor) -> np.ndarray:
    """Raises ValueError when the byte count does not match the shape."""
    shape = tuple(int(s) for s in t.shape)
    if any(s < 0 for s in shape) or len(t.data) != 4 * int(np.prod(shape)):
        raise ValueError(f"tensor of shape {shape} cannot hold {len(t.data)} bytes")
    return np.frombuffer(t.data, dtype="<f4").reshape(shape)


def _request_or_default(cfg: common_pb2.RecognitionConfig, defaults: DecodingDefaults, name: str) -> float:
    """A request knob the request sets (an optional float), else the server's default of that name; ValueError outside
    the knob's range (shared/decoding.py KNOBS; NaN included)."""
    given = KNOB[name].request and cfg.HasField(name)
    return KNOB[name].check(float(getattr(cfg, name) if given else getattr(defaults, name)))


@dataclass(frozen=True)
class RequestDecoding:
    """A request's decoding knobs over the server's defaults, range-checked (the gateway checks them
    before any work; the decoder builds its search configs from them: services/decoder/config.py)."""

    beam_size: int
    nbest: int
    context_weight: float
    bias_bonus: float
    oov_penalty: float
    correction_margin: float
    correction_margin_zh: float  # the request's correction_margin where it set one: it sets the margin of either language


def request_decoding(cfg: common_pb2.RecognitionConfig, defaults: DecodingDefaults,
                     with_context: bool = False) -> RequestDecoding:
    """Raises ValueError on out-of-range values. A request's beam_size applies with and without context; else the
    defaults' context_beam_size (when set) applies to a search with a context stream, widened to the request's nbest
    (which the gateway checked against beam_size, before it knew whether there would be context), and beam_size
    to one without."""
    beam = cfg.beam_size or defaults.beam_size
    if with_context and defaults.context_beam_size and not cfg.beam_size:
        beam = max(defaults.context_beam_size, cfg.nbest)
    nbest = cfg.nbest or min(defaults.nbest, beam)
    KNOB["beam_size"].check(beam)
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be in [1, beam_size={beam}], got {nbest}")
    def knob(name: str) -> float:
        return _request_or_default(cfg, defaults, name)

    margin = knob("correction_margin")
    return RequestDecoding(beam, nbest, knob("context_weight"), knob("bias_bonus"), knob("oov_penalty"), margin,
                           margin if cfg.HasField("correction_margin") else knob("correction_margin_zh"))
