"""The evaluation report: numbers equal the metrics module's, the confusion analysis is exact, the HTML
is self-contained, and training / ``tagtune evaluate`` write it (with the model card)."""

from __future__ import annotations

import base64
import doctest
import json
import random
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import tagtune.metrics
import tagtune.report
import tagtune.report_plots
from tagtune.corpus import Example
from tagtune.labels import Span
from tagtune.metrics import OUTCOMES, EntityConfusion, EntityMatch, match_entities, score
from tagtune.report import flatten_config, load_log_history, write_report, write_run_report
from tagtune.report_plots import learning_series

REPO = Path(__file__).resolve().parents[1]
PNG = b"\x89PNG\r\n\x1a\n"
LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]


def test_doctests():
    for module in (tagtune.metrics, tagtune.report, tagtune.report_plots):
        assert doctest.testmod(module).failed == 0, module


def test_each_outcome_from_span_sets():
    gold = [Span("PER", 0, 2), Span("LOC", 3, 4), Span("ORG", 5, 7), Span("PER", 8, 9), Span("LOC", 10, 12),
            Span("ORG", 14, 15)]
    pred = [Span("PER", 0, 2), Span("ORG", 3, 4), Span("ORG", 5, 6), Span("LOC", 8, 10), Span("PER", 11, 12),
            Span("MISC", 16, 17)]
    assert match_entities(gold, pred) == [
        EntityMatch("exact", gold[0], pred[0]),
        EntityMatch("wrong_type", gold[1], pred[1]),
        EntityMatch("wrong_boundary", gold[2], pred[2]),
        EntityMatch("wrong_type_and_boundary", gold[3], pred[3]),
        EntityMatch("wrong_type_and_boundary", gold[4], pred[4]),
        EntityMatch("missed", gold[5], None),
        EntityMatch("spurious", None, pred[5]),
    ]


def test_confusion_counts_and_matrix():
    confusion = EntityConfusion()
    confusion.update(["B-PER", "I-PER", "O", "B-LOC", "O"], ["B-PER", "I-PER", "O", "B-ORG", "B-MISC"])
    confusion.update(["B-ORG", "I-ORG", "I-ORG"], ["B-ORG", "I-ORG", "O"])
    confusion.update(["B-LOC"], ["O"])
    result = confusion.result()
    assert result["totals"] == {"exact": 1, "wrong_type": 1, "wrong_boundary": 1, "wrong_type_and_boundary": 0,
                                "missed": 1, "spurious": 1}
    assert result["outcomes"]["LOC"] == {"exact": 0, "wrong_type": 1, "wrong_boundary": 0,
                                         "wrong_type_and_boundary": 0, "missed": 1, "spurious": 0}
    assert result["matrix"] == {"LOC": {"(none)": 1, "ORG": 1}, "ORG": {"ORG": 1}, "PER": {"PER": 1},
                                "(none)": {"MISC": 1}}
    assert result["gold"] == {"LOC": 2, "MISC": 0, "ORG": 1, "PER": 1}
    assert result["predicted"] == {"LOC": 0, "MISC": 1, "ORG": 2, "PER": 1}


def noisy_corpus(n: int, seed: int) -> tuple[list[Example], list[list[str]]]:
    rng = random.Random(seed)
    examples, predictions = [], []
    for i in range(n):
        tags = []
        while len(tags) < rng.randint(3, 12):
            if rng.random() < 0.3:
                kind = rng.choice(["PER", "LOC", "ORG"])
                tags += [f"B-{kind}"] + [f"I-{kind}"] * rng.randint(0, 2)
            else:
                tags.append("O")
        pred = [rng.choice(LABELS + ["I-MISC"]) if rng.random() < 0.15 else t for t in tags]
        examples.append(Example(tuple(f"w{j}" for j in range(len(tags))), tuple(tags), origin=f"gold.txt:{i * 20 + 1}"))
        predictions.append(pred)
    return examples, predictions


