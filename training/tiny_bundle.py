"""A bundle from a tiny random config, built by the same bundle code as the trained one.

Used by unit tests and as a stand-in where no trained bundle is present. Its tokenizer is
trained on a few hundred generated sentences, so it is deterministic and takes seconds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from shared.bundle import save_bundle
from shared.bundle_store import LUISE_BUNDLE
from shared.decoding import DECODING_KEY, bundle_decoding
from shared.model.asr import ASRConfig, SeedASR
from shared.model.conformer import ConformerConfig
from shared.model.converter import ConverterConfig
from shared.model.moe_lm import LMConfig, MoeConfig
from shared.model.whisper_encoder import WhisperEncoderConfig
from shared.tokenizer import train_tokenizer
from training.export.onnx_export import export_onnx

SENTENCES = [f"{a} {b} {c}" for a in ("call", "play", "open", "remind me to phone", "navigate to")
             for b in ("alice", "the kitchen lights", "some music", "seven thirty", "zorblatt")
             for c in ("now", "tomorrow", "please", "at noon", "later today")]


def tiny_config(vocab_size: int, encoder_type: str = "luise_conformer") -> ASRConfig:
    enc: ConformerConfig | WhisperEncoderConfig
    converter = ConverterConfig(d_in=32, d_out=48, splice=2)
    if encoder_type == "whisper":  # with a converter block, as a frozen pretrained encoder is trained
        enc = WhisperEncoderConfig(d_model=32, n_heads=2, n_layers=2, max_frames=3000)
        converter = ConverterConfig(d_in=32, d_out=48, splice=2, n_layers=1, n_heads=2)
    else:
        enc = ConformerConfig(d_model=32, n_heads=2, n_layers=2, conv_kernel=7, subsample_channels=8, dropout=0.0)
    return ASRConfig(
        encoder=enc,
        encoder_type=encoder_type,
        converter=converter,
        lm=LMConfig(vocab_size=vocab_size, d_model=48, n_layers=2, n_heads=2, ff_hidden=64, dropout=0.0,
                    moe=MoeConfig(n_experts=4, top_k=2)),
        ctc_weight=1.0,
    )


def build_tiny_bundle(out: Path, seed: int = 0, encoder_type: str = "luise_conformer") -> Path:
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(SENTENCES * 4, out / "tokenizer", vocab_size=300)
    torch.manual_seed(seed)
    model = SeedASR.build(tiny_config(tok.vocab_size, encoder_type)).eval()
    card = "# tiny random bundle\n\nRandom weights from `training/tiny_bundle.py`, for tests only. It recognises nothing.\n"
    save_bundle(model, out / "tokenizer.model", out, card, {"name": "tiny-random", DECODING_KEY: bundle_decoding(LUISE_BUNDLE)})
    (out / "tokenizer.vocab").unlink(missing_ok=True)
    export_onnx(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("bundles/tiny"))
    build_tiny_bundle(ap.parse_args().out)


if __name__ == "__main__":
    main()
