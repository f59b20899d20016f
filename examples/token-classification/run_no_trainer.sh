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

# Whether one of the flags named was passed (as --flag, --flag=value or the --dash-spelling).
given() {
  local arg wanted
  for arg in "${passed[@]}"; do
    arg="${arg%%=*}"
    for wanted in "$@"; do
      if [ "${arg//-/_}" = "${wanted//-/_}" ]; then return 0; fi
    done
  done
  return 1
}

passed=("$@")
defaults=()
if ! given --model_name_or_path --model_type; then
  model="$("$python" -c 'from tagtune.defaults import packaged_model_dir; print(packaged_model_dir())')"
  defaults+=(--model_name_or_path "$model")
fi
if ! given --train_file --validation_file --test_file --dataset_name; then
  sample="$("$python" -c 'from tagtune.defaults import sample_data_files
for split, path in sample_data_files().items(): print(f"--{split}_file={path}")')"
  while IFS= read -r flag; do defaults+=("$flag"); done <<< "$sample"
fi
if ! given --output_dir; then
  defaults+=(--output_dir /tmp/test-ner-no-trainer --overwrite_output_dir)
fi

exec "${launcher[@]}" "$here/run_ner_no_trainer.py" "${defaults[@]}" \
  --task_name ner --return_entity_level_metrics "$@"
