"""Encoder and decoder halves (SeedASR.build / load_bundle / AsrCore `half`): each service loads only its
side of the model, and the two halves together give exactly what the whole model gives."""

from __future__ import annotations

import numpy as np
import pytest

from shared.bundle import DEFAULT_BUNDLE, load_bundle
from shared.model.beam_search import BeamConfig
from shared.recognition import AsrCore


def _params(model) -> set[str]:
    return {name for name, _ in model.named_parameters()}


def test_each_half_holds_only_its_weights(tiny_bundle) -> None:
    whole = _params(load_bundle(tiny_bundle)[0])
    decoder = _params(load_bundle(tiny_bundle, "decoder")[0])
    encoder = _params(load_bundle(tiny_bundle, "encoder")[0])
    assert decoder and not any(n.startswith(("encoder.", "converter.")) for n in decoder)
    assert any(n.startswith("lm.layers.") for n in decoder) and decoder < whole
    assert encoder and not any(n.startswith("lm.layers.") for n in encoder) and "lm.embed.weight" in encoder
    assert encoder | decoder == whole
    with pytest.raises(ValueError, match="half"):
        load_bundle(tiny_bundle, "middle")


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_two_halves_recognise_as_the_whole_model_does(tiny_bundle, engine) -> None:
    samples = np.random.default_rng(1).normal(0, 0.1, 16_000 * 2).astype(np.float32)
    whole = AsrCore(tiny_bundle, engine=engine)
    encoder, decoder = AsrCore(tiny_bundle, engine=engine, half="encoder"), AsrCore(tiny_bundle, half="decoder")
    assert decoder.engine is None and encoder.lexicon is None
    assert (encoder.model is None) == (engine == "onnx")  # ONNX needs no torch weights at all
    out, text, _ = whole.encode(samples)
    half_out, half_text, _ = encoder.encode(samples)
    np.testing.assert_allclose(half_out.speech, out.speech, atol=1e-5)
    assert half_text == text
    cfg = BeamConfig(beam_size=3, max_tokens=12, nbest=4, alpha=0.5, prune_k=8, ctc_weight=0.5)
    ids = whole.tok.encode("call mary")
    want = [(h.text, round(h.score, 4)) for h in whole.decode(out.speech, ids, cfg)]
    assert [(h.text, round(h.score, 4)) for h in decoder.decode(half_out.speech, ids, cfg)] == want
    with pytest.raises(RuntimeError, match="encoder half only"):
        encoder.decode(out.speech, ids, cfg)
    with pytest.raises(RuntimeError, match="decoder half only"):
        decoder.encode(samples)


@pytest.mark.weights
def test_the_decoder_half_of_the_shipped_bundle_is_the_smaller_part() -> None:
    """The decoder service leaves the audio encoder's weights unread (figures: services/bench.py)."""
    total = sum(p.numel() for p in load_bundle(DEFAULT_BUNDLE)[0].parameters())
    decoder = sum(p.numel() for p in load_bundle(DEFAULT_BUNDLE, "decoder")[0].parameters())
    assert decoder < total


def test_a_decode_writes_at_most_20_tokens_a_second_of_its_audio(tiny_bundle) -> None:
    # a runaway loop on a short window stops after what its audio can hold, not what the padded window can
    from shared.recognition import OutputConfig

    core = AsrCore(tiny_bundle, half="decoder")
    seen: list[int] = []
    assert core.strategy is not None
    core.strategy.decode = lambda speech, ids, text, cfg, *rest: seen.append(cfg.max_tokens) or []  # type: ignore[method-assign]
    cfg = BeamConfig(beam_size=3, max_tokens=448, nbest=1, alpha=0.5, prune_k=8, ctc_weight=0.0)
    speech = np.zeros((500, 8), np.float32)  # 500 positions (a 10 s window); the search above never reads them
    core.decode(speech, [], cfg, output=OutputConfig(audio_s=0.3))
    core.decode(speech, [], cfg)  # no audio length: the window's positions bound it
    assert seen == [10 + 6, min(448, 10 + 500)]
