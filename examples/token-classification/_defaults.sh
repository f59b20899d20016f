# Shared by run.sh and run_no_trainer.sh (sourced, not run): which flags the user passed, and the
# defaults that stand in for the ones they did not pass. Expects "passed" (the user's flags) and "python".

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

# Appends to "defaults": the packaged MiniLM unless a model flag is given (the names as arguments).
default_model() {
  if ! given "$@"; then
    defaults+=(--model_name_or_path "$("$python" -c 'from tagtune.defaults import packaged_model_dir; print(packaged_model_dir())')")
  fi
}

# Appends tagtune's sample CoNLL files unless a data flag is given; returns 1 when the user gave data.
default_data() {
  if given --train_file --validation_file --test_file --dataset_name; then return 1; fi
  local sample flag
  sample="$("$python" -c 'from tagtune.defaults import sample_data_files
for split, path in sample_data_files().items(): print(f"--{split}_file={path}")')"
  while IFS= read -r flag; do defaults+=("$flag"); done <<< "$sample"
}
