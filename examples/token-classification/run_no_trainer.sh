#!/usr/bin/env bash
# Upstream's run_no_trainer.sh for tagtune: fine-tune with run_ner_no_trainer.py (the Accelerate loop),
# evaluate after each epoch and predict the test file, under `accelerate launch`.
#
#   bash examples/token-classification/run_no_trainer.sh                # packaged MiniLM on tagtune's sample data
#   bash examples/token-classification/run_no_trainer.sh --seed 1 --num_train_epochs 1
#   LAUNCHER="accelerate launch --multi_gpu --num_processes 2" bash examples/token-classification/run_no_trainer.sh
#   LAUNCHER=python bash examples/token-classification/run_no_trainer.sh    # no launcher: one process
#
# Every argument is a run_ner_no_trainer.py flag and is passed on as given, after --task_name ner
# --return_entity_level_metrics (so it may override --task_name). The model (the packaged MiniLM), the
# data (tagtune's sample CoNLL files) and the output directory (/tmp/test-ner-no-trainer, replaced on
# each run) are only defaults, found through python: each is left out as soon as you pass
# --model_name_or_path or --model_type, any of --train_file / --validation_file / --test_file /
# --dataset_name, or --output_dir. Upstream's script also passes --pad_to_max_length, which only helps
# on TPUs (fixed shapes); add it there. `accelerate launch` takes its settings from `accelerate config`
# (one process on the CPU or GPU without one). PYTHON picks the interpreter (default: python).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python}"
read -r -a launcher <<< "${LAUNCHER:-accelerate launch}"

source "$here/_defaults.sh"
passed=("$@")
defaults=()
default_model --model_name_or_path --model_type
default_data || true
if ! given --output_dir; then
  defaults+=(--output_dir /tmp/test-ner-no-trainer --overwrite_output_dir)
fi

exec "${launcher[@]}" "$here/run_ner_no_trainer.py" "${defaults[@]}" \
  --task_name ner --return_entity_level_metrics "$@"
