"""Export encoder + converter (+ CTC head) to ONNX with dynamic batch and length, and (--int8) an int8 copy.

    python -m training.export.onnx_export --bundle bundles/default          # encoder.onnx
    python -m training.export.onnx_export --bundle bundles/default --int8   # encoder.int8.onnx (from encoder.onnx)

The int8 copy (encoder.int8.onnx, read when the `encoder_int8` decoding setting is on) is ONNX Runtime's dynamic
quantization of the matrix products that have a weight, per output channel: per-tensor weights put Whisper's
encoder further off (cosine 0.984 against 0.991 to the fp32 output, flite slt audio), and the attention products
(both sides activations) stay fp32. So do the first block's attention projections: they read the
convolutional front end's output, and int8 there was most of the int8 encoder's error (mean cosine to fp32 on 40 dev
utterances 0.986 with them int8, 0.994 without; pink-noise WER 43.8 against 40.3%, fp32 40.2%) for 5% of its time.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

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


INT8_FILE = "encoder.int8.onnx"
# Written into the int8 file's metadata; scripts/bundle.sh makes the file again when it lacks this (an older recipe).
INT8_RECIPE = "seedasr-int8-v2: per-channel weights, first block's attention fp32"
FIRST_BLOCK = "/encoder/layers.0/"


def int8_nodes(graph: Any) -> list[str]:
    """The matrix products of an ONNX encoder graph that the int8 copy quantizes: every one with a weight, but the
    first block's attention (its feed-forward nodes, "/ff" in the name, are quantized; Whisper's and our conformer's
    exports name them so)."""
    weights = {init.name for init in graph.initializer}
    weighted = [n.name for n in graph.node if n.op_type in ("MatMul", "Gemm") and any(i in weights for i in n.input)]
    return [name for name in weighted if not (name.startswith(FIRST_BLOCK) and "/ff" not in name)]


def quantize_encoder(bundle_dir: Path) -> Path:
    """bundle_dir/encoder.onnx -> bundle_dir/encoder.int8.onnx (weights int8 per channel, activations per call)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out = bundle_dir / INT8_FILE
    model = onnx.load(str(bundle_dir / "encoder.onnx"))
    onnx.helper.set_model_props(model, {"seedasr_int8_recipe": INT8_RECIPE})  # quantize_dynamic keeps the metadata
    quantize_dynamic(model, str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_quantize=int8_nodes(model.graph))
    return out


def int8_parity(bundle_dir: Path, seconds: float = 4.5) -> float:
    """Cosine similarity of the int8 and fp32 engines' speech embeddings on noise features (1.0: the same)."""
    from shared.engines import OnnxEncoder

    fp32, int8 = OnnxEncoder(bundle_dir / "encoder.onnx"), OnnxEncoder(bundle_dir / INT8_FILE)
    n_mels = int(fp32.session.get_inputs()[0].shape[-1])
    feats = np.random.default_rng(0).standard_normal((int(seconds * 100), n_mels)).astype(np.float32)
    a, b = fp32.encode(feats).speech.ravel(), int8.encode(feats).speech.ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


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
    ap.add_argument("--int8", action="store_true",
                    help=f"write {INT8_FILE} (the encoder_int8 setting reads it) from encoder.onnx, exported first if missing")
    args = ap.parse_args()
    if not args.int8 or not (args.bundle / "encoder.onnx").exists():
        path = export_onnx(args.bundle)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); max |torch - onnx| = {parity(args.bundle):.2e}")
    if args.int8:
        path = quantize_encoder(args.bundle)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB); cosine to fp32 = {int8_parity(args.bundle):.4f}")


if __name__ == "__main__":
    main()
