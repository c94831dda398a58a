#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: system packages (TTS for training and eval data), a venv
# with the project and its extras. Safe to run again; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
for bin in espeak-ng flite text2wave sox; do command -v "$bin" >/dev/null || need_apt+=("$bin"); done
[ -f /usr/lib/x86_64-linux-gnu/libsndfile.so.1 ] || [ -f /usr/lib/aarch64-linux-gnu/libsndfile.so.1 ] || need_apt+=(libsndfile1)
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null; then
  pkgs="espeak-ng flite sox libsndfile1 festival festvox-us-slt-hts festvox-kdlpc16k fortunes fortunes-min wamerican"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs) >/dev/null \
    || echo "warning: could not install TTS packages; training and eval data synthesis need them" >&2
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first, pinned: the CPU wheel on this disk (an unpinned torch would pull a CUDA build)
.venv/bin/python -m pip install -q "torch==2.13.0" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[model,train,dev]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, grpc, nats, celery, onnxruntime, sentencepiece" \
  || { echo "setup failed: core packages do not import" >&2; exit 1; }
