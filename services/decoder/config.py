"""The decoder's search configs from a request over the server's decoding defaults."""

from __future__ import annotations

from seedasr.v1 import common_pb2
from services.convert import request_decoding
from shared.decoding import DecodingDefaults
from shared.model.beam_search import BeamConfig
from shared.model.phrase_correction import CorrectionConfig


def search_configs(cfg: common_pb2.RecognitionConfig, defaults: DecodingDefaults,
                   with_context: bool = False) -> tuple[BeamConfig, CorrectionConfig]:
    """The beam search's and phrase correction's configs, the request checked once (ValueError when out of range,
    services/convert.py request_decoding); with_context: the search has a context stream."""
    req = request_decoding(cfg, defaults, with_context)
    beam = BeamConfig(beam_size=req.beam_size, nbest=req.nbest, alpha=req.context_weight,
                      prune_k=max(defaults.context_prune_k, 2 * req.beam_size), ctc_weight=defaults.ctc_weight,
                      bias_bonus=req.bias_bonus, oov_penalty=req.oov_penalty,
                      word_lm_weight=defaults.word_lm_weight, word_bonus=defaults.word_bonus,
                      length_norm=defaults.length_norm, draft_margin=defaults.draft_margin)
    return beam, CorrectionConfig(margin=req.correction_margin, min_similarity=defaults.correction_min_similarity,
                                  margin_zh=req.correction_margin_zh)


def beam_config(cfg: common_pb2.RecognitionConfig, defaults: DecodingDefaults, with_context: bool = False) -> BeamConfig:
    return search_configs(cfg, defaults, with_context)[0]


def correction_config(cfg: common_pb2.RecognitionConfig, defaults: DecodingDefaults) -> CorrectionConfig:
    return search_configs(cfg, defaults)[1]