def test_report_numbers_equal_the_metrics_module(tmp_path):
    examples, predictions = noisy_corpus(300, 0)
    write_report(tmp_path, examples, predictions)  # metrics computed by the report
    data = json.loads((tmp_path / "report.json").read_text())
    expected = score([e.tags for e in examples], predictions)
    assert data["metrics"] == expected
    confusion = data["confusion"]
    for type_, scores in expected["per_type"].items():
        exact = confusion["outcomes"][type_]["exact"]
        assert confusion["gold"][type_] == scores["number"]
        assert exact == round(scores["recall"] * scores["number"])
        if confusion["predicted"][type_]:
            assert exact / confusion["predicted"][type_] == pytest.approx(scores["precision"], abs=1e-12)
        gold_side = sum(confusion["outcomes"][type_][o] for o in OUTCOMES if o != "spurious")
        assert gold_side == scores["number"]  # every gold entity has exactly one outcome
    assert confusion["totals"]["exact"] == round(expected["recall"] * expected["number"])
    with_errors = sum(any(m.outcome != "exact" for m in EntityConfusion().update(e.tags, p))
                      for e, p in zip(examples, predictions))
    assert data["sentences_with_errors"] == with_errors and len(data["worst_errors"]) == 30
    counts = [len(record["errors"]) for record in data["worst_errors"]]
    assert counts == sorted(counts, reverse=True)
    worst = data["worst_errors"][0]
    assert worst["origin"].startswith("gold.txt:") and len(worst["tokens"]) == len(worst["pred"])
    page = (tmp_path / "report.html").read_text()
    assert f"<td>{100 * expected['f1']:.2f}</td>" in page
    for type_, scores in expected["per_type"].items():
        assert f"<td>{type_}</td><td>{scores['number']}</td>" in page


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.references: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.references += [value or "" for name, value in attrs if name in ("src", "href", "srcset", "data", "poster")]


def test_html_references_only_embedded_assets(tmp_path):
    examples, predictions = noisy_corpus(40, 1)
    examples[0] = Example(("<script>alert(1)</script>", "&", "Paris"), ("O", "O", "B-LOC"), origin="x:1")
    predictions[0] = ["B-PER", "O", "O"]
    history = [{"loss": 1.0 / (i + 1), "learning_rate": 1e-3 * (1 - i / 10), "epoch": i / 10, "step": i + 1}
               for i in range(10)] + [{"eval_f1": 0.5, "eval_loss": 0.7, "step": 10}, {"train_runtime": 1.0, "step": 10}]
    path = write_report(tmp_path, examples, predictions, log_history=history,
                        config={"model": {"model_name_or_path": "tiny", "token": "hf_secret"}})
    page = path.read_text(encoding="utf-8")
    parser = _Assets()
    parser.feed(page)
    assert parser.tags.isdisjoint({"script", "link", "iframe", "object", "embed"})
    assert len(parser.references) == 3 and all(ref.startswith("data:image/png;base64,") for ref in parser.references)
    assert "http://" not in page and "https://" not in page and "@import" not in page and "url(" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert "hf_secret" not in page and "model.model_name_or_path" in page
    files = {p.name: p.read_bytes() for p in (tmp_path / "plots").iterdir()}
    assert sorted(files) == ["confusion.png", "learning_curves.png", "per_type.png"]
    embedded = [base64.b64decode(ref.split(",", 1)[1]) for ref in parser.references]
    assert all(png.startswith(PNG) for png in embedded) and set(embedded) == set(files.values())


def test_learning_series_and_log_history(tmp_path):
    history = [{"loss": 2.0, "learning_rate": 5e-5, "step": 10}, {"eval_overall_f1": 0.6, "eval_loss": 1.5, "step": 10},
               {"loss": 1.0, "lr": 4e-5}, {"train_runtime": 3.0, "step": 20}]
    assert learning_series(history) == {"loss": [(10.0, 2.0), (2.0, 1.0)], "eval_loss": [(10.0, 1.5)],
                                        "learning_rate": [(10.0, 5e-5), (2.0, 4e-5)], "dev_f1": [(10.0, 0.6)]}
    assert load_log_history(tmp_path) is None
    (tmp_path / "checkpoint-5").mkdir()
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text(json.dumps({"log_history": history}))
    assert load_log_history(tmp_path) == history
    examples, predictions = noisy_corpus(5, 2)
    write_report(tmp_path / "no-curves", examples, predictions, log_history=[{"train_runtime": 1.0}])
    assert not (tmp_path / "no-curves" / "plots" / "learning_curves.png").exists()


