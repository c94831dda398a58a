"""Tuning only a pretrained encoder's top blocks (recipe encoder_tuned_layers): the stream cached below them, run
through the blocks above, gives what the whole encoder gives; only those blocks and the final norm train; a
bundle stores only the encoder tensors that training changed and loads back the tuned encoder."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from shared.bundle_store import LUISE_BUNDLE
from shared.decoding import DECODING_KEY, bundle_decoding
from shared.model.asr import ASRConfig, SeedASR
from shared.model.converter import ConverterConfig
from shared.model.moe_lm import LMConfig
from shared.model.whisper_encoder import WhisperEncoder, WhisperEncoderConfig
from tests.conftest import tone
from training.common import (
    EncoderOutputCache,
    FeatureCache,
    encoder_trainable,
    feature_batches,
    speech_of,
    training_cache,
    tuned_encoder_start,
)

LUISE_DECODING = {DECODING_KEY: bundle_decoding(LUISE_BUNDLE)}  # what a bundle of its family states

TINY = WhisperEncoderConfig(d_model=32, n_heads=2, n_layers=3, max_frames=600)


def tiny_model() -> SeedASR:
    torch.manual_seed(0)
    cfg = ASRConfig(encoder=TINY, encoder_type="whisper", converter=ConverterConfig(d_in=32, d_out=32, splice=4),
                    lm=LMConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=2, ff_hidden=64))
    return SeedASR.build(cfg).eval()


def recipe(work: Path, manifest: Path, tuned: int, lr_scale: float = 0.1) -> SimpleNamespace:
    return SimpleNamespace(work_dir=work, train_manifest=manifest, encoder_type="whisper", encoder_lr_scale=lr_scale,
                           encoder_tuned_layers=tuned)


@pytest.mark.parametrize("start", [0, 1, 3])
def test_upper_of_lower_is_the_whole_encoder(start: int) -> None:
    enc = WhisperEncoder(TINY).eval()
    torch.manual_seed(1)
    feats, lens = torch.randn(3, 90, 80), torch.tensor([90, 41, 7])
    with torch.no_grad():
        whole, whole_lens = enc(feats, lens)
        hidden, hidden_lens = enc.lower(feats, lens, start)
        top, top_lens = enc.upper(hidden, hidden_lens, start)
    assert torch.equal(whole_lens, top_lens)
    torch.testing.assert_close(top, whole)


def test_only_the_top_blocks_train_from_the_cached_stream(tmp_path: Path) -> None:
    rows = []
    for i, seconds in enumerate([1.1, 0.5, 1.6]):
        wav = tmp_path / f"{i}.wav"
        sf.write(wav, tone(seconds, freq=170.0 + 50 * i), 16_000)
        rows.append({"audio": str(wav), "text": "x", "duration": seconds})
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    model = tiny_model()
    r = recipe(tmp_path / "work", manifest, tuned=1)
    assert tuned_encoder_start(r, model) == 2
    trained = {id(p) for p in encoder_trainable(r, model)}
    names = {n for n, p in model.encoder.named_parameters() if id(p) in trained}
    assert names and all(n.startswith(("layers.2.", "norm.")) for n in names)
    assert encoder_trainable(recipe(tmp_path, manifest, tuned=1, lr_scale=0.0), model) == []
    assert tuned_encoder_start(recipe(tmp_path, manifest, tuned=0), model) is None  # lr > 0, no tuned count: all train
    with pytest.raises(SystemExit, match="has 3 blocks"):
        tuned_encoder_start(recipe(tmp_path, manifest, tuned=4), model)

    cache = training_cache(r, model)
    assert isinstance(cache, EncoderOutputCache) and cache.resume_at == 2 and cache.freq_masks == 0
    assert (tmp_path / "work" / "encoder_hidden2.npy").exists()
    features = FeatureCache(manifest, kind="whisper_mel")
    for p in model.encoder.parameters():
        p.requires_grad = id(p) in trained
    for batch in feature_batches(cache, 10_000, random.Random(0), augment=False):
        speech, speech_lens = speech_of(model, batch, cache)
        for k, i in enumerate(batch.index):  # the cached path equals the whole model on that utterance's features
            feats = torch.from_numpy(features.feats(i))[None]
            with torch.no_grad():
                _, alone, alone_lens, _ = model.encode(feats, torch.tensor([len(feats[0])]))
            assert int(speech_lens[k]) == int(alone_lens[0])
            torch.testing.assert_close(speech[k, : int(alone_lens[0])], alone[0], atol=2e-2, rtol=2e-2)
        speech.sum().backward()
    grads = {n for n, p in model.encoder.named_parameters() if p.grad is not None}
    assert grads == names


def test_bundle_keeps_only_the_tuned_encoder_tensors(tmp_path: Path, whisper_base_encoder_weights) -> None:
    from shared.bundle import load_bundle, save_bundle
    from shared.model.whisper_encoder import load_ct2_encoder
    from shared.model.whisper_weights import MODEL_SHA256
    from training.init_from_bundle import init_from_bundle
    from training.recipe import model_config
    from training.tiny_bundle import build_tiny_bundle

    tiny = build_tiny_bundle(tmp_path / "tiny")  # a tokenizer to save with
    _, tok, _ = load_bundle(tiny)
    model = SeedASR.build(model_config(tok.vocab_size, "whisper", 1)).eval()
    assert isinstance(model.encoder, WhisperEncoder)
    load_ct2_encoder(model.encoder, whisper_base_encoder_weights)
    with torch.no_grad():  # what tuning the top block and the final norm leaves
        model.encoder.layers[5].ff[0].weight.add_(0.01)
        model.encoder.norm.bias.add_(0.02)
    bundle = tmp_path / "bundle"
    save_bundle(model, tiny / "tokenizer.model", bundle, "card", LUISE_DECODING, from_package=True)
    stored = {k for k in load_file(str(bundle / "model.safetensors")) if k.startswith("encoder.")}
    assert stored == {"encoder.layers.5.ff.0.weight", "encoder.norm.bias"}
    loaded, _, meta = load_bundle(bundle)
    assert "encoder_weights" in meta
    for (name, a), b in zip(loaded.encoder.state_dict().items(), model.encoder.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3, msg=name)  # float16 on disk

    # a run continued from it starts from the tuned encoder, and its model card still names the package
    init_from_bundle(bundle, tmp_path / "work")
    init = torch.load(tmp_path / "work" / "init.pt")
    torch.testing.assert_close(init["encoder.norm.bias"], loaded.encoder.norm.bias)
    info = json.loads((tmp_path / "work" / "init.json").read_text())
    assert info["encoder"]["model_bin_sha256"] == MODEL_SHA256 and info["encoder"]["licence"].startswith("MIT")
