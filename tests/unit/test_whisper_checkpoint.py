"""A user's own Whisper checkpoint becomes a bundle: an OpenAI .pt reads into the same tensors as CTranslate2's
folder of the same weights, any size's configs come from its weights, bad input gets a clear error, identical
upcycled experts are stored once, and `seedasr bundle build --from` on the base files recognises as the shipped
bundle does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from shared.bundle_store import DEFAULT_BUNDLE
from shared.decoding import DECODING_KEY, bundle_decoding
from shared.model.asr import SeedASR
from shared.model.whisper_checkpoint import CheckpointError, configs_from_tensors, openai_to_ct2, read_checkpoint
from shared.model.whisper_decoder import WhisperDecoderConfig
from shared.model.whisper_encoder import WhisperEncoderConfig
from tests.conftest import ROOT

SHIPPED_DECODING = {DECODING_KEY: bundle_decoding(DEFAULT_BUNDLE)}  # what a bundle of its family states

TINY_ENC = WhisperEncoderConfig(n_mels=16, d_model=32, n_heads=2, n_layers=2, max_frames=64)
TINY_DEC = WhisperDecoderConfig(vocab_size=64, d_model=32, n_heads=4, n_layers=3, max_tokens=24)


def openai_state(model: SeedASR) -> dict[str, torch.Tensor]:
    """model's weights under OpenAI Whisper's own names (whisper/model.py): separate query, key (no bias) and value,
    `blocks`, `attn_ln`, `mlp.0`, `ln_post`... written here from OpenAI's layout, not from our converter."""
    s = {k: v.detach().clone() for k, v in model.state_dict().items()}
    out: dict[str, torch.Tensor] = {}

    def split(dst: str, weight: torch.Tensor, bias: torch.Tensor, names: tuple[str, ...]) -> None:
        for name, w, b in zip(names, weight.chunk(len(names)), bias.chunk(len(names))):
            out[f"{dst}.{name}.weight"] = w
            if name != "key":  # Whisper's keys have no bias
                out[f"{dst}.{name}.bias"] = b

    def copy(dst: str, src: str) -> None:
        out[f"{dst}.weight"], out[f"{dst}.bias"] = s[f"{src}.weight"], s[f"{src}.bias"]

    for conv in ("conv1", "conv2"):
        copy(f"encoder.{conv}", f"encoder.{conv}")
    out["encoder.positional_embedding"] = s["encoder.positions"]
    copy("encoder.ln_post", "encoder.norm")
    for i in range(TINY_ENC.n_layers):
        src, dst = f"encoder.layers.{i}", f"encoder.blocks.{i}"
        split(f"{dst}.attn", s[f"{src}.qkv.weight"], s[f"{src}.qkv.bias"], ("query", "key", "value"))
        copy(f"{dst}.attn.out", f"{src}.attn_out")
        copy(f"{dst}.attn_ln", f"{src}.attn_norm")
        copy(f"{dst}.mlp.0", f"{src}.ff.0")
        copy(f"{dst}.mlp.2", f"{src}.ff.2")
        copy(f"{dst}.mlp_ln", f"{src}.ff_norm")
    out["decoder.token_embedding.weight"] = s["lm.embed.weight"]
    out["decoder.positional_embedding"] = s["lm.positions"]
    copy("decoder.ln", "lm.norm")
    for i in range(TINY_DEC.n_layers):
        src, dst = f"lm.layers.{i}", f"decoder.blocks.{i}"
        split(f"{dst}.attn", s[f"{src}.qkv.weight"], s[f"{src}.qkv.bias"], ("query", "key", "value"))
        copy(f"{dst}.attn.out", f"{src}.self_out")
        copy(f"{dst}.attn_ln", f"{src}.self_norm")
        copy(f"{dst}.cross_attn.query", f"{src}.cross_q")
        split(f"{dst}.cross_attn", s[f"{src}.cross_kv.weight"], s[f"{src}.cross_kv.bias"], ("key", "value"))
        copy(f"{dst}.cross_attn.out", f"{src}.cross_out")
        copy(f"{dst}.cross_attn_ln", f"{src}.cross_norm")
        copy(f"{dst}.mlp.0", f"{src}.ff.0")
        copy(f"{dst}.mlp.2", f"{src}.ff.2")
        copy(f"{dst}.mlp_ln", f"{src}.ff_norm")
    return out


