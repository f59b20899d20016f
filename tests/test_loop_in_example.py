"""The bare loop lives in ``examples/token-classification/run_ner_no_trainer.py``, and ``tagtune train
--engine accelerate`` runs that very file: a researcher's edit there changes what the CLI trains.

The package's ``tagtune/loop.py`` is a link to the example. The test copies the package and the example
folder, edits the copy's example (the loss becomes zero), and runs ``tagtune train --engine accelerate``
against the copy in a fresh process: the run reports a zero training loss, and the unedited copy does not.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

EXAMPLE = REPO / "examples" / "token-classification" / "run_ner_no_trainer.py"
LOSS_LINE = "loss = model(**batch).loss"


def test_the_package_loop_is_the_example_file() -> None:
    import tagtune.loop

    assert Path(tagtune.loop.__file__).resolve() == EXAMPLE.resolve()
    assert EXAMPLE.read_text(encoding="utf-8").count(LOSS_LINE) == 1  # the line the next test edits


def _train(tree: Path, model: Path, data: Path, out: Path) -> tuple[dict, str]:
    env = dict(os.environ, PYTHONPATH=str(tree / "src"), TAGTUNE_NO_CACHE="1", HF_HUB_OFFLINE="1")
    code = ("import sys, tagtune; print('package:', tagtune.__file__, file=sys.stderr); "
            "from tagtune.cli import main; sys.argv = ['tagtune'] + sys.argv[1:]; main()")
    done = subprocess.run(
        [sys.executable, "-c", code, "train", "--engine", "accelerate", "--quiet", "--model", str(model),
         "--train", str(data), "-o", str(out), "--max_train_steps", "3", "--per_device_train_batch_size", "4",
         "--seed", "1"],
        capture_output=True, text=True, env=env, cwd=tree, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((out / "all_results.json").read_text()), done.stderr


def test_an_edit_to_the_example_changes_tagtune_train(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = tmp_path / "train.conll"
    data.write_text("".join(f"EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n{word} O\n\n"
                            for word in ("a", "b", "c", "d", "e", "f", "g", "h")), encoding="utf-8")
    results = {}
    for name, edit in (("as shipped", None), ("edited", "loss = model(**batch).loss * 0.0")):
        tree = tmp_path / name.replace(" ", "_")
        shutil.copytree(REPO / "src", tree / "src", symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        shutil.copytree(REPO / "examples", tree / "examples", symlinks=True)
        if edit:
            example = tree / "examples" / "token-classification" / "run_ner_no_trainer.py"
            example.write_text(example.read_text(encoding="utf-8").replace(LOSS_LINE, edit), encoding="utf-8")
        results[name], log = _train(tree, tiny_bert_dir, data, tmp_path / f"out_{tree.name}")
        assert f"package: {tree / 'src' / 'tagtune'}" in log  # the copy ran, not the installed package
    assert results["as shipped"]["train_loss"] > 0.1
    assert results["edited"]["train_loss"] == 0.0
