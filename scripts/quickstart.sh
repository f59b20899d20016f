#!/usr/bin/env bash
# Set everything up, then run the main job on embedded defaults: fine-tune the packaged MiniLM on
# tagtune's sample data (train/validation/test), writing the model and results to ./tagtune-model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
tagtune train --output tagtune-model --overwrite_output_dir "$@"
cat <<'NEXT'

Next, with the model in ./tagtune-model:
  tagtune predict tagtune-model --text "Angela Merkel met Emmanuel Macron in Paris."   # entities as JSON lines
  tagtune predict tagtune-model FILE.txt --format html -o entities.html   # a page with the entities highlighted
  tagtune serve tagtune-model                # a web page and an HTTP API on http://127.0.0.1:8000
  tagtune-model/report.html                  # the test scores, entity confusion and worst errors (open in a browser)
NEXT
