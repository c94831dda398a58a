"""Test-time vocal tract length normalisation: warped filterbanks, batched encoding of the warps, and the
choice of the most confident one (shared/features.py, shared/engines.py, shared/recognition.py)."""

import subprocess
import sys

import numpy as np
import pytest

from shared.bundle import load_bundle
from shared.engines import OnnxEncoder, TorchEncoder
from shared.features import FbankConfig, fbank, mel_filters, normalize, warped_fbanks
from shared.recognition import AsrCore, most_confident
from tests.conftest import ROOT, tone


def _centre_hz(filters: np.ndarray, cfg: FbankConfig) -> np.ndarray:
    return filters.argmax(1) * cfg.sample_rate / cfg.n_fft


def test_warp_one_is_the_plain_filterbank_and_others_scale_the_low_band() -> None:
    cfg = FbankConfig()
    x = tone(0.5)
    np.testing.assert_array_equal(warped_fbanks(x, [1.0])[0], fbank(x))
    plain = _centre_hz(mel_filters(cfg), cfg)
    for warp in (0.88, 1.12):
        filters = mel_filters(FbankConfig(warp=warp))
        centres = _centre_hz(filters, cfg)
        low = (plain > 500) & (plain < 4000)  # far from the first FFT bins and below the knee
        np.testing.assert_allclose(centres[low] / plain[low], warp, rtol=0.08)
        assert centres.max() <= cfg.f_max and (filters.sum(1) > 0).all()  # no filter leaves the band or empties


def test_batched_encoding_matches_one_at_a_time(tiny_bundle) -> None:
    model, _, _ = load_bundle(tiny_bundle)
    feats = np.stack([normalize(f) for f in warped_fbanks(tone(1.3), [0.9, 1.0, 1.1])])
    for engine in (TorchEncoder(model), OnnxEncoder(tiny_bundle / "encoder.onnx")):
        batch = engine.encode_batch(feats)
        for row, out in zip(feats, batch):
            single = engine.encode(row)
            np.testing.assert_allclose(out.speech, single.speech, atol=1e-4)
            np.testing.assert_allclose(out.ctc_logp, single.ctc_logp, atol=1e-4)


def test_encode_keeps_the_warp_with_the_surest_ctc_posteriors(tiny_bundle) -> None:
    warps = (0.9, 1.0, 1.1)
    x = tone(1.3, freq=330.0)
    core = AsrCore(tiny_bundle, engine="onnx", warps=warps)
    out, _, _ = core.encode(x)
    singles = [AsrCore(tiny_bundle, engine="onnx", warps=(w,)).encode(x)[0] for w in warps]
    entropies = [-(np.exp(o.ctc_logp) * o.ctc_logp).sum(-1).mean() for o in singles]
    chosen = int(np.argmin(entropies))
    assert most_confident(singles) == chosen
    np.testing.assert_allclose(out.speech, singles[chosen].speech, atol=1e-4)
    with pytest.raises(ValueError, match="warps"):
        AsrCore(tiny_bundle, warps=())


@pytest.mark.parametrize("value", ["0.3", "1,abc", "1;2", ""])
def test_bad_warps_setting_fails_fast(value: str) -> None:
    proc = subprocess.run([sys.executable, "-c", "from shared.settings import load_settings; load_settings()"],
                          cwd=ROOT, env={"SEEDASR_ENCODER_WARPS": value, "PATH": "/usr/bin"}, capture_output=True,
                          text=True)
    assert proc.returncode == 2, proc.stderr
    assert "SEEDASR_ENCODER_WARPS" in proc.stderr


def test_warps_setting_reaches_the_core() -> None:
    from shared.decoding import decoding_for
    from shared.settings import load_settings

    assert decoding_for(load_settings(encoder_warps="1")).warps == (1.0,)
    assert decoding_for(load_settings(encoder_warps="0.9, 1 ,1.1")).warps == (0.9, 1.0, 1.1)
