"""A `whisper` training run starts from Whisper base's encoder and our LUISE bundle's LM and CTC head."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from shared.bundle import BundleError, load_bundle, save_bundle
from shared.bundle_store import LUISE_BUNDLE
from shared.decoding import DECODING_KEY, bundle_decoding
from shared.model.asr import SeedASR
from shared.model.whisper_encoder import WhisperEncoder, load_ct2_encoder
from shared.model.whisper_weights import MODEL_SHA256
from training.recipe import model_config

LUISE_DECODING = {DECODING_KEY: bundle_decoding(LUISE_BUNDLE)}  # what a bundle of its family states


def test_init_takes_the_pretrained_encoder_and_the_bundles_lm(tmp_path: Path, whisper_base_encoder_weights) -> None:
    from training.init_whisper import init_whisper

    weights = whisper_base_encoder_weights
    init_whisper(LUISE_BUNDLE, tmp_path)
    source, tok, _ = load_bundle(LUISE_BUNDLE)
    cfg = model_config(tok.vocab_size, "whisper")
    model = SeedASR.build(cfg)
    model.load_state_dict(torch.load(tmp_path / "init.pt", map_location="cpu"))
    reference = WhisperEncoder(cfg.encoder)
    load_ct2_encoder(reference, weights)
    for (name, a), b in zip(model.encoder.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    for (name, a), b in zip(model.lm.state_dict().items(), source.lm.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert model.frame_s == pytest.approx(source.frame_s)  # the LM reads speech at the rate it was trained on
    assert (tmp_path / "tokenizer.model").read_bytes() == (LUISE_BUNDLE / "tokenizer.model").read_bytes()

    # a bundle of it pins the package file instead of copying the frozen encoder, and loads it back from there
    save_bundle(model, tmp_path / "tokenizer.model", tmp_path / "bundle", "card", LUISE_DECODING, from_package=True)
    assert not [k for k in load_file(str(tmp_path / "bundle" / "model.safetensors")) if k.startswith("encoder.")]
    loaded, _, meta = load_bundle(tmp_path / "bundle")
    assert meta["encoder_weights"]["sha256"] == MODEL_SHA256
    for (name, a), b in zip(loaded.encoder.state_dict().items(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    meta["encoder_weights"]["sha256"] = "0" * 64
    (tmp_path / "bundle" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="wants encoder weights 0000"):
        load_bundle(tmp_path / "bundle")
