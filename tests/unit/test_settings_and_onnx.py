import subprocess
import sys

import grpc
import numpy as np
import pytest
import torch

from seedasr.v1 import internal_pb2
from shared.bundle import load_bundle
from shared.engines import OnnxEncoder, TorchEncoder
from tests.conftest import ROOT


def test_bad_setting_fails_fast_with_its_name() -> None:
    proc = subprocess.run([sys.executable, "-c", "from shared.settings import load_settings; load_settings()"],
                          cwd=ROOT, env={"SEEDASR_BEAM_SIZE": "lots", "PATH": "/usr/bin"}, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "SEEDASR_BEAM_SIZE" in proc.stderr


def test_context_prune_k_setting_reaches_the_beam_config() -> None:
    from seedasr.v1 import common_pb2
    from services.decoder.config import beam_config
    from shared.decoding import decoding_for
    from shared.settings import load_settings

    request = common_pb2.RecognitionConfig(beam_size=4)
    assert beam_config(request, decoding_for(load_settings())).prune_k == 128
    assert beam_config(request, decoding_for(load_settings(context_prune_k=32))).prune_k == 32
    small_k = load_settings(context_prune_k=8)
    assert beam_config(common_pb2.RecognitionConfig(beam_size=12), decoding_for(small_k)).prune_k == 24  # >= 2 * beam


@pytest.mark.parametrize("frames", [37, 300, 1234])
def test_onnx_encoder_matches_torch(tiny_bundle, frames: int) -> None:
    model, _, _ = load_bundle(tiny_bundle)
    feats = np.random.default_rng(frames).standard_normal((frames, model.cfg.encoder.n_mels)).astype(np.float32)
    a = TorchEncoder(model).encode(feats)
    b = OnnxEncoder(tiny_bundle / "encoder.onnx").encode(feats)
    assert a.speech.shape == b.speech.shape
    np.testing.assert_allclose(a.speech, b.speech, atol=1e-4)
    np.testing.assert_allclose(a.ctc_logp, b.ctc_logp, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="TensorRT parity needs an NVIDIA GPU")
def test_tensorrt_encoder_matches_torch(tiny_bundle, tmp_path) -> None:
    from shared.engines import TensorRTEncoder
    from training.export.tensorrt_build import build_engine

    plan = build_engine(tiny_bundle / "encoder.onnx", tmp_path / "encoder.plan", fp16=False)
    model, _, _ = load_bundle(tiny_bundle)
    feats = np.random.default_rng(0).standard_normal((300, model.cfg.encoder.n_mels)).astype(np.float32)
    np.testing.assert_allclose(TorchEncoder(model).encode(feats).speech, TensorRTEncoder(plan).encode(feats).speech,
                               atol=1e-3)


def test_int8_encoder_is_near_the_fp32_one_and_the_setting_picks_it(tiny_bundle, tmp_path) -> None:
    """encoder.int8.onnx (onnx_export --int8): per-channel int8 weights keep the speech embeddings close to the fp32
    engine's; the encoder_int8 setting runs it, and says how to make it when it is missing."""
    import shutil

    import onnx

    from shared.decoding import decoding_for
    from shared.engines import make_encoder_engine
    from shared.settings import load_settings
    from training.export.onnx_export import INT8_FILE, int8_parity, quantize_encoder

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    with pytest.raises(FileNotFoundError, match="--int8"):
        make_encoder_engine("onnx", None, bundle, int8=True)
    quantize_encoder(bundle)
    assert (bundle / INT8_FILE).stat().st_size < (bundle / "encoder.onnx").stat().st_size
    assert int8_parity(bundle) > 0.98
    engine = make_encoder_engine("onnx", None, bundle, int8=True)
    assert isinstance(engine, OnnxEncoder)
    ops = {node.op_type for node in onnx.load(str(bundle / INT8_FILE)).graph.node}
    assert "DynamicQuantizeLinear" in ops or "MatMulInteger" in ops
    assert decoding_for(load_settings(model=str(bundle), encoder_int8=True)).encoder_int8


def test_int8_encoder_keeps_the_first_blocks_attention_fp32_and_names_its_recipe(tiny_bundle, tmp_path) -> None:
    """The first block's attention projections stay fp32, every other weighted product is int8, and the file carries
    the recipe that scripts/bundle.sh checks for (an int8 file of an older recipe is made again)."""
    import shutil

    import onnx

    from training.export.onnx_export import FIRST_BLOCK, INT8_FILE, INT8_RECIPE, int8_nodes, quantize_encoder

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    fp32 = onnx.load(str(bundle / "encoder.onnx")).graph
    quantized = int8_nodes(fp32)
    first_attention = [n.name for n in fp32.node if n.op_type == "MatMul" and n.name.startswith(FIRST_BLOCK)
                       and "/ff" not in n.name and any(i in {w.name for w in fp32.initializer} for i in n.input)]
    assert first_attention and not set(first_attention) & set(quantized)
    assert any(n.startswith(FIRST_BLOCK) for n in quantized) and any("/layers.1/" in n for n in quantized)
    quantize_encoder(bundle)
    model = onnx.load(str(bundle / INT8_FILE))
    assert {p.key: p.value for p in model.metadata_props}["seedasr_int8_recipe"] == INT8_RECIPE
    assert {n.name for n in model.graph.node} >= set(first_attention)  # still plain MatMul nodes, by their names
    assert INT8_RECIPE.split(":")[0] in (ROOT / "scripts" / "bundle.sh").read_text()


def test_a_cancelled_onnx_encode_stops_and_a_live_one_is_unchanged(tiny_bundle) -> None:
    """An interim nobody waits for any more stops its encode (ONNX Runtime's terminate flag) instead of taking the
    cores from the final; a caller still there gets what a plain call gets."""
    from shared.engines import EncodeCancelled

    encoder = OnnxEncoder(tiny_bundle / "encoder.onnx")
    feats = np.random.default_rng(0).standard_normal((300, 80)).astype(np.float32)
    with pytest.raises(EncodeCancelled):
        encoder.encode(feats, cancelled=lambda: True)
    plain, watched = encoder.encode(feats), encoder.encode(feats, cancelled=lambda: False)
    np.testing.assert_array_equal(plain.speech, watched.speech)


def test_the_encoder_service_answers_cancelled_to_a_caller_that_went_away(tiny_bundle) -> None:
    from services.encoder.server import EncoderService
    from shared.bus import BusError, CallContext
    from shared.recognition import AsrCore

    service = EncoderService(AsrCore(tiny_bundle, engine="onnx", half="encoder"))
    request = internal_pb2.EncodeRequest(pcm16=b"\1\0" * 16_000)
    assert service.Encode(request, CallContext(5.0)).speech.shape  # type: ignore[arg-type]
    with pytest.raises(BusError) as gone:
        service.Encode(request, CallContext(5.0, parent_active=lambda: False))  # type: ignore[arg-type]
    assert gone.value.code() == grpc.StatusCode.CANCELLED
