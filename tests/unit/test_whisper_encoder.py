"""The `whisper` encoder: a registry choice beside LUISE, read from the installed weights package, equal to
CTranslate2's encoder on the same frames, batched equal to alone, torch equal to ONNX, and served end to end."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from shared.bundle import config_from_dict, config_to_dict, load_bundle
from shared.engines import OnnxEncoder, TorchEncoder
from shared.features import whisper_log_mel
from shared.model.asr import ASRConfig, SeedASR
from shared.model.conformer import ConformerConfig
from shared.model.whisper_encoder import WhisperEncoder, WhisperEncoderConfig, whisper_lengths
from shared.model.whisper_weights import WhisperWeightsError, read_ct2
from tests.conftest import tone

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "dialogue" / "user-1.wav"
TINY = WhisperEncoderConfig(d_model=32, n_heads=2, n_layers=2, max_frames=600)


@pytest.fixture(scope="module")
def tiny_whisper_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.tiny_bundle import build_tiny_bundle

    return build_tiny_bundle(tmp_path_factory.mktemp("tiny-whisper"), encoder_type="whisper")


def assert_batch_reads_each_as_alone(module: Callable[..., Any], lens: list[int], width: int, out_len) -> None:
    """module(x (B, T, width), lengths (B,)) -> (out (B, T', D), out_lens): each row of a padded batch comes out
    as that utterance does alone, and out_len(n) gives its length."""
    torch.manual_seed(0)
    x = torch.zeros(len(lens), max(lens), width)
    for i, n in enumerate(lens):
        x[i, :n] = torch.randn(n, width)
    with torch.no_grad():
        out, out_lens = module(x, torch.tensor(lens))
        for i, n in enumerate(lens):
            alone, alone_len = module(x[i : i + 1, :n], torch.tensor([n]))
            assert int(out_lens[i]) == int(alone_len[0]) == out_len(n)
            torch.testing.assert_close(out[i, : int(alone_len[0])], alone[0], atol=1e-5, rtol=1e-4)


def test_batched_encoding_equals_each_utterance_alone() -> None:
    torch.manual_seed(0)
    enc = WhisperEncoder(TINY).eval()
    assert_batch_reads_each_as_alone(enc, [137, 300, 58], 80, lambda n: (n + 1) // 2)
    assert whisper_lengths(torch.tensor([1, 2, 3, 3000])).tolist() == [1, 1, 2, 1500]


def test_registry_choice_survives_the_bundle_config() -> None:
    cfg = ASRConfig(encoder=TINY, encoder_type="whisper")
    back = config_from_dict(config_to_dict(cfg))
    assert back.encoder_type == "whisper" and back.encoder == TINY
    old = config_to_dict(ASRConfig(encoder=ConformerConfig(d_model=32)))
    old.pop("encoder_type")  # bundles made before the registry
    assert config_from_dict(old).encoder_type == "luise_conformer"
    with pytest.raises(ValueError, match="unknown encoder_type"):
        config_from_dict({**config_to_dict(cfg), "encoder_type": "wav2vec"})
    with pytest.raises(ValueError, match="needs a WhisperEncoderConfig"):
        SeedASR.build(dataclasses.replace(cfg, encoder=ConformerConfig()))


@pytest.mark.parametrize("frames", [50, 431, 2400])
def test_onnx_whisper_encoder_matches_torch(tiny_whisper_bundle: Path, frames: int) -> None:
    model, _, _ = load_bundle(tiny_whisper_bundle)
    feats = np.random.default_rng(frames).standard_normal((frames, 80)).astype(np.float32)
    a = TorchEncoder(model).encode(feats)
    b = OnnxEncoder(tiny_whisper_bundle / "encoder.onnx").encode(feats)
    assert a.speech.shape == b.speech.shape == (-(-((frames + 1) // 2) // 2), 48)
    np.testing.assert_allclose(a.speech, b.speech, atol=1e-4)
    np.testing.assert_allclose(a.ctc_logp, b.ctc_logp, atol=1e-3)


def test_whisper_bundle_recognises_through_the_served_path(tiny_whisper_bundle: Path) -> None:
    from shared.recognition import AsrCore

    core = AsrCore(tiny_whisper_bundle, engine="onnx", warps=(1.0, 1.1))  # warps do not apply to Whisper's mel
    out, _, words = core.encode(tone(2.0))
    assert out.speech.shape[0] == 50  # 200 mel frames -> 100 encoder frames -> 50 LM positions
    assert core.model.frame_s == pytest.approx(0.04)
    assert all(0 <= w.start_s < w.end_s <= 2.0 + 1e-6 for w in words)
    wide, _, _ = core.encode(tone(2.0), window_s=5.0)  # a language's own window (language_windows): 2 s padded to 5
    assert wide.speech.shape[0] == 125


def test_log_mel_matches_faster_whisper() -> None:
    fw = pytest.importorskip("faster_whisper.feature_extractor")
    import soundfile as sf

    x, _ = sf.read(SAMPLE, dtype="float32")
    ours, ref = whisper_log_mel(x), fw.FeatureExtractor()(x, padding=0).T
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-4)


@pytest.mark.weights
def test_pretrained_encoder_matches_ctranslate2() -> None:
    """Our torch encoder with the package's weights against CTranslate2's own Whisper encoder, same frames."""
    ct2 = pytest.importorskip("ctranslate2")
    import soundfile as sf

    from shared.model.whisper_encoder import load_ct2_encoder
    from shared.model.whisper_weights import ct2_model_dir

    try:
        folder = ct2_model_dir()
    except WhisperWeightsError as err:
        pytest.skip(str(err))
    x, _ = sf.read(SAMPLE, dtype="float32")
    mel = whisper_log_mel(x)
    enc = WhisperEncoder(WhisperEncoderConfig()).eval()
    load_ct2_encoder(enc, read_ct2(folder / "model.bin", "encoder/"))
    with torch.no_grad():
        ours, _ = enc(torch.from_numpy(mel[None]), torch.tensor([len(mel)]))
    theirs = ct2.models.Whisper(str(folder), device="cpu", compute_type="float32").encode(
        ct2.StorageView.from_array(np.ascontiguousarray(mel.T[None])))
    np.testing.assert_allclose(ours[0].numpy(), np.array(theirs)[0], atol=1e-2)
    assert float(np.abs(np.array(theirs)).mean()) > 0.1  # not two zero tensors agreeing


def test_ct2_reader_checks_its_format(tmp_path: Path) -> None:
    def name(text: str) -> bytes:
        return struct.pack("H", len(text) + 1) + text.encode() + b"\0"

    body = name("WhisperSpec") + struct.pack("I", 3) + struct.pack("I", 1)
    body += name("encoder/x") + struct.pack("B", 2) + struct.pack("II", 2, 3) + struct.pack("B", 0) + struct.pack("I", 24)
    body += np.arange(6, dtype=np.float32).tobytes() + struct.pack("I", 0)
    good, bad = tmp_path / "good.bin", tmp_path / "bad.bin"
    good.write_bytes(struct.pack("I", 6) + body)
    bad.write_bytes(struct.pack("I", 5) + body)
    np.testing.assert_array_equal(read_ct2(good)["encoder/x"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert read_ct2(good, "decoder/") == {}
    with pytest.raises(WhisperWeightsError, match="binary version 5"):
        read_ct2(bad)


def test_converter_blocks_read_each_utterance_of_a_batch_as_alone() -> None:
    """The converter's transformer blocks (a frozen encoder's trainable context) hide the padding of a
    batch; without blocks the converter is the paper's splice + projection, with the same weights."""
    from shared.model.converter import Converter, ConverterConfig

    torch.manual_seed(0)
    conv = Converter(ConverterConfig(d_in=32, d_out=48, splice=4, n_layers=2, n_heads=2)).eval()
    assert_batch_reads_each_as_alone(conv, [37, 120, 9], 32, lambda n: -(-n // 4))
    plain = Converter(ConverterConfig(d_in=32, d_out=48, splice=4))
    assert set(plain.state_dict()) == {"proj.weight", "proj.bias", "norm.weight", "norm.bias"}
    assert any(k.startswith("blocks.1.") for k in conv.state_dict()) and "out_norm.weight" in conv.state_dict()


def test_whole_model_encodes_a_batch_as_each_utterance_alone() -> None:
    """An encoder's padded frames are not zeros (its final LayerNorm): the converter must not splice them into
    the last position of a length its splice does not divide."""
    from shared.model.converter import ConverterConfig
    from shared.model.moe_lm import LMConfig

    torch.manual_seed(0)
    cfg = ASRConfig(encoder=TINY, encoder_type="whisper", converter=ConverterConfig(d_in=32, d_out=32, splice=4),
                    lm=LMConfig(vocab_size=50, d_model=32, n_layers=1, n_heads=2, ff_hidden=64))
    model = SeedASR.build(cfg).eval()

    def speech(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        _, sp, sp_lens, _ = model.encode(x, lengths)
        return sp, sp_lens

    assert_batch_reads_each_as_alone(speech, [137, 300, 58], 80, lambda n: -(-((n + 1) // 2) // 4))
