"""Conversions between protobuf messages and numpy / request types, shared by services (no torch:
the gateway image does not install it)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seedasr.v1 import common_pb2
from shared.decoding import DecodingDefaults


def tensor_to_pb(array: np.ndarray) -> common_pb2.Tensor:
    array = np.ascontiguousarray(array, dtype="<f4")
    return common_pb2.Tensor(shape=list(array.shape), data=array.tobytes())


def tensor_from_pb(t: common_pb2.Tensor) -> np.ndarray:
    """Raises ValueError when the byte count does not match the shape."""
    shape = tuple(int(s) for s in t.shape)
    if any(s < 0 for s in shape) or len(t.data) != 4 * int(np.prod(shape)):
        raise ValueError(f"tensor of shape {shape} cannot hold {len(t.data)} bytes")
    return np.frombuffer(t.data, dtype="<f4").reshape(shape)


def _request_or_default(cfg: common_pb2.RecognitionConfig, defaults: DecodingDefaults, name: str, hi: float) -> float:
    """An optional float of the request, else the server's default of that name; raises ValueError
    outside [0, hi] (NaN included)."""
    value = float(getattr(cfg, name) if cfg.HasField(name) else getattr(defaults, name))
    if not 0.0 <= value <= hi:
        raise ValueError(f"{name} must be in [0, {hi:g}], got {value}")
    return value


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
    if not 1 <= beam <= 32:
        raise ValueError(f"beam_size must be in [1, 32], got {beam}")
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be in [1, beam_size={beam}], got {nbest}")
    return RequestDecoding(beam, nbest, _request_or_default(cfg, defaults, "context_weight", 1.0),
                           _request_or_default(cfg, defaults, "bias_bonus", 50.0),
                           _request_or_default(cfg, defaults, "oov_penalty", 50.0),
                           _request_or_default(cfg, defaults, "correction_margin", 100.0))
