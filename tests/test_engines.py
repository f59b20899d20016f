"""One behaviour suite over both training engines: what a run does must not depend on ``--engine``.

Each test runs ``tagtune train --engine trainer|accelerate`` in this process on a tiny BERT and a small
CoNLL file written here, and checks what the run wrote.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

ENGINES = ("trainer", "accelerate")
WORDS = "the a of to in and is was for on with as by at from said will has week year".split()
NAMES = [("john", "PER"), ("paris", "LOC"), ("reuters", "ORG"), ("london", "LOC"), ("mary", "PER")]


def write_conll(path: Path, sentences: int, seed: int) -> list[list[str]]:
    """Sentences of 2 to 40 words (so that token budgets and sentence counts give other batches)."""
    rng = random.Random(seed)
    out, lines = [], []
    for _ in range(sentences):
        words = []
        for _ in range(rng.choice([1, 2, 3, 10, 20])):
            if rng.random() < 0.4:
                name, kind = rng.choice(NAMES)
                words.append((name, f"B-{kind}"))
            else:
                words.append((rng.choice(WORDS), "O"))
        words.append((".", "O"))
        out.append([w for w, _ in words])
        lines += [f"{w} {t}" for w, t in words] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def train_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("engines") / "train.txt"
    write_conll(path, 60, seed=5)
    return path


@pytest.fixture(autouse=True)
def fresh_accelerate():
    """Accelerate keeps one process-wide state; each run starts from a fresh one, as a new process would."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def train(engine: str, model: Path, train_file: Path, out: Path, *extra: str):
    """``tagtune train`` with the given engine; returns the CLI result and the run's results."""
    from typer.testing import CliRunner

    from tagtune.cli import app

    result = CliRunner().invoke(app, [
        "train", "--engine", engine, "--model", str(model), "--train", str(train_file), "--output", str(out),
        "--epochs", "1", "--batch-size", "8", "--lr", "1e-3", "--quiet", "--max_seq_length", "32", "--seed", "1",
        *extra])
    found = json.loads((out / "all_results.json").read_text()) if (out / "all_results.json").is_file() else {}
    return result, found


def optimizer_steps(out: Path, results: dict) -> int:
    if "train_steps" in results:  # the accelerate loop
        return results["train_steps"]
    return json.loads((out / "trainer_state.json").read_text())["global_step"]


def window_lengths(model: Path, train_file: Path) -> list[int]:
    from tagtune.align import Aligner, load_tokenizer
    from tagtune.config import AlignConfig, DataConfig
    from tagtune.readers import read_file

    examples, _ = read_file(train_file, DataConfig())
    return [len(ids) for ids in Aligner(load_tokenizer(str(model)), AlignConfig(max_length=32)).encode(examples).input_ids]


@pytest.mark.parametrize("engine", ENGINES)
def test_default_batches_hold_a_token_budget(engine, tiny_bert_dir, train_file, tmp_path):
    """No batching flag: batches of 10 x --batch-size padded sub-tokens (80 here), in both engines."""
    from tagtune.batching import token_budget_batches

    out = tmp_path / engine
    result, found = train(engine, tiny_bert_dir, train_file, out)
    assert result.exit_code == 0, result.output
    lengths = window_lengths(tiny_bert_dir, train_file)
    expected = len(token_budget_batches(lengths, 80, seed=1))
    assert expected != math.ceil(len(lengths) / 8)  # the data tells the two batchings apart
    assert optimizer_steps(out, found) == expected
    assert found["train_padding_fraction"] < 0.15
    assert found["train_real_tokens"] == sum(lengths)  # every window trained on once


@pytest.mark.parametrize("engine", ENGINES)
def test_group_by_length_false_gives_upstream_random_batches(engine, tiny_bert_dir, train_file, tmp_path):
    out = tmp_path / engine
    result, found = train(engine, tiny_bert_dir, train_file, out, "--group_by_length", "false")
    assert result.exit_code == 0, result.output
    lengths = window_lengths(tiny_bert_dir, train_file)
    assert optimizer_steps(out, found) == math.ceil(len(lengths) / 8)
    assert found["train_padding_fraction"] > 0.3  # random batches of mixed lengths pad a lot
    assert found["train_real_tokens"] == sum(lengths)


