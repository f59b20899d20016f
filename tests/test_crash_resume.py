"""SIGKILL during training, at several points, then ``--resume_from_checkpoint latest``: nothing is lost.

Training runs in a subprocess (examples/token-classification/run_ner.py, the Trainer engine) with a
checkpoint every 2 steps. It is killed (1) right after a checkpoint appears, (2) in the middle of a
checkpoint write, and (3) in the middle of the final model write. After every kill each ``checkpoint-N``
left must be whole (safetensors weights that load, a trainer state that parses, at step N), and the
next run resumes from the newest one. The last run finishes at the expected global step.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from test_train import make_sentences, write_conll

REPO = Path(__file__).resolve().parents[1]
MAX_STEPS = 12

# Runs run_ner.py as the console does; TAGTUNE_TEST_HOLD pauses inside a save so the test can kill there.
DRIVER = r'''
import os, sys, time
from pathlib import Path

sys.path.insert(0, os.environ["EXAMPLES"])
hold, marker = os.environ.get("TAGTUNE_TEST_HOLD", ""), Path(os.environ["MARKER"])


def pause(where):
    marker.write_text(where)
    time.sleep(600)


if hold.startswith("checkpoint:"):  # after the weights and optimizer are written, before the state
    import transformers

    step, real = int(hold.split(":")[1]), transformers.Trainer._save_optimizer_and_scheduler

    def save_optimizer_and_scheduler(self, output_dir):
        real(self, output_dir)
        if self.state.global_step == step:
            pause(output_dir)

    transformers.Trainer._save_optimizer_and_scheduler = save_optimizer_and_scheduler
elif hold == "final":  # the final model is staged; kill before it is moved into place
    import tagtune.run

    real_publish = tagtune.run.publish_files

    def publish_files(staging, target, last):
        pause(str(staging))
        real_publish(staging, target, last)

    tagtune.run.publish_files = publish_files

import run_ner
from tagtune.cli import run_guarded

run_guarded(run_ner.main, sys.argv[1:])
'''


STARTED: list[subprocess.Popen] = []


@pytest.fixture()
def run_dir(tmp_path: Path, tiny_bert_dir: Path) -> Iterator[dict[str, Path]]:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    yield {"driver": driver, "train": write_conll(tmp_path / "train.txt", make_sentences(24, 0)),
           "out": tmp_path / "out", "model": tiny_bert_dir, "marker": tmp_path / "marker"}
    for process in STARTED:  # a failed assertion must not leave a run sleeping in a save
        if process.poll() is None:
            process.kill()
            process.communicate()
    STARTED.clear()


def start(paths: dict[str, Path], hold: str = "", resume: bool = False) -> subprocess.Popen:
    paths["marker"].unlink(missing_ok=True)
    flags = ["--model_name_or_path", str(paths["model"]), "--train_file", str(paths["train"]),
             "--output_dir", str(paths["out"]), "--do_train", "--max_steps", str(MAX_STEPS),
             "--per_device_train_batch_size", "4", "--learning_rate", "1e-3", "--max_seq_length", "32",
             "--save_strategy", "steps", "--save_steps", "2", "--logging_steps", "1", "--report_to", "none",
             "--use_cpu", "true", "--disable_tqdm", "true", "--seed", "3",
             # Sentence-count batches: 12 steps are whole epochs here. transformers resumed from a final
             # checkpoint that ends mid-epoch trains one step past --max_steps (token-budget batches hit
             # that on this data); this test is about kills and complete checkpoints, not batching.
             "--group_by_length", "true"]
    if resume:
        flags += ["--resume_from_checkpoint", "latest"]
    env = {**os.environ, "EXAMPLES": str(REPO / "examples" / "token-classification"),
           "MARKER": str(paths["marker"]), "TAGTUNE_TEST_HOLD": hold, "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen([sys.executable, str(paths["driver"]), *flags], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    STARTED.append(process)
    return process


def wait_for(condition, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"training ended (status {process.returncode}) before the kill point:\n"
                                 + process.stdout.read()[-3000:])
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the kill point was never reached")
        time.sleep(0.02)


def kill(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGKILL)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL
    return output


def checkpoints(out: Path) -> dict[int, Path]:
    return {int(p.name.split("-")[1]): p for p in out.glob("checkpoint-*")}


def assert_all_whole(out: Path) -> None:
    """Every checkpoint-N is complete and loadable; nothing half-written carries a checkpoint name."""
    from safetensors.torch import load_file

    from tagtune.train import checkpoint_is_complete

    for step, path in checkpoints(out).items():
        assert checkpoint_is_complete(path), path
        state = json.loads((path / "trainer_state.json").read_text())
        assert state["global_step"] == step
        weights = load_file(path / "model.safetensors")
        assert "classifier.weight" in weights and weights["classifier.weight"].shape[0] == 7
        for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "config.json"):
            assert (path / name).is_file(), (path, name)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output[-3000:]
    return output


def test_sigkill_at_any_point_then_resume_latest(run_dir: dict[str, Path]) -> None:
    from tagtune.modeling import check_weights
    from tagtune.train import last_checkpoint

    out = run_dir["out"]

    # 1. killed between steps, right after the first checkpoints exist
    process = start(run_dir)
    wait_for(lambda: 4 in checkpoints(out), process)
    kill(process)
    assert_all_whole(out)
    first = last_checkpoint(out)
    assert first is not None and int(first.name.split("-")[1]) >= 4

    # 2. resumed, then killed in the middle of writing a checkpoint
    held = int(first.name.split("-")[1]) + 4
    assert held < MAX_STEPS
    process = start(run_dir, hold=f"checkpoint:{held}", resume=True)
    wait_for(run_dir["marker"].exists, process)
    output = kill(process)
    assert f"resuming from {first}" in output
    partial = out / f".partial-checkpoint-{held}" / f"checkpoint-{held}"
    assert (partial / "model.safetensors").is_file() and not (partial / "trainer_state.json").exists()
    assert held not in checkpoints(out)  # the half checkpoint never got a checkpoint name
    assert_all_whole(out)
    assert last_checkpoint(out) == out / f"checkpoint-{held - 2}"

    # 3. resumed, trained to the end, then killed while the final model is moved into place
    process = start(run_dir, hold="final", resume=True)
    wait_for(run_dir["marker"].exists, process)
    output = kill(process)
    assert f"resuming from {out / f'checkpoint-{held - 2}'}" in output
    assert_all_whole(out)
    assert last_checkpoint(out) == out / f"checkpoint-{MAX_STEPS}"
    assert not (out / "model.safetensors").exists()  # no final model rather than half of one

    # 4. resumed from the last checkpoint: nothing left to train, the final model is written
    output = finish(start(run_dir, resume=True))
    assert f"resuming from {out / f'checkpoint-{MAX_STEPS}'}" in output
    assert_all_whole(out)
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == MAX_STEPS
    check_weights(str(out), allow_pickle=False)  # whole safetensors, config and no pickles
    assert not list(out.glob("*.bin")) and not list(out.glob(".partial-*"))
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["label2id"]) == sorted(["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"])
