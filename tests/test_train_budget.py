"""--max_train_seconds: training stops after the wall-time budget, the learning rate decays with time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "token-classification"))
sys.path.insert(0, str(REPO / "tests"))


def test_training_stops_at_the_time_budget_with_decayed_learning_rate(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import run_ner
    from test_train import make_sentences, write_conll

    train = write_conll(tmp_path / "train.txt", make_sentences(16, 0))
    out = tmp_path / "model"
    results = run_ner.main(["--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(out), "--do_train",
                            "--num_train_epochs", "10000", "--max_train_seconds", "3", "--logging_steps", "1",
                            "--per_device_train_batch_size", "4", "--max_seq_length", "32", "--report_to", "none",
                            "--save_strategy", "no", "--use_cpu", "true", "--disable_tqdm", "true",
                            "--train_file", str(train)])
    assert 2.5 < results["train_runtime"] < 30
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    rates = [entry["learning_rate"] for entry in history if "learning_rate" in entry]
    assert len(rates) > 3
    assert rates[0] > rates[-1] and rates[-1] < 0.25 * 5e-5