def test_flatten_config_drops_secrets():
    from tagtune.config import ModelConfig

    flat = flatten_config({"model": ModelConfig("bert", token="hf_x"), "training": {"hub_token": "y", "lr": 1e-3}})
    assert flat["model.model_name_or_path"] == "bert" and flat["training.lr"] == 1e-3
    assert "model.token" not in flat and "training.hub_token" not in flat and "model.tokenizer_name" in flat


def test_run_report_is_skipped_without_scores_and_never_raises(tmp_path, monkeypatch, caplog):
    from tagtune.evaluate import EvalResult

    examples, predictions = noisy_corpus(4, 3)
    assert write_run_report(tmp_path, "test", examples, EvalResult({}, predictions)) is None
    assert write_run_report(tmp_path, "test", examples, None) is None
    monkeypatch.setattr(tagtune.report, "write_report", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full")))
    assert write_run_report(tmp_path, "test", examples, EvalResult({"f1": 1.0}, predictions)) is None
    assert "disk full" in caplog.text
    assert not (tmp_path / "report.html").exists()


def test_report_needs_gold_tags(tmp_path):
    with pytest.raises(ValueError, match="gold tags"):
        write_report(tmp_path, [Example(("a",))], [["O"]])


# --------------------------------------------------------------------------------------------------
# Model card and the hooks in training and `tagtune evaluate`


def write_conll(path: Path, n: int, seed: int) -> Path:
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        person = rng.choice(["angela merkel", "john smith", "mary jones"]).split()
        place = rng.choice(["paris", "london", "new york"]).split()
        lines += [f"{w} {'B' if i == 0 else 'I'}-PER" for i, w in enumerate(person)] + ["visited O"]
        lines += [f"{w} {'B' if i == 0 else 'I'}-LOC" for i, w in enumerate(place)] + [". O", ""]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def test_training_and_evaluate_write_report_and_model_card(tiny_bert_dir, tmp_path):
    sys.path.insert(0, str(REPO / "examples" / "token-classification"))
    import run_ner
    from typer.testing import CliRunner

    from tagtune.cli import app

    train, dev, test = (write_conll(tmp_path / f"{name}.txt", n, seed)
                        for name, n, seed in (("train", 16, 0), ("valid", 6, 1), ("test", 6, 2)))
    out = tmp_path / "model"
    results = run_ner.main([
        "--model_name_or_path", str(tiny_bert_dir), "--output_dir", str(out), "--do_train", "--do_eval", "--do_predict",
        "--train_file", str(train), "--validation_file", str(dev), "--test_file", str(test), "--max_steps", "4",
        "--per_device_train_batch_size", "8", "--learning_rate", "5e-3", "--max_seq_length", "32", "--report_to", "none",
        "--save_strategy", "no", "--logging_steps", "1", "--eval_strategy", "steps", "--eval_steps", "2",
        "--use_cpu", "true", "--disable_tqdm", "true", "--seed", "1"])
    data = json.loads((out / "report.json").read_text())
    assert data["split"] == "test" and data["metrics"]["f1"] == results["predict_f1"]
    assert sorted(p.name for p in (out / "plots").iterdir()) == ["confusion.png", "learning_curves.png", "per_type.png"]
    assert data["config"]["align.max_length"] == 32 and data["config"]["training.max_steps"] == 4
    card = (out / "README.md").read_text()
    assert "## Labels\n5 labels, scheme IOB2; entity types: PER, LOC" in card
    assert "Per type (test):" in card and "| PER |" in card and "report.html" in card
    assert f"| test | {100 * results['predict_precision']:.2f} |" in card
    assert "| train | train.txt | 16 |" in card and "- align.max_length: 32" in card

    evaluated = CliRunner().invoke(app, ["evaluate", str(out), str(dev), "--quiet", "--output_dir", str(tmp_path / "ev")])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    metrics = json.loads((tmp_path / "ev" / "eval_results.json").read_text())
    assert report["metrics"]["f1"] == metrics["eval_f1"] and report["split"] == "valid.txt"
    assert (tmp_path / "ev" / "plots" / "learning_curves.png").is_file()  # from the model's trainer_state.json
    # per type, confusion, learning curves, reliability of entity scores, precision/recall against --min_score
    assert (tmp_path / "ev" / "report.html").read_text().count("data:image/png;base64,") == 5
