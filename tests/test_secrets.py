"""What runs leave on disk: never a hub token, and files readable as the umask allows.

Both engines train the tiny BERT of conftest for 4 steps, with checkpoints and TensorBoard tracking,
given a fresh random token through every flag that takes one (``--token`` and ``--hub_token``); then
``tagtune export``, ``tagtune evaluate --output_dir`` and ``tagtune predict -o`` run on the results. Each
process logs everything at debug level (transformers too) into a log file beside the outputs. Every
byte of every file under the test's folder is then searched for the token, as UTF-8 and UTF-16.

All of it runs once per module, in subprocesses (as users run it) under umask 022.
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from conftest import REPO
from test_loop import SCRIPT as LOOP_SCRIPT
from test_loop import flags as loop_flags
from test_loop import subprocess_env, write_split

TRAINER_SCRIPT = REPO / "examples" / "token-classification" / "run_ner.py"
UMASK = 0o022

# Runs commands one after the other in one process, with every logger at DEBUG on stderr. tagtune's own
# handler would filter at INFO: a NullHandler keeps run_guarded from installing it.
DRIVER = r"""
import json, logging, runpy, sys
logging.basicConfig(level=logging.DEBUG, format="%(levelname)s %(name)s: %(message)s")
logging.getLogger("tagtune").addHandler(logging.NullHandler())
for command in json.loads(sys.argv[1]):
    print("running", command[0], command[1] if command[0] == "tagtune" else "", flush=True)  # not the token
    sys.argv = command
    if command[0] == "tagtune":
        from tagtune.cli import main
        main()
    else:
        runpy.run_path(command[0], run_name="__main__")