def tiny_model(experts: int = 1) -> SeedASR:
    from training.export.whisper_bundle import whisper_config

    torch.manual_seed(0)
    model = SeedASR.build(whisper_config(experts, 2, 0.0, TINY_ENC, TINY_DEC)).eval()
    with torch.no_grad():  # keys' biases are zero in Whisper (the converter writes zeros for them)
        for layer in [*model.encoder.layers, *model.lm.layers]:  # type: ignore[union-attr]
            layer.qkv.bias[TINY_ENC.d_model : 2 * TINY_ENC.d_model] = 0
        for layer in model.lm.layers:  # type: ignore[union-attr]
            layer.cross_kv.bias[: TINY_DEC.d_model] = 0
    return model


def logits(model: SeedASR) -> torch.Tensor:
    torch.manual_seed(1)
    feats = torch.randn(1, 40, TINY_ENC.n_mels)
    with torch.no_grad():
        audio, _ = model.encoder(feats, torch.tensor([40]))
        return model.lm(torch.tensor([[1, 5, 9, 3]]), audio)


def test_an_openai_checkpoint_reads_into_the_model_it_came_from(tmp_path: Path) -> None:
    from training.export.whisper_bundle import load_weights, whisper_config

    original = tiny_model()
    state = {k: v.numpy() for k, v in openai_state(original).items()}
    tensors = openai_to_ct2(state, TINY_ENC.n_heads, TINY_DEC.n_heads)
    enc, dec = configs_from_tensors(tensors)
    assert (enc.n_mels, enc.d_model, enc.n_heads, enc.n_layers) == (16, 32, 2, 2)
    assert (dec.vocab_size, dec.n_heads, dec.n_layers, dec.max_tokens) == (64, 4, 3, 24)
    enc.max_frames = TINY_ENC.max_frames
    rebuilt = SeedASR.build(whisper_config(1, 1, 0.0, enc, dec))
    load_weights(rebuilt, tensors)
    torch.testing.assert_close(logits(rebuilt), logits(original))


def test_a_saved_bundle_stores_copied_experts_once_and_loads_them_back(tmp_path: Path) -> None:
    from safetensors import safe_open

    from shared.bundle import load_bundle, save_bundle

    model = tiny_model(experts=4)
    for layer in model.lm.layers:  # type: ignore[union-attr]
        for expert in list(layer.ff.experts)[1:]:
            expert.load_state_dict(layer.ff.experts[0].state_dict())
    with torch.no_grad():  # one expert trained apart: it must be stored
        model.lm.layers[0].ff.experts[2][0].weight.add_(0.5)  # type: ignore[index]
    save_bundle(model, ROOT / "bundles" / "tiny" / "tokenizer.model", tmp_path, "card", SHIPPED_DECODING)
    with safe_open(str(tmp_path / "model.safetensors"), framework="pt") as f:
        experts = {k.split(".ff.experts.")[1].split(".")[0] for k in f.keys() if ".ff.experts." in k}
        stored = [k for k in f.keys() if ".ff.experts.2." in k]
    assert experts == {"0", "2"} and all(k.startswith("lm.layers.0.") for k in stored)
    loaded = load_bundle(tmp_path)[0]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value.half().float() if value.is_floating_point() else value)


