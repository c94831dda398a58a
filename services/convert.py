"""Conversions between protobuf messages and numpy / recognition types, shared by services."""

from __future__ import annotations

import numpy as np

from seedasr.v1 import common_pb2
from shared.model.beam_search import BeamConfig
from shared.model.phrase_correction import CorrectionConfig
from shared.settings import Settings


def tensor_to_pb(array: np.ndarray) -> common_pb2.Tensor:
    array = np.ascontiguousarray(array, dtype="<f4")
    return common_pb2.Tensor(shape=list(array.shape), data=array.tobytes())


def tensor_from_pb(t: common_pb2.Tensor) -> np.ndarray:
    """Raises ValueError when the byte count does not match the shape."""
    shape = tuple(int(s) for s in t.shape)
    if any(s < 0 for s in shape) or len(t.data) != 4 * int(np.prod(shape)):
        raise ValueError(f"tensor of shape {shape} cannot hold {len(t.data)} bytes")
    return np.frombuffer(t.data, dtype="<f4").reshape(shape)


def beam_config(cfg: common_pb2.RecognitionConfig, settings: Settings) -> BeamConfig:
    """Request config with server defaults; raises ValueError on out-of-range values."""
    beam = cfg.beam_size or settings.beam_size
    nbest = cfg.nbest or min(settings.nbest, beam)
    alpha = cfg.context_weight if cfg.HasField("context_weight") else settings.context_weight
    if not 1 <= beam <= 32:
        raise ValueError(f"beam_size must be in [1, 32], got {beam}")
    if not 1 <= nbest <= beam:
        raise ValueError(f"nbest must be in [1, beam_size={beam}], got {nbest}")
    if not 0.0 <= alpha <= 1.0 or alpha != alpha:
        raise ValueError(f"context_weight must be in [0, 1], got {alpha}")
    bonus = cfg.bias_bonus if cfg.HasField("bias_bonus") else settings.bias_bonus
    if not 0.0 <= bonus <= 50.0 or bonus != bonus:
        raise ValueError(f"bias_bonus must be in [0, 50], got {bonus}")
    oov = cfg.oov_penalty if cfg.HasField("oov_penalty") else settings.oov_penalty
    if not 0.0 <= oov <= 50.0 or oov != oov:
        raise ValueError(f"oov_penalty must be in [0, 50], got {oov}")
    return BeamConfig(beam_size=beam, nbest=nbest, alpha=float(alpha), prune_k=max(settings.context_prune_k, 2 * beam),
                      ctc_weight=settings.ctc_weight, bias_bonus=float(bonus), oov_penalty=float(oov))


def correction_config(cfg: common_pb2.RecognitionConfig, settings: Settings) -> CorrectionConfig:
    """Request config with server defaults; raises ValueError on out-of-range values."""
    margin = cfg.correction_margin if cfg.HasField("correction_margin") else settings.correction_margin
    if not 0.0 <= margin <= 100.0 or margin != margin:
        raise ValueError(f"correction_margin must be in [0, 100], got {margin}")
    return CorrectionConfig(margin=float(margin), min_similarity=settings.correction_min_similarity)
