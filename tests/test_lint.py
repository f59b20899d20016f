"""ruff (rules in pyproject.toml) over the package, tests, benchmarks and examples: CI runs the tests, so lint
is enforced with them."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from conftest import REPO


def test_ruff_finds_nothing() -> None:
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (it is in the test extra: pip install -e '.[test]')")
    done = subprocess.run([ruff, "check", "src", "tests", "benchmarks", "examples"], cwd=REPO, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout[-3000:]
