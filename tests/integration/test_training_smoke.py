"""Every training stage runs, resumes and hands over to the next on a dozen synthesised utterances,
ending in a bundle that loads and recognises: the recipe `make train` runs, at a size CI can afford."""

import json
import os
import subprocess
import sys

import pytest
import torch

from shared.bundle import load_bundle
from tests.conftest import ROOT

pytestmark = pytest.mark.integration
STAGES = [
    ["training.lm.pretrain"],
    ["training.ssl.luise", "--iteration", "1"],
    ["training.ssl.luise", "--iteration", "2"],
    ["training.ssl.luise", "--probe"],
    ["training.sft.train", "--stage", "sft"],
    ["training.sft.train", "--stage", "context_sft"],
    ["training.rl.train"],
]


def run(args: list[str], env: dict) -> None:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.timeout(900)  # two chained runs (from scratch, then continued) on a busy CI core
def test_recipe_end_to_end_at_smoke_size(tmp_path) -> None:
    data = tmp_path / "train"
    # planned here, rendered from the plan (as a bigger machine would render it)
    run(["training.data.synth", "--out", str(data), "--count", "12", "--plan-only"], {})
    jobs = [json.loads(line) for line in (data / "jobs.jsonl").read_text().splitlines()]
    assert len(jobs) == 12 and not (data / "manifest.jsonl").exists()
    run(["training.data.synth", "--out", str(data), "--from-plan", "--workers", "1"], {})
    rows = [json.loads(line) for line in (data / "manifest.jsonl").read_text().splitlines()]
    assert {r["text"] for r in rows} <= {j["text"] for j in jobs}
    assert len(rows) >= 10 and not any("slt" in r["voice"] or r["voice"].startswith("festival") for r in rows)
    work = tmp_path / "work"
    budget = {"minutes": 0.04, "peak_lr": 1e-3, "max_frames": 4000}
    recipe = {"work_dir": str(work), "train_manifest": str(data / "manifest.jsonl"), "lm_sentences": 400,
              "vocab_size": 400, "kmeans_clusters": 8,
              **{k: budget for k in ("lm", "ssl1", "ssl2", "sft", "context_sft", "rl")}}
    (tmp_path / "recipe.json").write_text(json.dumps(recipe))
    env = {"SEEDASR_RECIPE": str(tmp_path / "recipe.json"), "PYTHONPATH": str(ROOT)}
    for stage in STAGES:
        run(stage, env)
    for name in ("lm_final.pt", "ssl1_final.pt", "ssl2_final.pt", "probe.json", "sft_final.pt", "context_sft_final.pt",
                 "rl_final.pt"):
        assert (work / name).exists(), name
    run(["training.sft.train", "--stage", "sft"], env)  # resumes from its checkpoint: budget spent, nothing to do
    bundle = tmp_path / "bundle"
    run(["training.export.make_bundle", "--work", str(work), "--out", str(bundle)], env)
    model, tok, meta = load_bundle(bundle)
    assert meta["stage"] == "rl" and (bundle / "encoder.onnx").exists() and (bundle / "loss_curves.png").exists()
    assert "## Training time per stage" in (bundle / "MODEL_CARD.md").read_text()
    assert model.cfg.encoder_layers == json.loads((work / "probe.json").read_text())["best_layer"]

    # continued training: a second run starts SFT from that bundle instead of from scratch
    work2 = tmp_path / "work2"  # SEEDASR_WORK (train.sh's WORK) wins over the recipe's work_dir
    env2 = {**env, "SEEDASR_WORK": str(work2)}
    run(["training.init_from_bundle", str(bundle)], env2)
    init = torch.load(work2 / "init.pt")
    for key, value in model.state_dict().items():
        if key != "lm.head.weight":
            torch.testing.assert_close(init[key], value, msg=key)
    assert (work2 / "tokenizer.model").read_bytes() == (bundle / "tokenizer.model").read_bytes()
    for stage in [STAGES[0], *STAGES[4:]]:  # LM text training goes on from the bundle's LM, then SFT
        run(stage, env2)
    assert (work2 / "tokenizer.model").read_bytes() == (bundle / "tokenizer.model").read_bytes()
    gain = json.loads((work2 / "lm_stats.json").read_text())["copy_gain"]
    assert gain["with_context"] <= 0 and gain["without_context"] <= 0
    assert gain["with_context"] != gain["without_context"]  # the context reaches the LM's scores
    run(["training.export.make_bundle", "--work", str(work2), "--out", str(tmp_path / "bundle2")], env2)
    card = (tmp_path / "bundle2" / "MODEL_CARD.md").read_text()
    assert f"started from the bundle `{bundle}`" in card and card.count("| lm |") == 2  # its own and the copied row
    assert "Copying from context after `context_sft`" in card