def test_bad_checkpoints_get_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        read_checkpoint(tmp_path / "nothing")
    with pytest.raises(CheckpointError, match="no model.bin"):
        read_checkpoint(tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        read_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not an OpenAI Whisper checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    state = openai_state(tiny_model())  # 64 tokens: fewer than a multilingual model's
    torch.save({"dims": {"n_audio_head": 2, "n_text_head": 4}, "model_state_dict": state}, tmp_path / "en.pt")
    with pytest.raises(CheckpointError, match="English-only"):
        read_checkpoint(tmp_path / "en.pt")
    del state["decoder.ln.weight"]
    torch.save({"dims": {"n_audio_head": 2, "n_text_head": 4}, "model_state_dict": state}, tmp_path / "cut.pt")
    with pytest.raises(CheckpointError, match="decoder.ln.weight"):
        read_checkpoint(tmp_path / "cut.pt")


def test_int8_ctranslate2_weights_are_scaled_back() -> None:
    from shared.model.whisper_checkpoint import dequantize

    weight = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    scale = 127 / np.abs(weight).max(axis=1)
    got = dequantize({"w/weight": np.round(weight * scale[:, None]).astype(np.int8), "w/weight_scale": scale})
    assert set(got) == {"w/weight"}
    np.testing.assert_allclose(got["w/weight"], weight, atol=0.01)


@pytest.mark.weights
def test_the_base_checkpoint_as_openai_pt_reads_as_its_ctranslate2_folder(tmp_path: Path) -> None:
    """The base weights written as OpenAI's .pt (a torch model of them, renamed by OpenAI's layout) read into the
    CTranslate2 folder's tensors."""
    from shared.model import whisper_weights as ww
    from training.export.whisper_bundle import load_weights, whisper_config

    folder = read_checkpoint(ww.ct2_model_dir())
    model = SeedASR.build(whisper_config(1, 1, 0.0, folder.encoder, folder.decoder))
    load_weights(model, folder.tensors)
    global TINY_ENC, TINY_DEC  # openai_state walks the layer counts of these
    saved = TINY_ENC, TINY_DEC
    TINY_ENC, TINY_DEC = folder.encoder, folder.decoder
    try:
        state = openai_state(model)
    finally:
        TINY_ENC, TINY_DEC = saved
    state["encoder.positional_embedding"] = state["encoder.positional_embedding"][:1500]
    torch.save({"dims": {"n_audio_head": 8, "n_text_head": 8}, "model_state_dict": {k: v.half() for k, v in state.items()}},
               tmp_path / "base.pt")
    pt = read_checkpoint(tmp_path / "base.pt")
    assert pt.format == "openai" and pt.encoder == folder.encoder and pt.decoder == folder.decoder
    assert pt.tokenizer_json == ww.ct2_model_dir() / "tokenizer.json"  # the multilingual tokenizer of every size
    assert set(pt.tensors) == set(folder.tensors) - {k for k in folder.tensors if folder.tensors[k].ndim == 0
                                                     and "num_heads" not in k}
    for name, value in pt.tensors.items():
        np.testing.assert_array_equal(value.astype(np.float32), folder.tensors[name].astype(np.float32), err_msg=name)


@pytest.mark.slow
def test_bundle_build_from_the_base_folder_recognises_as_the_shipped_bundle(tmp_path: Path) -> None:
    from services.cli import main as cli
    from shared.model import whisper_weights as ww

    out = tmp_path / "mine"
    assert cli(["bundle", "build", "--from", str(ww.ct2_model_dir()), "--dir", str(out)]) == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["source"]["sha256"] == ww.MODEL_SHA256 and meta["source"]["format"] == "ctranslate2"
    assert len(meta["languages"]) == 99 and len(meta["alignment_heads"]) == 8
    assert "licence: MIT" in (out / "MODEL_CARD.md").read_text()
    assert meta["decoding"] == json.loads((ROOT / "bundles" / "default" / "config.json").read_text())["decoding"]
    assert cli(["bundle", "verify", "--dir", str(out)]) == 0
    samples = sorted(str(p) for p in (ROOT / "samples").rglob("*.wav"))  # English and Mandarin
    texts = [subprocess.run([sys.executable, "-m", "services.cli", "transcribe", "--model", str(b), "--show-language",
                             *samples], capture_output=True, text=True, check=True, timeout=300).stdout
             for b in (out, ROOT / "bundles" / "default")]
    assert texts[0] == texts[1] and "Street" in texts[0] and "\tzh\t" in texts[0]


def test_bundle_build_refuses_without_a_source_or_folder(capsys: pytest.CaptureFixture[str]) -> None:
    from services.cli import EXIT_BAD_INPUT
    from services.cli import main as cli

    assert cli(["bundle", "build", "--dir", "x"]) == EXIT_BAD_INPUT
    assert cli(["bundle", "build", "--from", "y"]) == EXIT_BAD_INPUT
    assert "--from" in capsys.readouterr().err
