"""Build a TensorRT engine (encoder.plan) from encoder.onnx on an NVIDIA GPU.

    python -m training.export.tensorrt_build --bundle bundles/default [--fp16]

Optimisation profile: batch 1-4, 50 to 6000 fbank frames (0.5 s to 60 s, the gateway's window).
The encoder service picks the plan automatically on a machine with a GPU (SEEDASR_ENGINE=auto).
"""

from __future__ import annotations

import argparse
from pathlib import Path

MIN_FRAMES, OPT_FRAMES, MAX_FRAMES = 50, 1000, 6000


def build_engine(onnx_path: Path, out: Path, fp16: bool = True, n_mels: int = 80) -> Path:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT cannot parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 2 << 30)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("feats", (1, MIN_FRAMES, n_mels), (1, OPT_FRAMES, n_mels), (4, MAX_FRAMES, n_mels))
    profile.set_shape("lengths", (1,), (1,), (4,))
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError("TensorRT engine build failed")
    out.write_bytes(bytes(plan))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--fp16", action="store_true")
    args = ap.parse_args()
    out = build_engine(args.bundle / "encoder.onnx", args.bundle / "encoder.plan", args.fp16)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
