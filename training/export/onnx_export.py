"""Export encoder + converter (+ CTC head) to ONNX with dynamic batch and length.

    python -m training.export.onnx_export --bundle bundles/default
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from shared.bundle import load_bundle
from shared.model.asr import EncoderWithConverter

OPSET = 17


def export_onnx(bundle_dir: Path) -> Path:
    model, _, _ = load_bundle(bundle_dir)
    module = EncoderWithConverter(model).eval()
    feats = torch.randn(1, 300, model.cfg.encoder.n_mels)
    lengths = torch.tensor([300])
    out = bundle_dir / "encoder.onnx"
    torch.onnx.export(
        module,
        (feats, lengths),
        str(out),
        input_names=["feats", "lengths"],
        output_names=["speech", "speech_lens", "ctc_logp"],
        dynamic_axes={"feats": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                      "speech": {0: "batch", 1: "speech_frames"}, "speech_lens": {0: "batch"},
                      "ctc_logp": {0: "batch", 1: "encoder_frames"}},
        opset_version=OPSET,
        dynamo=False,
    )
    return out


def parity(bundle_dir: Path, seconds: tuple[float, ...] = (1.0, 4.5, 11.0)) -> float:
    """Largest absolute difference between torch and ONNX Runtime speech embeddings."""
    from shared.engines import OnnxEncoder, TorchEncoder

    model, _, _ = load_bundle(bundle_dir)
    torch_enc, onnx_enc = TorchEncoder(model), OnnxEncoder(bundle_dir / "encoder.onnx")
    worst = 0.0
    rng = np.random.default_rng(0)
    for s in seconds:
        feats = rng.standard_normal((int(s * 100), model.cfg.encoder.n_mels)).astype(np.float32)
        a, b = torch_enc.encode(feats), onnx_enc.encode(feats)
        worst = max(worst, float(np.abs(a.speech - b.speech).max()), float(np.abs(a.ctc_logp - b.ctc_logp).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    args = ap.parse_args()
    path = export_onnx(args.bundle)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); max |torch - onnx| = {parity(args.bundle):.2e}")


if __name__ == "__main__":
    main()
