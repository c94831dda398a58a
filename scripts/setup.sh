#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: system packages (TTS for training and eval data), a venv
# with the project and its extras. Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian packages, each checked on its own (a machine may have some): TTS voices and word lists for training and
# eval data, libsndfile, and Chromium for the live page's end-to-end test
pkgs=(espeak-ng flite sox libsndfile1 festival festvox-us-slt-hts festvox-kdlpc16k fortunes fortunes-min wamerican chromium)
need_apt=()
if command -v dpkg >/dev/null; then
  for pkg in "${pkgs[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg"); done
fi
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}") >/dev/null \
    || echo "warning: could not install ${need_apt[*]}; data synthesis and the browser test need them" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# Exact versions with their sha256 hashes (requirements.lock, `make lock`), torch as its CPU build: a machine without
# that wheel at hand finds it with PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu. Then the project itself.
.venv/bin/python -m pip install -q --require-hashes -r requirements.lock 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, grpc, nats, celery, onnxruntime, sentencepiece" \
  || { echo "setup failed: core packages do not import" >&2; exit 1; }