@pytest.mark.parametrize("engine", ENGINES)
def test_bare_group_by_length_and_explicit_budget(engine, tiny_bert_dir, train_file, tmp_path):
    from tagtune.batching import token_budget_batches

    result, found = train(engine, tiny_bert_dir, train_file, tmp_path / "grouped", "--group_by_length")
    assert result.exit_code == 0, result.output
    lengths = window_lengths(tiny_bert_dir, train_file)
    assert optimizer_steps(tmp_path / "grouped", found) == math.ceil(len(lengths) / 8)
    result, found = train(engine, tiny_bert_dir, train_file, tmp_path / "budget", "--max_tokens_per_batch", "96")
    assert result.exit_code == 0, result.output
    assert optimizer_steps(tmp_path / "budget", found) == len(token_budget_batches(lengths, 96, seed=1))


@pytest.mark.parametrize("engine", ENGINES)
def test_two_batchings_at_once_are_one_error_line(engine, tiny_bert_dir, train_file, tmp_path, monkeypatch, capsys):
    from tagtune.cli import main

    monkeypatch.setattr("sys.argv", [
        "tagtune", "train", "--engine", engine, "--model", str(tiny_bert_dir), "--train", str(train_file),
        "--output", str(tmp_path / "out"), "--quiet", "--max_tokens_per_batch", "100", "--group_by_length", "true"])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith("error: --max_tokens_per_batch 100 (token-budget batches) and")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine", ENGINES)
def test_second_run_loads_the_cached_tokenization(engine, tiny_bert_dir, train_file, tmp_path, monkeypatch, caplog):
    import logging

    monkeypatch.setenv("TAGTUNE_CACHE", str(tmp_path / "cache"))
    caplog.set_level(logging.INFO, logger="tagtune")
    result, _ = train(engine, tiny_bert_dir, train_file, tmp_path / "first", "--max_steps", "1")
    assert result.exit_code == 0, result.output
    assert "train: tokenized 60 sentences" in caplog.text and "tokenization skipped" not in caplog.text
    caplog.clear()
    result, _ = train(engine, tiny_bert_dir, train_file, tmp_path / "second", "--max_steps", "1")
    assert result.exit_code == 0, result.output
    assert "train: loaded cached tokenization of 60 sentences" in caplog.text
    caplog.clear()
    result, _ = train(engine, tiny_bert_dir, train_file, tmp_path / "third", "--max_steps", "1", "--overwrite_cache")
    assert result.exit_code == 0, result.output
    assert "train: tokenized 60 sentences" in caplog.text


@pytest.mark.parametrize("engine", ENGINES)
def test_time_budget_stops_training_with_the_learning_rate_decayed(engine, tiny_bert_dir, train_file, tmp_path):
    out = tmp_path / engine
    result, found = train(engine, tiny_bert_dir, train_file, out, "--num_train_epochs", "10000",
                          "--max_train_seconds", "2")
    assert result.exit_code == 0, result.output
    assert 2 <= found["train_runtime"] < 60
    assert 1 <= optimizer_steps(out, found) and found["epoch"] < 10000


@pytest.mark.parametrize("engine", ENGINES)
def test_evaluation_holds_one_chunk_of_sentences_at_a_time(engine, tiny_bert_dir, train_file, tmp_path, monkeypatch):
    """Both engines evaluate through the one chunked evaluator: never more than a chunk of sentences is
    encoded at once, whatever the size of the split (bounded memory)."""
    import tagtune.evaluate
    from tagtune.align import Aligner

    monkeypatch.setattr(tagtune.evaluate, "CHUNK_SIZE", 7)
    sizes: list[int] = []
    real_encode = Aligner.encode

    def recording_encode(self, examples, *args, labelled=True, **kwargs):
        if not labelled:
            sizes.append(len(examples))
        return real_encode(self, examples, *args, labelled=labelled, **kwargs)

    monkeypatch.setattr(Aligner, "encode", recording_encode)
    result, found = train(engine, tiny_bert_dir, train_file, tmp_path / engine, "--validation_file", str(train_file))
    assert result.exit_code == 0, result.output
    assert found["eval_samples"] == 60 and found["eval_words"] > 60
    assert sizes and max(sizes) <= 7 and sum(sizes) >= 60


