"""Distillation: layer selection keeps weights exactly, the loss against a hand-computed value and its
decrease, per-word soft targets under another tokenizer, and students that are ordinary model directories
(predict, ONNX int8 export, the service, the CLI).

Teachers are the tiny models of conftest; the data is test_loop's synthetic NER (the tag of a word depends
on the word), so a distillation run takes seconds.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import tagtune
from conftest import NER_LABELS, run_console
from tagtune.distill import (
    DISTILL_FILE,
    DistillConfig,
    default_keep_layers,
    distill,
    distill_loss,
    keep_layers,
    label_order,
    read_unlabelled,
    soft_target_table,
    student_run_config,
    teacher_scores,
    window_rows,
)
from tagtune.errors import ConfigError
from test_loop import write_split

TEXT = "John Smith visited Paris on Monday."


def _four_layer_bert():
    from transformers import BertConfig, BertForTokenClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, num_labels=3)
    return BertForTokenClassification(config).eval()


def test_kept_layers_keep_their_weights_exactly(tmp_path) -> None:
    from transformers import BertForTokenClassification

    teacher = _four_layer_bert()
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = keep_layers(_four_layer_bert(), [1, 3])
    after = student.state_dict()
    assert student.config.num_hidden_layers == 2 and len(student.bert.encoder.layer) == 2
    renamed = {k.replace("encoder.layer.1.", "encoder.layer.0.X").replace("encoder.layer.3.", "encoder.layer.1.")
               .replace("encoder.layer.0.X", "encoder.layer.0."): v for k, v in before.items()
               if not any(f"encoder.layer.{i}." in k for i in (0, 2))}
    assert set(after) == set(renamed)
    assert all(torch.equal(after[k], renamed[k]) for k in after)
    # Saved and loaded as any transformers model: same weights, same outputs.
    student.save_pretrained(tmp_path)
    loaded = BertForTokenClassification.from_pretrained(tmp_path).eval()
    ids = torch.tensor([[1, 5, 7, 2]])
    assert torch.equal(loaded(input_ids=ids).logits, student(input_ids=ids).logits)


@pytest.mark.parametrize("layers, message", [([3, 1], "expected increasing layer numbers between 0 and 3"),
                                             ([0, 4], "between 0 and 3 \\(the teacher has 4 layers\\)"),
                                             ([], "expected increasing")])
def test_bad_layer_choices_are_one_error(layers, message) -> None:
    with pytest.raises(ConfigError, match=message):
        keep_layers(_four_layer_bert(), layers)


def test_default_layers_are_evenly_spaced_with_the_last() -> None:
    assert default_keep_layers(6, 2) == [2, 5] and default_keep_layers(6, 1) == [5]
    assert default_keep_layers(4, 4) == [0, 1, 2, 3]


def test_loss_matches_the_hand_computed_value() -> None:
    # Teacher p = (0.8, 0.2); at T = 2 it is proportional to sqrt: (2/3, 1/3). Student logits (0, 0): (1/2, 1/2).
    # KL = 2/3 ln(4/3) + 1/3 ln(2/3) = 0.0566330; x T^2 = 0.2265321. Gold label 0: cross-entropy ln 2.
    table = torch.log(torch.tensor([[0.8, 0.2]]))
    logits = torch.zeros(1, 3, 2)  # [CLS] word [SEP]
    targets = torch.tensor([[-1, 0, -1]])
    gold = torch.tensor([[-100, 0, -100]])
    soft = 4 * (2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3))
    loss, parts = distill_loss(logits, gold, targets, table, temperature=2.0, soft_weight=0.5)
    assert parts["soft"] == pytest.approx(soft, abs=1e-6) and parts["gold"] == pytest.approx(math.log(2), abs=1e-6)
    assert float(loss) == pytest.approx(0.5 * 0.2265321 + 0.5 * 0.6931472, abs=1e-6)
    # Without gold (unlabelled text) only the soft term is left.
    loss, parts = distill_loss(logits, torch.full((1, 3), -100), targets, table, temperature=2.0, soft_weight=0.5)
    assert float(loss) == pytest.approx(0.5 * soft, abs=1e-6) and "gold" not in parts
    # At T = 1 and soft weight 1: the plain KL.
    loss, _ = distill_loss(logits, gold, targets, table, temperature=1.0, soft_weight=1.0)
    assert float(loss) == pytest.approx(0.8 * math.log(1.6) + 0.2 * math.log(0.4), abs=1e-6)


def test_loss_decreases_over_a_few_steps() -> None:
    model = _four_layer_bert()  # eval mode: no dropout, so every step must lower the loss
    torch.manual_seed(1)
    ids = torch.randint(5, 50, (4, 8))
    table = torch.log_softmax(3 * torch.randn(24, 3), dim=-1)
    targets = torch.arange(32).reshape(4, 8).clamp(max=23)
    targets[:, 0] = -1
    gold = torch.where(targets >= 0, table.argmax(-1)[targets.clamp(min=0)], -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(6):
        loss, _ = distill_loss(model(input_ids=ids).logits, gold, targets, table, temperature=2.0, soft_weight=0.5)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert all(b < a for a, b in itertools.pairwise(losses)) and losses[-1] < 0.9 * losses[0], losses


def test_label_order_maps_and_renormalises() -> None:
    assert label_order(["O", "B-PER", "I-PER"], ["O", "I-PER", "B-PER"]) == [0, 2, 1]
    with pytest.raises(ConfigError, match="the teacher does not know the label\\(s\\) B-LOC"):
        label_order(["O", "B-PER"], ["O", "B-LOC"])
    table, offsets = soft_target_table([np.log(np.array([[0.5, 0.25, 0.25]], dtype=np.float32))], [0, 2])
    assert offsets.tolist() == [0, 1]
    assert torch.allclose(table.exp(), torch.tensor([[2 / 3, 1 / 3]]))


def test_soft_targets_follow_words_under_another_tokenizer(tiny_roberta_dir) -> None:
    from tagtune.align import Aligner, load_tokenizer
    from tagtune.config import AlignConfig
    from tagtune.corpus import Example

    aligner = Aligner(load_tokenizer(str(tiny_roberta_dir)), AlignConfig(max_length=12, stride=2), {"O": 0})
    examples = [Example(("Angela", "Merkel", "visited", "Paris"), ("O",) * 4),
                Example(("blackburn", "reported", "from", "brussels", "on", "monday", "week"), ("O",) * 7)]
    encoding = aligner.encode(examples)
    offsets = np.array([0, 4, 11])
    rows = window_rows(encoding, offsets)
    assert len(rows) > len(examples)  # the second sentence needs several windows
    for row, example, words in zip(rows, encoding.example_index, encoding.word_index):
        assert [t for t in row["targets"] if t >= 0] == [offsets[example] + w for w in words if w >= 0]
        assert all((t >= 0) == (label != -100) for t, label in zip(row["targets"], row["labels"]))
    covered = sorted(t for row in rows for t in row["targets"] if t >= 0)
    assert covered == list(range(11))  # every word of every sentence exactly once


def test_unlabelled_files_of_any_predict_format(tmp_path) -> None:
    lines = tmp_path / "raw.txt"
    lines.write_text("John Smith visited Paris.\n\nThe U.S. bank said so.\n")
    records = tmp_path / "raw.jsonl"
    records.write_text(json.dumps({"text": "Berlin, Monday"}) + "\n")
    conll = tmp_path / "words.conll"
    conll.write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\n")
    examples = read_unlabelled([lines, records, conll])
    assert [e.tokens for e in examples] == [("John", "Smith", "visited", "Paris", "."), ("The", "U.S.", "bank", "said", "so", "."),
                                            ("Berlin", ",", "Monday"), ("EU", "rejects")]
    assert all(e.tags is None for e in examples)
    assert len(read_unlabelled([lines, records], limit=1)) == 1


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("distill-data")
    write_split(root / "train.json", 40, 1, 10)
    write_split(root / "dev.json", 12, 2, 5)
    (root / "raw.txt").write_text("John Smith visited Paris on Monday.\nThe bank in London said so.\n"
                                  "Mary Jones of Reuters flew to Tokyo.\n")
    return root


def _flags(data: Path, out: Path, **more) -> dict:
    return {"output_dir": out, "train_file": data / "train.json", "validation_file": data / "dev.json",
            "test_file": data / "dev.json", "max_seq_length": 24, "num_train_epochs": 2, "learning_rate": 1e-3,
            "seed": 1, **more}


@pytest.fixture(scope="module")
def student(tiny_ner_dir, data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    settings = DistillConfig(teacher=tiny_ner_dir, student_layers=1, unlabelled_files=(data / "raw.txt",))
    results = distill(student_run_config(settings, **_flags(data, out, overwrite_output_dir=True)), settings)
    assert results["student_layers"] == 1 and results["unlabelled_samples"] == 3
    assert results["train_windows"] > results["train_samples"] and "train_gold_loss" in results
    return out


def test_student_directory_names_teacher_and_settings(student, tiny_ner_dir) -> None:
    record = json.loads((student / DISTILL_FILE).read_text())
    assert record["teacher"] == str(tiny_ner_dir) and record["kept_layers"] == [1] and record["teacher_layers"] == 2
    assert (record["temperature"], record["soft_weight"], record["unlabelled_sentences"]) == (2.0, 0.5, 3)
    saved = json.loads((student / "tagtune_config.json").read_text())
    assert saved["model"]["model_name_or_path"] == str(tiny_ner_dir) and saved["labels"] == NER_LABELS
    assert json.loads((student / "config.json").read_text())["num_hidden_layers"] == 1
    card = (student / "README.md").read_text()
    assert "## Distillation" in card and f"teacher `{tiny_ner_dir}`" in card and "keeps the teacher's layers 1 (of 2)" in card
    assert json.loads((student / "all_results.json").read_text())["predict_samples"] == 12


def test_teacher_scores_are_cached(tiny_ner_dir, caplog) -> None:
    from tagtune.checkpoint import load_checkpoint
    from tagtune.corpus import Example

    teacher = load_checkpoint(tiny_ner_dir)
    examples = [Example(("paris", "said", "john")), Example(("the", "bank"))]
    first = teacher_scores(teacher, examples)
    with caplog.at_level("INFO", logger="tagtune.distill"):
        again = teacher_scores(teacher, examples)
    assert "teacher scores of 2 sentences loaded" in caplog.text
    assert [a.shape for a in first] == [(3, 7), (2, 7)] and all(np.array_equal(a, b) for a, b in zip(first, again))


def test_student_predicts_exports_and_serves(student, tmp_path) -> None:
    from fastapi.testclient import TestClient

    from tagtune.cli import app
    from tagtune.export import ExportConfig, export_onnx
    from tagtune.serve import ServeConfig, create_app

    result = CliRunner().invoke(app, ["predict", str(student), "--text", TEXT, "--quiet"])
    assert result.exit_code == 0, result.output
    tagger = tagtune.load(student, precision="fp32")
    expected = [e.as_dict() for e in tagger(TEXT)]
    assert json.loads(result.stdout)["entities"] == expected
    report = export_onnx(student, tmp_path / "onnx", ExportConfig(quantize="int8"))
    assert report["parity"]["fp32"]["tag_agreement"] == 1.0
    int8 = tagtune.load(tmp_path / "onnx")
    assert (int8.backend, int8.precision) == ("onnx", "int8") and len(int8(TEXT + " " + TEXT)) >= 0
    with TestClient(create_app(tagger, ServeConfig())) as client:
        assert client.post("/predict", json={"text": TEXT}).json() == {"entities": expected}


def test_crf_teacher_gives_a_crf_student(tiny_ner_dir, data, tmp_path) -> None:
    from transformers import BertForTokenClassification

    from tagtune.crf import CRF_FILE, read_crf_file, wrap_with_crf

    teacher = tmp_path / "crf-teacher"
    model = wrap_with_crf(BertForTokenClassification.from_pretrained(tiny_ner_dir), NER_LABELS, "IOB2")
    with torch.no_grad():
        model.crf.transitions.normal_()
    model.save_pretrained(teacher)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_ner_dir / name, teacher / name)
    settings = DistillConfig(teacher=teacher, student_layers=1)
    config = student_run_config(settings, **_flags(data, tmp_path / "out", max_train_steps=2, learning_rate=0.0))
    assert config.model.crf
    distill(config, settings)
    # At learning rate 0 the student keeps the teacher's transitions.
    assert np.allclose(read_crf_file(tmp_path / "out")[2], read_crf_file(teacher)[2])
    assert (tmp_path / "out" / CRF_FILE).is_file() and tagtune.load(tmp_path / "out").checkpoint.transitions is not None


def test_student_model_with_its_own_tokenizer(tiny_ner_dir, tiny_roberta_dir, data, tmp_path) -> None:
    settings = DistillConfig(teacher=tiny_ner_dir, student_model=str(tiny_roberta_dir))
    config = student_run_config(settings, **_flags(data, tmp_path / "out", max_train_steps=3))
    results = distill(config, settings)
    assert results["train_steps"] == 3 and "predict_f1" in results
    record = json.loads((tmp_path / "out" / DISTILL_FILE).read_text())
    assert record["student_model"] == str(tiny_roberta_dir) and record["kept_layers"] is None
    assert tagtune.load(tmp_path / "out", precision="fp32")(TEXT) is not None


def test_settings_are_checked(tiny_ner_dir, data, tmp_path) -> None:
    with pytest.raises(ConfigError, match="--student_model trains another encoder"):
        DistillConfig(teacher=tiny_ner_dir, student_layers=2, student_model="x")
    with pytest.raises(ConfigError, match="--soft_weight must be between 0 and 1"):
        DistillConfig(teacher=tiny_ner_dir, soft_weight=1.5)
    settings = DistillConfig(teacher=tiny_ner_dir, student_layers=2)
    with pytest.raises(ConfigError, match="the teacher has 2 layers: a student of 2 keeps them all"):
        distill(student_run_config(settings, **_flags(data, tmp_path / "out")), settings)


def test_cli_distill(tiny_ner_dir, tiny_bert_dir, data, tmp_path, capsys) -> None:
    from tagtune.cli import invoke

    out = tmp_path / "cli-student"
    args = ["distill", str(tiny_ner_dir), "--keep_layers", "0", "--temperature", "3", "--output_dir", str(out),
            "--train_file", str(data / "train.json"), "--max_train_steps", "2", "--seed", "1", "--quiet"]
    assert run_console(invoke, args) == 0
    assert f"student saved in {out}" in capsys.readouterr().out
    record = json.loads((out / DISTILL_FILE).read_text())
    assert record["kept_layers"] == [0] and record["temperature"] == 3.0
    assert run_console(invoke, [*args[:2], "--keep_layers", "a,b", *args[4:]]) == 2
    assert "--keep_layers 'a,b': expected layer numbers" in capsys.readouterr().err
    assert run_console(invoke, args) == 2  # the student directory is there now
    assert "already exists and is not empty" in capsys.readouterr().err
    for teacher, message in ((tiny_bert_dir, "has no label names (id2label is LABEL_0...)"),
                             (tmp_path / "nowhere", "nowhere' does not exist or is not a directory")):
        assert run_console(invoke, ["distill", str(teacher), *args[2:], "--overwrite_output_dir"]) == 2
        assert message in capsys.readouterr().err
