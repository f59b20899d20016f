#!/usr/bin/env bash
# The upstream example's run.sh, on local files: fine-tune on CoNLL-2003 with the Trainer engine.
# Usage: bash examples/token-classification/run.sh [MODEL_DIR] [DATA_DIR] [OUTPUT_DIR] [extra run_ner.py flags...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
model="${1:-$(python -c 'from tagtune.defaults import packaged_model_dir; print(packaged_model_dir())')}"
data="${2:-$here/../../../shared/data/conll2003/json}"
out="${3:-/tmp/test-ner}"
shift $(( $# < 3 ? $# : 3 ))
python "$here/run_ner.py" \
  --model_name_or_path "$model" \
  --train_file "$data/train.json" --validation_file "$data/validation.json" --test_file "$data/test.json" \
  --output_dir "$out" --overwrite_output_dir \
  --do_train --do_eval --do_predict \
  --max_seq_length 128 --per_device_train_batch_size 32 --learning_rate 5e-5 --num_train_epochs 1 \
  "$@"
