#!/usr/bin/env bash
# Set everything up, then run the main job on embedded defaults: fine-tune the packaged MiniLM on
# tagtune's sample data (train/validation/test), writing the model and results to ./tagtune-model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
tagtune train --output tagtune-model --overwrite_output_dir "$@"
