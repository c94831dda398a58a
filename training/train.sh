#!/usr/bin/env bash
# `make train`: the whole recipe, each stage resumable (re-running skips finished stages and
# resumes an interrupted one from its checkpoint). Budgets live in training/recipe.py and can be
# overridden with SEEDASR_RECIPE=path.json. SEEDASR_INIT_BUNDLE=path continues from a bundle;
# SEEDASR_SYNTH_SEED (default 1) picks the synthesised training set, fresh sentences for a continued run;
# SEEDASR_SYNTH_COUNT (default 36000) its size; SEEDASR_EDGE_PAD_SHARE (default 0.5) the share of it given
# extra silence at the edges (0 for runs made before that augmentation); SEEDASR_PIPER_SHARE (default 0.2) the
# share spoken by Piper (0 for runs made before that engine); SEEDASR_VOCODE_SHARE (default 0.3) the share
# resynthesised through an LPC vocoder (0 for runs made before it); SEEDASR_BUNDLE_OUT (default bundles/luise, our own model's folder; the shipped default is Whisper's, training/export/whisper_bundle.py) where
# the bundle is exported.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-runs/default}
export SEEDASR_WORK="$WORK"  # every stage's work folder (training/recipe.py)
export PYTHONPATH=.
# Faker's set-built lists follow the hash seed (training/data/synth.py): same seed, same sentences
export PYTHONHASHSEED=0
stage() { local done_file=$1; shift; [ -f "$WORK/$done_file" ] || "$PY" "$@"; }

[ -f data/train/manifest.jsonl ] || "$PY" -m training.data.synth --out data/train --split train --count "${SEEDASR_SYNTH_COUNT:-36000}" --seed "${SEEDASR_SYNTH_SEED:-1}" \
  --edge-pad-share "${SEEDASR_EDGE_PAD_SHARE:-0.5}" --piper-share "${SEEDASR_PIPER_SHARE:-0.2}" \
  --vocode-share "${SEEDASR_VOCODE_SHARE:-0.3}"
bash training/data/make_dev_sets.sh
if [ -n "${SEEDASR_INIT_BUNDLE:-}" ]; then
  # Continued training: SFT starts from that bundle's weights (training/init_from_bundle.py).
  stage init.pt -m training.init_from_bundle "$SEEDASR_INIT_BUNDLE"
  stage lm_final.pt -m training.lm.pretrain  # the bundle's LM goes on with text training (recipe's lm budget)
else
  stage lm_final.pt -m training.lm.pretrain
  stage ssl1_final.pt -m training.ssl.luise --iteration 1
  stage ssl2_final.pt -m training.ssl.luise --iteration 2
  stage probe.json -m training.ssl.luise --probe
fi
stage sft_final.pt -m training.sft.train --stage sft
stage context_sft_final.pt -m training.sft.train --stage context_sft
stage rl_final.pt -m training.rl.train
"$PY" -m training.export.make_bundle --work "$WORK" --out "${SEEDASR_BUNDLE_OUT:-bundles/luise}"
