"""The shipped default bundle: complete, small enough, ONNX matches torch, and its transcripts depend
on the audio (the tests here that use the real model)."""

import json

import numpy as np
import pytest

from shared.bundle import DEFAULT_BUNDLE, load_bundle
from shared.bundle_store import LUISE_BUNDLE
from shared.engines import OnnxEncoder, TorchEncoder
from tests.conftest import ROOT

pytestmark = pytest.mark.weights  # the shipped bundle's weights (fetched by make setup)

MAX_BUNDLE_MB = 50


def test_bundle_is_complete_and_small() -> None:
    meta = json.loads((DEFAULT_BUNDLE / "config.json").read_text())
    # the word list is read by the MoE LM's search only (a `whisper` decoder spells with Whisper's BPE)
    word_list = ("lexicon.txt",) if meta["config"].get("decoder_type", "moe_lm") == "moe_lm" else ()
    for name in ("config.json", "model.safetensors", "tokenizer.model", "encoder.onnx", "MODEL_CARD.md", *word_list):
        assert (DEFAULT_BUNDLE / name).is_file(), name
    # a bundle that pins its encoder in a package gets encoder.onnx from `make setup`: it is not committed
    made_at_setup = {"encoder.onnx"} if "encoder_weights" in meta else set()
    size = sum(p.stat().st_size for p in DEFAULT_BUNDLE.iterdir() if p.name not in made_at_setup) / 1e6
    assert size <= MAX_BUNDLE_MB, f"bundle is {size:.1f} MB"
    card = (DEFAULT_BUNDLE / "MODEL_CARD.md").read_text()
    for section in ("## Model", "## Data", "## Training", "## Evaluation"):
        assert section in card
    assert "slt" in card and "festival" in card  # the reserved voices are named as never trained on


def test_default_onnx_matches_torch() -> None:
    model, _, _ = load_bundle(DEFAULT_BUNDLE)
    feats = np.random.default_rng(1).standard_normal((400, model.cfg.encoder.n_mels)).astype(np.float32)
    a, b = TorchEncoder(model).encode(feats), OnnxEncoder(DEFAULT_BUNDLE / "encoder.onnx").encode(feats)
    np.testing.assert_allclose(a.speech, b.speech, atol=2e-3)


def test_default_model_listens_to_the_audio(settings) -> None:
    """The shipped model's transcripts depend on what was said: a collapsed model (one transcript
    for every input, as the LM-frozen SFT checkpoint produced) fails this."""
    from seedasr.v1 import common_pb2, recognizer_pb2
    from services.app import build_embedded
    from shared.bus import CallContext

    regs, _ = build_embedded(settings.model_copy(update={"model": str(DEFAULT_BUNDLE)}))
    dialogue = json.loads((ROOT / "samples" / "dialogue.json").read_text())
    texts = {}
    for step in dialogue["steps"]:
        if step["role"] == "user":
            req = recognizer_pb2.RecognizeRequest(
                audio=common_pb2.Audio(content=(ROOT / "samples" / step["audio"]).read_bytes()),
                config=common_pb2.RecognitionConfig(disable_context=True))
            texts[step["audio"]] = regs[0].servicer.Recognize(req, CallContext(60)).alternatives[0].text
    assert len(set(texts.values())) == len(texts), texts
    assert all(texts.values()), texts


def test_luise_bundle_decodes_with_its_word_list() -> None:
    from shared.decoding import DecodingDefaults
    from shared.recognition import AsrCore

    lexicon = AsrCore(LUISE_BUNDLE).lexicon
    assert lexicon is not None
    assert {"using", "weather", "height"} <= lexicon.words and "useing" not in lexicon.words
    assert DecodingDefaults.from_bundle(LUISE_BUNDLE).oov_penalty > 0  # on by default
