#!/usr/bin/env bash
# Upstream's run.sh for tagtune: fine-tune, evaluate and predict with run_ner.py (the Trainer engine).
#
#   bash examples/token-classification/run.sh                      # packaged MiniLM on tagtune's sample data
#   bash examples/token-classification/run.sh --seed 1 --num_train_epochs 1
#   bash examples/token-classification/run.sh --model_name_or_path path/to/model \
#     --train_file train.json --validation_file validation.json --test_file test.json --output_dir out/ner
#
# Every argument is a run_ner.py flag and is passed on as given, after --do_train --do_eval (so it may
# override them: --do_eval false). The model (the packaged MiniLM), the data (tagtune's sample CoNLL files,
# with --do_predict on their test file) and the output directory (/tmp/test-ner, replaced on each run) are
# only defaults, found through python: each is left out as soon as you pass --model_name_or_path, any of
# --train_file / --validation_file / --test_file / --dataset_name, or --output_dir. --do_predict is added
# for a --test_file of yours too. PYTHON picks the interpreter (default: python).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python}"

source "$here/_defaults.sh"
passed=("$@")
defaults=()
default_model --model_name_or_path
if default_data; then
  defaults+=(--do_predict)
elif given --test_file; then
  defaults+=(--do_predict)
fi
if ! given --output_dir; then
  defaults+=(--output_dir /tmp/test-ner --overwrite_output_dir)
fi

exec "$python" "$here/run_ner.py" "${defaults[@]}" --do_train --do_eval "$@"
