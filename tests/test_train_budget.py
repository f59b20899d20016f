"""--max_train_seconds: training stops after the wall-time budget, the learning rate decays with time."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "token-classification"))
sys.path.insert(0, str(REPO / "tests"))


def test_learning_rate_factor_follows_the_clock() -> None:
    from tagtune.train import TrainClock

    clock = TrainClock(10.0, warmup_fraction=0.1)
    assert clock.lr_factor() == 0.0  # not started: warm-up starts at 0
    for elapsed, factor in ((0.5, 0.5), (1.0, 1.0), (5.5, 0.5), (10.0, 0.0), (12.0, 0.0)):
        clock.start = time.perf_counter() - elapsed
        assert clock.lr_factor() == pytest.approx(factor, abs=0.01), elapsed
    assert TrainClock(10.0).lr_factor() == 1.0


def test_training_stops_at_the_time_budget_with_decayed_learning_rate(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import run_ner

    from test_train import make_sentences, write_conll

    train = write_conll(tmp_path / "train.txt", make_sentences(16, 0))
    out = tmp_path / "model"
    results = run_ner.main(["--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(out), "--do_train",
                            "--num_train_epochs", "10000", "--max_train_seconds", "2", "--logging_steps", "1",
                            "--per_device_train_batch_size", "4", "--max_seq_length", "32", "--report_to", "none",
                            "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true",
                            "--train_file", str(train)])
    assert 2 <= results["train_runtime"] < 60
    state = json.loads((out / "trainer_state.json").read_text())
    assert 1 <= state["global_step"] and state["epoch"] < 10000
    rates = [entry["learning_rate"] for entry in state["log_history"] if "learning_rate" in entry]
    assert rates == sorted(rates, reverse=True) and rates[-1] < 5e-5
