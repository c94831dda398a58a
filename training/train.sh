#!/usr/bin/env bash
# `make train`: the whole recipe, each stage resumable (re-running skips finished stages and
# resumes an interrupted one from its checkpoint). Budgets live in training/recipe.py and can be
# overridden with SEEDASR_RECIPE=path.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
WORK=${WORK:-runs/default}
export PYTHONPATH=.
stage() { local done_file=$1; shift; [ -f "$WORK/$done_file" ] || "$PY" "$@"; }

[ -f data/train/manifest.jsonl ] || "$PY" -m training.data.synth --out data/train --split train --count 36000 --seed 1
bash training/data/make_dev_sets.sh
stage lm_final.pt -m training.lm.pretrain
stage ssl1_final.pt -m training.ssl.luise --iteration 1
stage ssl2_final.pt -m training.ssl.luise --iteration 2
stage probe.json -m training.ssl.luise --probe
stage sft_final.pt -m training.sft.train --stage sft
stage context_sft_final.pt -m training.sft.train --stage context_sft
stage rl_final.pt -m training.rl.train
"$PY" -m training.export.make_bundle --work "$WORK" --out bundles/default