class Killed(BaseException):
    """A kill in the middle of the final write (not an Exception: nothing may catch it)."""


@pytest.mark.parametrize("engine", ENGINES)
def test_a_kill_during_the_final_write_leaves_no_weights_under_new_settings(engine, tiny_bert_dir, train_file,
                                                                            tmp_path, monkeypatch):
    import tagtune.fileio
    from tagtune.errors import ModelLoadError
    from tagtune.predict import load

    out = tmp_path / engine
    result, _ = train(engine, tiny_bert_dir, train_file, out)
    assert result.exit_code == 0, result.output
    real_replace = tagtune.fileio.os.replace

    def replace(source, destination):
        if Path(destination).name == "model.safetensors":
            raise Killed
        return real_replace(source, destination)

    monkeypatch.setattr(tagtune.fileio.os, "replace", replace)
    with pytest.raises(Killed):  # the run dies as the new weights are moved into place
        train(engine, tiny_bert_dir, train_file, out, "--overwrite_output_dir", "--max_seq_length", "24")
    assert json.loads((out / "tagtune_config.json").read_text())["align"]["max_length"] == 24  # new settings
    assert (out / "config.json").is_file() and not (out / "model.safetensors").exists()
    with pytest.raises(ModelLoadError):
        load(out)


@pytest.mark.parametrize("engine", ENGINES)
def test_crf_document_context_and_report(engine, tiny_bert_dir, train_file, tmp_path):
    out = tmp_path / engine
    result, found = train(engine, tiny_bert_dir, train_file, out, "--crf", "--document_context",
                          "--validation_file", str(train_file))
    assert result.exit_code == 0, result.output
    config = json.loads((out / "tagtune_config.json").read_text())
    assert config["model"]["crf"] is True and config["align"]["context_size"] == 32
    assert (out / "crf.safetensors").is_file() and (out / "report.html").is_file()
    assert "eval_f1" in found and (out / "README.md").is_file()


@pytest.mark.parametrize("engine", ENGINES)
def test_push_to_hub_publishes_the_finished_directory_once(engine, tiny_bert_dir, train_file, tmp_path, monkeypatch):
    """--push_to_hub uploads, once and at the end, the finished directory (card and results included, no
    checkpoint); the token goes to the hub client only. The upload call is replaced (no network here)."""
    import huggingface_hub

    token = "hf_" + "k3y" * 10
    calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", {"repo_id": repo_id, "token": self.token}))

    def upload_folder(self, *, repo_id, folder_path, ignore_patterns, **kwargs):
        import fnmatch

        folder = Path(folder_path)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        kept = [f for f in files if not any(fnmatch.fnmatch(f, pattern) for pattern in ignore_patterns)]
        calls.append(("upload_folder", {"repo_id": repo_id, "files": kept, "token": self.token,
                                        "texts": [(folder / f).read_bytes() for f in kept]}))
        return "https://hub.example/commit"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    save = ["--save_steps", "3"] if engine == "trainer" else ["--checkpointing_steps", "3"]
    out = tmp_path / engine
    result, found = train(engine, tiny_bert_dir, train_file, out, "--push_to_hub", "--hub_model_id", "me/ner",
                          "--hub_token", token, *save)
    assert result.exit_code == 0, result.output
    assert [name for name, _ in calls] == ["create_repo", "upload_folder"]
    upload = calls[1][1]
    assert upload["repo_id"] == "me/ner" and upload["token"] == token
    assert {"model.safetensors", "README.md", "all_results.json", "tagtune_config.json"} <= set(upload["files"])
    assert not [f for f in upload["files"] if f.split("/")[0].startswith(("checkpoint-", "step_", "epoch_"))]
    assert any(p.name.startswith(("checkpoint-", "step_")) for p in out.iterdir())  # they exist, unpublished
    assert not [f for f, text in zip(upload["files"], upload["texts"]) if token.encode() in text]