"""


def drive(commands: list[list[str]], log: Path, env: dict[str, str]) -> None:
    """Run ``commands`` in one fresh process, its stdout and stderr going to ``log``."""
    with log.open("wb") as handle:
        done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(commands)], env=env, stdout=handle,
                              stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, f"exit {done.returncode}\n{log.read_text(errors='replace')[-4000:]}"


def files_holding(token: str, root: Path) -> list[str]:
    """Files under ``root`` whose bytes hold ``token`` as UTF-8 or UTF-16 (either byte order)."""
    forms = [token.encode(encoding) for encoding in ("utf-8", "utf-16-le", "utf-16-be")]
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [str(path.relative_to(root))] if any(form in data for form in forms) else []
    return found


@pytest.fixture(scope="module")
def runs(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("secrets")
    token = "hf_" + secrets.token_hex(20)
    data = root / "data"
    data.mkdir()
    write_split(data / "train.json", 40, 1, 10)
    write_split(data / "dev.json", 12, 2, 5)
    write_split(data / "test.json", 9, 3, 4)
    env = dict(subprocess_env(root), TRANSFORMERS_VERBOSITY="debug", TAGTUNE_CACHE=str(root / "cache"))
    out = SimpleNamespace(root=root, token=token, trainer=root / "trainer", loop=root / "loop",
                          logs=root / "logs", predictions=root / "predictions.jsonl")
    out.logs.mkdir()
    trainer = [str(TRAINER_SCRIPT), "--model_name_or_path", str(tiny_bert_dir), "--train_file", str(data / "train.json"),
               "--validation_file", str(data / "dev.json"), "--test_file", str(data / "test.json"),
               "--output_dir", str(out.trainer), "--do_train", "--do_eval", "--do_predict", "--max_steps", "4",
               "--per_device_train_batch_size", "8", "--max_seq_length", "24", "--save_strategy", "steps",
               "--save_steps", "2", "--eval_strategy", "steps", "--eval_steps", "2", "--logging_steps", "1",
               "--report_to", "tensorboard", "--use_cpu", "true", "--seed", "1",
               "--token", token, "--hub_token", token]
    loop = [str(LOOP_SCRIPT), *loop_flags(tiny_bert_dir, {"dir": data}, out.loop, "--max_train_steps", "4",
                                          "--per_device_train_batch_size", "8", "--checkpointing_steps", "2",
                                          "--with_tracking", "--report_to", "tensorboard", "--logging_steps", "1",
                                          "--hub_token", token)]
    cli = []
    for name, model in (("trainer", out.trainer), ("loop", out.loop)):
        cli += [["tagtune", "export", str(model), "-o", str(root / f"export-{name}")],
                ["tagtune", "evaluate", str(model), str(data / "test.json"), "--output_dir", str(root / f"eval-{name}"),
                 "--quiet"]]
    cli.append(["tagtune", "predict", str(out.trainer), "--text", "john smith visited paris .", "-o",
                str(out.predictions), "--quiet"])
    umask = os.umask(UMASK)
    try:
        drive([trainer], out.logs / "trainer.log", env)
        drive([loop], out.logs / "loop.log", env)
        drive(cli, out.logs / "cli.log", env)
    finally:
        os.umask(umask)
    return out


def test_no_file_of_any_run_export_report_or_log_holds_the_token(runs) -> None:
    root = runs.root
    # What the walk must have covered: checkpoints (pickled arguments too), trackers, exports, reports, logs.
    expected = ["trainer/checkpoint-2/training_args.bin", "trainer/checkpoint-4/model.safetensors",
                "trainer/training_args.json", "trainer/tagtune_config.json", "trainer/report.html", "trainer/README.md",
                "loop/step_2/model.safetensors", "loop/step_4/loop_state.json", "loop/tagtune_config.json",
                "loop/report.html", "loop/README.md", "export-trainer/tagtune_config.json",
                "export-loop/tagtune_config.json", "eval-trainer/report.html", "eval-loop/eval_results.json",
                "predictions.jsonl", "logs/trainer.log", "logs/loop.log", "logs/cli.log"]
    assert [name for name in expected if not (root / name).is_file()] == []
    assert list(runs.trainer.rglob("events.out.tfevents.*")) and list(runs.loop.rglob("events.out.tfevents.*"))
    assert "[transformers] loading configuration file" in (root / "logs" / "trainer.log").read_text(errors="replace")
    assert files_holding(runs.token, root) == []


def test_every_written_file_gets_the_umask_mode(runs) -> None:
    """Under umask 022 every file is 0644: weights too (safetensors writes them owner-only)."""
    folders = [runs.trainer, runs.loop] + [runs.root / f"{kind}-{engine}" for kind in ("export", "eval")
                                           for engine in ("trainer", "loop")]
    modes = {str(path.relative_to(runs.root)): oct(stat.S_IMODE(path.stat().st_mode))
             for folder in folders for path in folder.rglob("*") if path.is_file()}
    modes["predictions.jsonl"] = oct(stat.S_IMODE(runs.predictions.stat().st_mode))
    assert {"trainer/model.safetensors", "trainer/checkpoint-2/model.safetensors", "loop/model.safetensors",
            "loop/step_2/model.safetensors", "export-trainer/model.onnx"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode != oct(0o666 & ~UMASK)} == {}


def test_the_search_finds_a_token_in_any_file_and_form(tmp_path: Path) -> None:
    token = "hf_" + secrets.token_hex(20)
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "wide.bin").write_bytes(b"\x00\x01" + token.encode("utf-16-le") + b"\xff")
    (tmp_path / "plain.txt").write_text(f"x{token}y")
    (tmp_path / "clean.txt").write_text(token[:-1])
    assert files_holding(token, tmp_path) == ["a/b/wide.bin", "plain.txt"]


def test_pickled_training_arguments_hold_no_token(tmp_path: Path) -> None:
    import copy
    import pickle

    from transformers import TrainingArguments

    from tagtune.flags import parse_trainer_args

    token = "hf_" + secrets.token_hex(20)
    argv = ["--model_name_or_path", "m", "--train_file", "t.json", "--output_dir", str(tmp_path),
            "--hub_token", token, "--use_cpu", "true"]
    _, args = parse_trainer_args(argv)
    assert args.hub_token == token  # still there for the run itself
    assert token.encode() in pickle.dumps(TrainingArguments(str(tmp_path), hub_token=token))  # what is fixed
    assert token.encode() not in pickle.dumps(args)
    restored = pickle.loads(pickle.dumps(args))
    assert restored.hub_token is None and restored.per_device_train_batch_size == args.per_device_train_batch_size
    assert copy.deepcopy(args).hub_token is None


def test_saved_fields_are_an_allow_list_without_secrets() -> None:
    """Every configuration field is either saved or a known secret: a new field needs a decision."""
    from dataclasses import fields

    from tagtune.outputs import SAVED_FIELDS

    secret = {"token"}
    for section, (kind, names) in SAVED_FIELDS.items():
        assert not secret & set(names), section
        assert {f.name for f in fields(kind)} - secret == set(names), section


def test_a_token_in_an_older_config_file_is_not_passed_on(tiny_ner_dir: Path, tmp_path: Path) -> None:
    """``tagtune_config.json`` files written before the allow-list may hold the token: loading one (for an
    export's copy, an evaluation report, a Tagger) leaves it out."""
    import shutil

    from tagtune.checkpoint import load_checkpoint, model_config_of
    from tagtune.config import ModelConfig
    from tagtune.outputs import CONFIG_FILE, load_run_config

    token = "hf_" + secrets.token_hex(20)
    model = tmp_path / "older"
    shutil.copytree(tiny_ner_dir, model)
    (model / CONFIG_FILE).write_text(json.dumps({
        "scheme": "BIO", "unknown": token, "align": {"max_length": 64, "extra": token},
        "model": {"model_name_or_path": "bert-base-cased", "token": token, "crf": False},
    }))
    saved = load_run_config(model)
    assert token not in json.dumps(saved)
    assert saved["model"] == {"model_name_or_path": "bert-base-cased", "crf": False}
    assert saved["align"] == {"max_length": 64} and saved["scheme"] == "BIO"
    assert load_checkpoint(model).align.max_length == 64
    assert model_config_of(model) == ModelConfig("bert-base-cased")
