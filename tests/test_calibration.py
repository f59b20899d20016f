"""Calibrated entity scores: fitting recovers a known temperature, ECE and the precision/recall table
are exact, the calibration is saved in the model directory and used by torch, ONNX and the service,
tags never change, and --min_score drops or marks entities for review."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import tagtune
from conftest import NER_LABELS
from tagtune.calibration import (
    CALIBRATION_FILE,
    Calibration,
    EntityScores,
    expected_calibration_error,
    fit_entity_temperatures,
    fit_word_temperatures,
    load_calibration,
    reliability,
    save_calibration,
    threshold_table,
)
from tagtune.errors import ConfigError, ModelLoadError
from tagtune.inference import log_softmax

TEXTS = ["Angela Merkel visited Paris.", "John Smith of Reuters said Monday the EU rejects British lamb.",
         "Peter Blackburn went to Brussels and Berlin with Mary Jones."]
SENTENCES = [
    (["peter", "blackburn", "visited", "paris", "on", "monday"], ["B-PER", "I-PER", "O", "B-LOC", "O", "O"]),
    (["the", "eu", "rejects", "german", "call"], ["O", "B-ORG", "O", "O", "O"]),
    (["john", "smith", "of", "reuters", "said", "in", "london"], ["B-PER", "I-PER", "O", "B-ORG", "O", "O", "B-LOC"]),
    (["mary", "jones", "won", "the", "cup", "against", "china"], ["B-PER", "I-PER", "O", "O", "O", "O", "B-LOC"]),
    (["the", "bank", "of", "japan", "said", "on", "friday"], ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "O", "O"]),
] * 4


def write_conll(path: Path, sentences=SENTENCES) -> Path:
    path.write_text("".join("".join(f"{w} {t}\n" for w, t in zip(words, tags)) + "\n" for words, tags in sentences))
    return path


@pytest.fixture()
def model_dir(tiny_ner_dir, tmp_path) -> Path:
    """A copy of the tiny NER model: the tests write calibration.json into it."""
    return Path(shutil.copytree(tiny_ner_dir, tmp_path / "model"))


def calibrate(model_dir: Path, temperature: float, per_label: tuple[float, ...] | None = None) -> Calibration:
    calibration = Calibration(tuple(NER_LABELS), per_label or (temperature,) * len(NER_LABELS), per_label is not None)
    save_calibration(model_dir, calibration)
    return calibration


# ------------------------------------------------------------------------------------------ fitting


def test_word_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (20_000, 5))
    probs = np.exp(log_softmax(logits / 2.5))
    gold = (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)  # sampled from the true probabilities
    fitted = fit_word_temperatures(log_softmax(logits), gold)
    assert fitted.shape == (5,) and len(set(fitted.tolist())) == 1
    assert fitted[0] == pytest.approx(2.5, rel=0.05)


def test_per_label_fit_recovers_known_temperatures() -> None:
    rng = np.random.default_rng(1)
    truth = np.array([0.5, 1.0, 2.0, 4.0])
    scores = log_softmax(rng.normal(0, 3, (40_000, 4)))
    probs = np.exp(log_softmax(scores / truth))
    gold = (probs.cumsum(axis=1) > rng.random((len(probs), 1))).argmax(axis=1)
    np.testing.assert_allclose(fit_word_temperatures(scores, gold, per_label=True), truth, rtol=0.15)


def test_entity_fit_recovers_a_known_temperature() -> None:
    # One-word entities that are right as often as the true (tempered) probability of their label says.
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 3, (20_000, 5))
    chosen = logits.argmax(axis=1)
    right = rng.random(len(chosen)) < np.exp(log_softmax(logits / 0.6))[np.arange(len(chosen)), chosen]
    fitted = fit_entity_temperatures(log_softmax(logits), chosen, np.arange(len(chosen)), right)
    assert fitted[0] == pytest.approx(0.6, rel=0.05)


def test_nothing_to_fit_is_an_error() -> None:
    with pytest.raises(ConfigError, match="needs predicted entities"):
        fit_entity_temperatures(np.zeros((0, 3)), np.zeros(0), np.zeros(0), np.zeros(0))
    with pytest.raises(ConfigError, match="needs labelled words"):
        fit_word_temperatures(np.zeros((0, 3)), np.zeros(0))


def test_entity_scores_of_a_split_are_the_tagger_s_scores() -> None:
    labels = ["O", "B-PER", "I-PER"]
    scores = np.log(np.array([[0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.7, 0.2, 0.1]]))
    collected = EntityScores(labels, "IOB2")
    collected.add(scores, ["B-PER", "I-PER", "O"], ["B-PER", "I-PER", "O"])
    collected.add(scores, ["B-PER", "I-PER", "O"], ["O", "B-PER", "O"])
    np.testing.assert_allclose(collected.scores(), [0.7, 0.7])
    assert collected.correct == [True, False] and collected.gold_entities == 2
    calibration = Calibration(tuple(labels), (2.0, 2.0, 2.0))
    expected = calibration.chosen(scores[:2], [1, 2]).mean()
    np.testing.assert_allclose(collected.scores(calibration), [expected, expected])
    summary = collected.summary(calibration)
    assert summary["before"]["ece"] == pytest.approx(0.2) and "after" in summary
    assert summary["thresholds"][0] == {"min_score": 0.0, "kept": 2, "precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_ece_reliability_and_thresholds_are_exact() -> None:
    scores, right = [0.05, 0.35, 0.95, 0.95], [False, True, True, False]
    assert expected_calibration_error(scores, right) == pytest.approx((0.05 + 0.65 + 2 * 0.45) / 4)
    assert [b["count"] for b in reliability(scores, right)] == [1, 1, 2]
    table = threshold_table(scores, right, gold=3, thresholds=(0.0, 0.5, 0.99))
    assert [(r["kept"], r["precision"], r["recall"]) for r in table] == [
        (4, 0.5, pytest.approx(2 / 3, abs=1e-6)), (2, 0.5, pytest.approx(1 / 3, abs=1e-6)), (0, 0.0, 0.0)]


# ------------------------------------------------------------------------------------------ the file


def test_saved_file_round_trips_and_wrong_files_are_refused(tmp_path) -> None:
    calibration = Calibration(("O", "B-X"), (1.5, 3.0), per_label=True, fitted_on={"data": "dev.txt"})
    save_calibration(tmp_path, calibration)
    saved = json.loads((tmp_path / CALIBRATION_FILE).read_text())
    assert saved["label_temperatures"] == {"O": 1.5, "B-X": 3.0} and saved["method"] == "temperature"
    assert load_calibration(tmp_path, ["O", "B-X"]) == calibration
    assert load_calibration(tmp_path / "none", ["O"]) is None
    with pytest.raises(ModelLoadError, match=r"was fitted for the labels \['O', 'B-X'\], not this model's \['O', 'B-Y'\]"):
        load_calibration(tmp_path, ["O", "B-Y"])
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"labels": ["O"], "temperature": -1}))
    with pytest.raises(ModelLoadError, match="temperatures must be positive numbers"):
        load_calibration(tmp_path, ["O"])
    (tmp_path / CALIBRATION_FILE).write_text("[1, 2]")
    with pytest.raises(ModelLoadError, match="is not a calibration written by tagtune"):
        load_calibration(tmp_path, ["O"])


# ------------------------------------------------------------------------------------------ backends


def _scores_and_tags(tagger, texts=TEXTS):
    predictions = list(tagger.predict(texts))
    return ([p.tags for p in predictions], [[(e.start, e.end, e.label) for e in p.entities] for p in predictions],
            [[e.score for e in p.entities] for p in predictions])


@pytest.mark.parametrize("aggregation", ["first", "simple"])
def test_torch_tagger_uses_the_calibration_and_keeps_its_tags(model_dir, aggregation) -> None:
    raw = tagtune.load(model_dir, precision="fp32", aggregation=aggregation)
    assert raw.calibration is None and raw.metadata()["calibration"] is None
    calibrate(model_dir, 3.0, per_label=(0.5, 3.0, 1.0, 2.0, 4.0, 1.5, 0.8))  # per label: arg-max could change
    calibrated = tagtune.load(model_dir, precision="fp32", aggregation=aggregation)
    assert calibrated.metadata()["calibration"]["per_label"] is True
    tags, spans, scores = _scores_and_tags(calibrated)
    raw_tags, raw_spans, raw_scores = _scores_and_tags(raw)
    assert (tags, spans) == (raw_tags, raw_spans) and sum(map(len, spans)) > 0
    assert scores != raw_scores
    off = tagtune.load(model_dir, precision="fp32", aggregation=aggregation, calibrated=False)
    assert _scores_and_tags(off) == (raw_tags, raw_spans, raw_scores)


def test_a_temperature_above_one_lowers_confident_scores(model_dir) -> None:
    raw = [s for p in _scores_and_tags(tagtune.load(model_dir, precision="fp32"))[2] for s in p]
    calibrate(model_dir, 4.0)
    soft = [s for p in _scores_and_tags(tagtune.load(model_dir, precision="fp32"))[2] for s in p]
    assert all(b < a for a, b in zip(raw, soft) if a > 0.5)


def test_onnx_export_carries_the_calibration(model_dir, tmp_path) -> None:
    from tagtune.export import export_onnx

    calibrate(model_dir, 2.0)
    expected = _scores_and_tags(tagtune.load(model_dir, precision="fp32"))
    out = tmp_path / "onnx"
    export_onnx(model_dir, out, check_texts=TEXTS[:1])
    assert (out / CALIBRATION_FILE).is_file()
    onnx = tagtune.load(out, backend="onnx")
    assert onnx.calibration == tagtune.load(model_dir).calibration
    tags, spans, scores = _scores_and_tags(onnx)
    assert (tags, spans) == expected[:2]
    np.testing.assert_allclose(sum(scores, []), sum(expected[2], []), atol=1e-3)


def test_onnx_export_next_to_the_weights_reads_a_later_calibration(model_dir) -> None:
    from tagtune.export import export_onnx

    export_onnx(model_dir, model_dir / "onnx", check_texts=TEXTS[:1])
    assert tagtune.load(model_dir, backend="onnx").calibration is None
    calibration = calibrate(model_dir, 2.0)  # fitted after the export
    assert tagtune.load(model_dir, backend="onnx").calibration == calibration


def test_service_reports_calibrated_scores_and_review_marks(model_dir) -> None:
    from fastapi.testclient import TestClient

    from tagtune.serve import create_app

    calibrate(model_dir, 2.5)
    threshold = round(float(np.median([e.score for e in tagtune.load(model_dir, precision="fp32")(TEXTS[1])])), 6)
    tagger = tagtune.load(model_dir, precision="fp32", min_score=threshold, review=True)
    expected = [e.as_dict() for e in tagger(TEXTS[1])]
    assert any(e.get("review") for e in expected) and not all(e.get("review") for e in expected)
    with TestClient(create_app(tagger)) as client:
        assert client.post("/predict", json={"text": TEXTS[1]}).json() == {"entities": expected}
        metadata = client.get("/metadata").json()
    assert metadata["calibration"] == {"temperature": 2.5, "per_label": False}
    assert (metadata["min_score"], metadata["review"]) == (threshold, True)


# ------------------------------------------------------------------------------------------ abstention


def test_min_score_drops_and_review_marks(model_dir) -> None:
    every = [e for entities in tagtune.load(model_dir, precision="fp32")(TEXTS) for e in entities]
    threshold = float(np.median([e.score for e in every]))
    kept = [e for entities in tagtune.load(model_dir, precision="fp32", min_score=threshold)(TEXTS) for e in entities]
    assert kept == [e for e in every if e.score >= threshold] and 0 < len(kept) < len(every)
    marked = [e for entities in tagtune.load(model_dir, precision="fp32", min_score=threshold, review=True)(TEXTS)
              for e in entities]
    assert [(e.start, e.end, e.label) for e in marked] == [(e.start, e.end, e.label) for e in every]
    assert [e.review for e in marked] == [e.score < threshold for e in every]
    assert "review" not in kept[0].as_dict() and next(e for e in marked if e.review).as_dict()["review"] is True


@pytest.mark.parametrize("options, message", [
    ({"min_score": 1.5}, "--min_score must be between 0 and 1 (an entity score), got 1.5"),
    ({"review": True}, "--review marks the entities scored below --min_score; pass --min_score too"),
])
def test_abstention_options_are_checked(model_dir, options, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tagtune.load(model_dir, **options)


def test_cli_predict_with_min_score(model_dir) -> None:
    from tagtune.cli import app

    runner = CliRunner()
    every = runner.invoke(app, ["predict", str(model_dir), "--text", TEXTS[1], "--precision", "fp32", "--quiet"])
    assert every.exit_code == 0, every.output
    entities = json.loads(every.stdout.splitlines()[0])["entities"]
    threshold = float(np.median([e["score"] for e in entities]))
    result = runner.invoke(app, ["predict", str(model_dir), "--text", TEXTS[1], "--precision", "fp32", "--quiet",
                                 "--min_score", str(threshold), "--review"])
    assert result.exit_code == 0, result.output
    marked = json.loads(result.stdout.splitlines()[0])["entities"]
    assert [e.get("review", False) for e in marked] == [e["score"] < threshold for e in entities]


# ------------------------------------------------------------------------------------------ tagtune evaluate


def test_cli_evaluate_calibrate_saves_reports_and_keeps_the_tags(model_dir, tmp_path) -> None:
    from tagtune.cli import app

    data = write_conll(tmp_path / "dev.txt")
    before = _scores_and_tags(tagtune.load(model_dir, precision="fp32"))
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", str(model_dir), str(data), "--calibrate", "--quiet",
                                 "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout[result.stdout.index("{"):])
    assert metrics["eval_entity_ece_after"] < metrics["eval_entity_ece_before"]
    saved = json.loads((model_dir / CALIBRATION_FILE).read_text())
    assert saved["temperature"] == pytest.approx(metrics["eval_temperature"], abs=1e-6)
    assert saved["fitted_on"]["data"] == "dev.txt" and saved["fitted_on"]["sentences"] == len(SENTENCES)
    after = _scores_and_tags(tagtune.load(model_dir, precision="fp32"))
    assert after[:2] == before[:2] and after[2] != before[2]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["entity_scores"]["after"]["ece"] == metrics["eval_entity_ece_after"]
    assert {"plots/reliability.png", "plots/min_score.png"} <= set(report["plots"])
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Reliability of entity scores" not in page  # a figure, not text
    assert "<h2>Confidence</h2>" in page and "<h2>Minimum score</h2>" in page
    # Evaluating again reads the saved calibration: ECE of the calibrated scores, no new fit.
    again = runner.invoke(app, ["evaluate", str(model_dir), str(data), "--quiet", "-o", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout[again.stdout.index("{"):])["eval_entity_ece_after"] == metrics["eval_entity_ece_after"]


def test_cli_evaluate_per_label_word_objective(model_dir, tmp_path) -> None:
    from tagtune.cli import app

    data = write_conll(tmp_path / "dev.txt")
    result = CliRunner().invoke(app, ["evaluate", str(model_dir), str(data), "--calibrate", "--calibrate_per_label",
                                      "--calibrate_objective", "word", "--quiet"])
    assert result.exit_code == 0, result.output
    saved = json.loads((model_dir / CALIBRATION_FILE).read_text())
    assert saved["objective"] == "word" and set(saved["label_temperatures"]) == set(NER_LABELS)


def test_cli_evaluate_calibrate_options_need_calibrate(model_dir, tmp_path) -> None:
    from tagtune.cli import app

    data = write_conll(tmp_path / "dev.txt")
    result = CliRunner().invoke(app, ["evaluate", str(model_dir), str(data), "--calibrate_per_label"])
    assert result.exit_code == 2
    assert "--calibrate_per_label and --calibrate_objective set how --calibrate fits; pass --calibrate too" in result.output


# ------------------------------------------------------------------------------------------ end of training


def test_end_of_training_hook_fits_on_validation_and_measures_on_test(tiny_ner_dir) -> None:
    from tagtune.calibration import calibrate_trained_model
    from tagtune.checkpoint import load_checkpoint
    from tagtune.corpus import Example

    checkpoint = load_checkpoint(tiny_ner_dir)
    examples = [Example(tuple(words), tuple(tags)) for words, tags in SENTENCES]
    model = checkpoint.model
    model.train()
    calibration, summary = calibrate_trained_model(model, checkpoint.aligner(), examples, checkpoint.decoder(), "IOB2",
                                                   test=examples[:5])
    assert model.training  # left as it was
    assert calibration is not None and calibration.fitted_on["sentences"] == len(examples)
    assert summary["gold_entities"] == 9 and summary["after"]["ece"] <= summary["before"]["ece"]


def test_end_of_training_hook_warns_instead_of_failing(caplog) -> None:
    from types import SimpleNamespace

    import torch

    from tagtune.calibration import calibrate_trained_model
    from tagtune.corpus import Example
    from tagtune.decode import Decoder

    class OnlyO(torch.nn.Module):  # predicts no entity: nothing to calibrate
        def forward(self, input_ids, attention_mask):
            logits = torch.zeros(*input_ids.shape, len(NER_LABELS))
            logits[..., 0] = 5.0
            return SimpleNamespace(logits=logits)

    class Aligner:
        pad_id = 0

        def encode(self, examples, labelled=False):
            from tagtune.align import Encoding

            return Encoding(input_ids=[list(range(1, len(e.tokens) + 1)) for e in examples],
                            word_index=[list(range(len(e.tokens))) for e in examples],
                            example_index=list(range(len(examples))), word_counts=[len(e.tokens) for e in examples])

    examples = [Example(tuple(words), tuple(tags)) for words, tags in SENTENCES[:3]]
    assert calibrate_trained_model(OnlyO(), Aligner(), examples, Decoder(NER_LABELS, "IOB2"), "IOB2") == (None, None)
    assert "no calibration of entity scores: calibration of entity scores needs predicted entities" in caplog.text