@pytest.mark.parametrize("engine", ENGINES)
def test_eval_loss_and_pad_to_max_length_in_evaluation(engine, tiny_bert_dir, train_file, tmp_path, monkeypatch):
    """The streaming evaluation reports eval_loss (mean cross-entropy of the gold tags), and
    --pad_to_max_length gives evaluation batches the fixed shape it gives training batches."""
    import tagtune.inference

    widths: list[int] = []
    real = tagtune.inference.pad_batch

    def recording(rows, pad_id, multiple_of=1, length=None):
        ids, mask = real(rows, pad_id, multiple_of, length)
        widths.append(ids.shape[1])
        return ids, mask

    monkeypatch.setattr(tagtune.inference, "pad_batch", recording)
    result, found = train(engine, tiny_bert_dir, train_file, tmp_path / engine, "--validation_file", str(train_file),
                          "--pad_to_max_length")
    assert result.exit_code == 0, result.output
    assert widths and set(widths) == {32}  # --max_seq_length 32
    assert 0 < found["eval_loss"] < 5


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory) -> Path:
    """A data set repository as the hub serves it (Parquet shards + a dataset card), in a local folder: the
    offline stand-in for --dataset_name NAME. The tags are ClassLabel ids; their names live in the features."""
    from datasets import ClassLabel, Dataset, Features, Sequence, Value

    names = ["O", "B-PER", "I-PER", "B-LOC"]
    features = Features({"id": Value("string"), "tokens": Sequence(Value("string")),
                         "ner_tags": Sequence(ClassLabel(names=names))})
    root = tmp_path_factory.mktemp("hub") / "my-corpus"
    (root / "data").mkdir(parents=True)
    rows = [(["John", "Smith", "lives", "in", "Paris", "."], [1, 2, 0, 0, 3, 0]), (["Mary", "left", "."], [1, 0, 0])]
    for split, n in (("train", 24), ("validation", 6), ("test", 6)):
        chosen = [rows[i % 2] for i in range(n)]
        Dataset.from_dict({"id": [str(i) for i in range(n)], "tokens": [t for t, _ in chosen],
                           "ner_tags": [g for _, g in chosen]}, features=features
                          ).to_parquet(str(root / "data" / f"{split}-00000-of-00001.parquet"))
    card = ["---", "configs:", "- config_name: default", "  data_files:"]
    card += [f"  - split: {split}\n    path: data/{split}-*" for split in ("train", "validation", "test")]
    (root / "README.md").write_text("\n".join(card + ["---", "# my-corpus", ""]), encoding="utf-8")
    return root


@pytest.mark.parametrize("engine", ENGINES)
def test_a_local_dataset_repository_as_dataset_name(engine, tiny_bert_dir, hub_folder, tmp_path):
    from typer.testing import CliRunner

    from tagtune.cli import app

    out, cache = tmp_path / engine, tmp_path / "datasets-cache"
    result = CliRunner().invoke(app, ["train", "--engine", engine, "--model", str(tiny_bert_dir), "--output", str(out),
                                      "--quiet", "--dataset_name", str(hub_folder), "--cache_dir", str(cache),
                                      "--max_seq_length", "32", "--max_steps", "2", "--seed", "1"])
    assert result.exit_code == 0, result.output
    found = json.loads((out / "all_results.json").read_text())
    assert found["eval_samples"] == 6 and found["predict_samples"] == 6 and found["predict_words"] == 27
    config = json.loads((out / "config.json").read_text())
    assert sorted(config["id2label"].values()) == ["B-LOC", "B-PER", "I-PER", "O"]  # ClassLabel names kept
    assert any(cache.rglob("*.arrow"))  # --cache_dir reached datasets.load_dataset


@pytest.mark.parametrize("engine", ENGINES)
def test_calibrate_after_training(engine, tiny_bert_dir, train_file, tmp_path):
    """--calibrate: a temperature fitted on the validation split lands in the model directory with the model, and
    the saved model's predictions keep their tags (only scores change)."""
    from tagtune.predict import load

    out = tmp_path / engine
    result, found = train(engine, tiny_bert_dir, train_file, out, "--validation_file", str(train_file),
                          "--calibrate", "--lr", "5e-3")
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "calibration.json").read_text())
    assert saved and json.loads((out / "tagtune_config.json").read_text())["eval"]["calibrate"] is True
    calibrated, raw = load(out), load(out, calibrated=False)
    text = "john lives in paris and mary in london ."
    assert [(e.start, e.end, e.label) for e in calibrated(text)] == [(e.start, e.end, e.label) for e in raw(text)]
