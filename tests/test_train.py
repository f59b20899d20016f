"""End to end through the Trainer engine with a tiny BERT: train -> save -> evaluate -> predict."""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "token-classification"))

PEOPLE = ["angela merkel", "john smith", "mary jones", "peter blackburn"]
PLACES = ["paris", "london", "berlin", "tokyo", "new york"]
ORGS = ["reuters", "eu", "bank group"]


def make_sentences(n: int, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(n):
        person, place, org = rng.choice(PEOPLE).split(), rng.choice(PLACES).split(), rng.choice(ORGS).split()
        words: list[tuple[str, str]] = [(w, ("B-" if i == 0 else "I-") + "PER") for i, w in enumerate(person)]
        words += [("visited", "O"), ("the", "O")]
        words += [(w, ("B-" if i == 0 else "I-") + "ORG") for i, w in enumerate(org)]
        words += [("in", "O")] + [(w, ("B-" if i == 0 else "I-") + "LOC") for i, w in enumerate(place)] + [(".", "O")]
        sentences.append(words)
    return sentences


def write_conll(path: Path, sentences, docstart_every: int = 4) -> Path:
    lines = []
    for i, sentence in enumerate(sentences):
        if i % docstart_every == 0:
            lines += ["-DOCSTART- -X- -X- O", ""]
        lines += [f"{w} X X {t}" for w, t in sentence] + [""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def write_jsonl_ids(path: Path, sentences, names: list[str]) -> Path:
    ids = {n: i for i, n in enumerate(names)}
    with path.open("w") as handle:
        for i, sentence in enumerate(sentences):
            handle.write(json.dumps({"id": str(i), "tokens": [w for w, _ in sentence],
                                     "ner_tags": [ids[t] for _, t in sentence]}) + "\n")
    (path.parent / "labels.json").write_text(json.dumps({"ner_tags": names}))
    return path


@pytest.fixture()
def conll_files(tmp_path: Path) -> dict[str, Path]:
    return {
        "train": write_conll(tmp_path / "train.txt", make_sentences(48, 0)),
        "validation": write_conll(tmp_path / "valid.txt", make_sentences(12, 1)),
        "test": write_conll(tmp_path / "test.txt", make_sentences(12, 2)),
    }


def common_flags(model: Path, out: Path) -> list[str]:
    return ["--model_name_or_path", str(model), "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict",
            "--num_train_epochs", "8", "--learning_rate", "5e-3", "--per_device_train_batch_size", "8",
            "--max_seq_length", "32", "--report_to", "none", "--save_strategy", "no", "--seed", "1",
            "--use_cpu", "true", "--disable_tqdm", "true"]


def test_run_ner_trains_on_conll_and_writes_every_output(tiny_bert_dir: Path, conll_files, tmp_path: Path) -> None:
    import run_ner

    out = tmp_path / "out"
    results = run_ner.main(common_flags(tiny_bert_dir, out) + [
        "--train_file", str(conll_files["train"]), "--validation_file", str(conll_files["validation"]),
        "--test_file", str(conll_files["test"]), "--return_entity_level_metrics"])
    for name in ("model.safetensors", "config.json", "tokenizer.json", "all_results.json", "eval_results.json",
                 "predict_results.json", "predictions.txt", "tagtune_config.json", "README.md"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.bin"))
    config = json.loads((out / "config.json").read_text())
    assert set(config["id2label"].values()) == {"O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"}
    assert results["predict_overall_f1"] > 0.9, results  # the toy task is learnable
    assert "predict_PER_f1" in results and "eval_LOC_f1" in results
    # one line per test word, blank line after each sentence, gold and predicted columns
    test_words = sum(len(s) for s in make_sentences(12, 2))
    lines = (out / "predictions.txt").read_text().split("\n")
    assert sum(1 for line in lines if line) == test_words
    assert lines.count("") == 12 + 1  # 12 sentence separators plus the final newline
    first = lines[0].split()
    assert len(first) == 3 and first[1] in config["label2id"]


def test_run_ner_reads_integer_ids_with_labels_json(tiny_bert_dir: Path, tmp_path: Path) -> None:
    import run_ner

    names = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
    data = tmp_path / "data"
    data.mkdir()
    train = write_jsonl_ids(data / "train.json", make_sentences(24, 0), names)
    test = write_jsonl_ids(data / "test.json", make_sentences(6, 2), names)
    out = tmp_path / "out"
    flags = common_flags(tiny_bert_dir, out)
    flags.remove("--do_eval")
    results = run_ner.main(flags + ["--train_file", str(train), "--test_file", str(test)])
    config = json.loads((out / "config.json").read_text())
    assert list(config["label2id"]) != [f"LABEL_{i}" for i in range(7)]
    assert sorted(config["label2id"]) == sorted(names)
    assert results["predict_samples"] == 6


def test_output_dir_is_not_overwritten_without_flag(tiny_bert_dir: Path, conll_files, tmp_path: Path) -> None:
    import run_ner

    from tagtune.errors import OutputDirError

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(OutputDirError, match="--overwrite_output_dir"):
        run_ner.main(common_flags(tiny_bert_dir, out) + ["--train_file", str(conll_files["train"])])
    assert (out / "keep.txt").read_text() == "precious"


def test_cli_train_then_evaluate(tiny_bert_dir: Path, conll_files, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tagtune.cli import app

    out = tmp_path / "cli-out"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--model", str(tiny_bert_dir), "--train", str(conll_files["train"]),
                                 "--validation", str(conll_files["validation"]), "--output", str(out),
                                 "--epochs", "8", "--lr", "5e-3", "--batch-size", "8", "--quiet",
                                 "--max_seq_length", "32", "--save_strategy", "no", "--use_cpu", "true"])
    assert result.exit_code == 0, result.output
    assert "eval_f1: " in result.output
    evaluated = runner.invoke(app, ["evaluate", str(out), str(conll_files["test"]), "--quiet",
                                    "--output_dir", str(tmp_path / "eval")])
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    assert metrics["eval_words"] == sum(len(s) for s in make_sentences(12, 2))
    assert metrics["eval_f1"] > 0.9


def test_cli_bad_flag_value_is_one_line_exit_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tagtune.cli import app

    result = CliRunner().invoke(app, ["train", "--engine", "tpu-magic", "--output", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "error: --engine 'tpu-magic' is not one of trainer, accelerate" in result.output


def test_token_budget_batches_and_cached_second_run(tiny_bert_dir: Path, conll_files, tmp_path: Path, caplog,
                                                    monkeypatch) -> None:
    import logging

    monkeypatch.setenv("TAGTUNE_CACHE", str(tmp_path / "cache"))  # other tests cache the same file

    import run_ner

    flags = ["--model_name_or_path", str(tiny_bert_dir), "--do_train", "--num_train_epochs", "1",
             "--max_seq_length", "32", "--report_to", "none", "--save_strategy", "no", "--use_cpu", "true",
             "--disable_tqdm", "true", "--max_tokens_per_batch", "160", "--train_file", str(conll_files["train"])]
    caplog.set_level(logging.INFO, logger="tagtune")
    first = run_ner.main(flags + ["--output_dir", str(tmp_path / "a")])
    assert "tokenized 48 sentences" in caplog.text
    from tagtune.align import Aligner, load_tokenizer
    from tagtune.batching import token_budget_batches
    from tagtune.config import AlignConfig, DataConfig
    from tagtune.readers import read_file

    examples, _ = read_file(conll_files["train"], DataConfig())
    lengths = [len(ids) for ids in Aligner(load_tokenizer(str(tiny_bert_dir)), AlignConfig(max_length=32)).encode(examples).input_ids]
    state = json.loads((tmp_path / "a" / "trainer_state.json").read_text())
    assert state["global_step"] == len(token_budget_batches(lengths, 160, seed=42)) != 48 // 8
    assert first["train_padding_fraction"] < 0.15
    caplog.clear()
    run_ner.main(flags + ["--output_dir", str(tmp_path / "b")])
    assert "tokenization skipped" in caplog.text
