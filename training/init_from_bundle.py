"""Start a training run from an existing bundle instead of from scratch (continued training).

    SEEDASR_INIT_BUNDLE=bundles/luise make train
    python -m training.init_from_bundle bundles/luise      # what train.sh runs in that case

Writes into the work directory what the skipped stages (LM pretraining, LUISE, probe) would have:
the bundle's tokenizer, its kept encoder depth as probe.json, and `init.pt` with every weight
(encoder layers above the kept one, which bundles drop, stay freshly initialised: they are never run).
SFT then starts from `init.pt`; context SFT and RL follow as usual. `init.json` records the source,
and the model card of the new bundle copies the source card's stage table, so the chain of runs
behind a bundle stays readable.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from shared.bundle import config_to_dict, load_bundle
from shared.model.asr import ASRConfig, SeedASR
from training.common import cpu_state, source_commit
from training.recipe import Recipe, model_config


def stage_table(card: str) -> list[str]:
    """The '## Training time per stage' section of a model card: its table and notes, including what
    it says of the runs before it (so a chain of continued runs stays readable), not the plot line."""
    lines = card.splitlines()
    try:
        start = lines.index("## Training time per stage") + 1
    except ValueError:
        return []
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    section = [ln for ln in lines[start:end] if not ln.startswith("Loss curves")]
    while section and not section[-1].strip():
        section.pop()
    return section


def sizes(cfg: ASRConfig) -> dict:
    """Every size of a config except the encoder depth (bundles keep only the probed layers)."""
    d = config_to_dict(cfg)
    d["encoder"].pop("n_layers")
    d.pop("encoder_layers")
    return d


def init_from_bundle(bundle: Path, work: Path) -> None:
    source, tok, meta = load_bundle(bundle)
    cfg = model_config(tok.vocab_size, source.cfg.encoder_type, source.cfg.converter.n_layers)
    cfg.encoder_layers = source.cfg.encoder_layers
    if sizes(cfg) != sizes(source.cfg):
        raise SystemExit(f"bundle {bundle} was not made with this recipe's model_config(); "
                         "continued training needs the same sizes")
    model = SeedASR.build(cfg)
    missing, unexpected = model.load_state_dict(source.state_dict(), strict=False)
    dropped = [k for k in missing if k.startswith("encoder.layers.")]
    if unexpected or len(dropped) != len(missing):
        raise SystemExit(f"bundle {bundle} does not fit the recipe: missing {missing[:3]}, unexpected {unexpected[:3]}")
    work.mkdir(parents=True, exist_ok=True)
    (work / "tokenizer.model").write_bytes((bundle / "tokenizer.model").read_bytes())
    (work / "probe.json").write_text(json.dumps({"best_layer": cfg.encoder_layers, "from_bundle": str(bundle)}))
    torch.save(cpu_state(model), work / "init.pt")
    card = (bundle / "MODEL_CARD.md").read_text() if (bundle / "MODEL_CARD.md").exists() else ""
    info = {"bundle": str(bundle), "commit": source_commit(bundle), "stage": meta.get("stage"),
            "stage_table": stage_table(card)}
    if ref := meta.get("encoder_weights"):  # the pretrained encoder's package, for the new model card
        info["encoder"] = {"packages": ref.get("packages", []), "model_bin_sha256": ref.get("sha256"),
                           "licence": ref.get("licence")}
    (work / "init.json").write_text(json.dumps(info, indent=2))
    print(f"init: {work / 'init.pt'} from {bundle} (commit {info['commit'] or 'unknown'}, stage {info['stage']})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    args = ap.parse_args()
    recipe = Recipe.from_env()
    source_type = json.loads((args.bundle / "config.json").read_text())["config"].get("encoder_type", "luise_conformer")
    if recipe.encoder_type == "whisper" and source_type != "whisper":
        from training.init_whisper import init_whisper  # a new encoder under the bundle's LM

        init_whisper(args.bundle, recipe.work_dir, recipe.converter_layers)
    else:
        init_from_bundle(args.bundle, recipe.work_dir)


if __name__ == "__main__":
    main()
