"""Entity scores equal seqeval's default mode (and upstream run_ner.py's flat names), streaming."""

from __future__ import annotations

import doctest
import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

import tagtune.metrics
from tagtune.metrics import EntityScorer, flatten_metrics, score, token_accuracy

TAGS = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC",
        "E-PER", "S-LOC", "PER", ".ORG", "I-"]
TOL = 1e-12


def seqeval_reference(gold, pred):
    """What ``evaluate``'s seqeval metric returns (the dict upstream run_ner.py flattens)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = classification_report(gold, pred, output_dict=True)
        report.pop("macro avg")
        report.pop("weighted avg")
        overall = report.pop("micro avg")
        scores = {t: {"precision": s["precision"], "recall": s["recall"], "f1": s["f1-score"], "number": s["support"]}
                  for t, s in report.items()}
        scores["overall_precision"] = overall["precision"]
        scores["overall_recall"] = overall["recall"]
        scores["overall_f1"] = overall["f1-score"]
        scores["overall_accuracy"] = accuracy_score(gold, pred)
        singles = (precision_score(gold, pred), recall_score(gold, pred), f1_score(gold, pred), overall["support"])
    return scores, singles


def upstream_compute_metrics(results, entity_level):
    """The tail of upstream run_ner.py's ``compute_metrics``."""
    if entity_level:
        final = {}
        for key, value in results.items():
            if isinstance(value, dict):
                for n, v in value.items():
                    final[f"{key}_{n}"] = v
            else:
                final[key] = value
        return final
    return {"precision": results["overall_precision"], "recall": results["overall_recall"],
            "f1": results["overall_f1"], "accuracy": results["overall_accuracy"]}


def random_corpus(rng, alphabet=TAGS, max_sentences=8, max_len=10, noise=0.3):
    lengths = [rng.randint(0, max_len) for _ in range(rng.randint(1, max_sentences))]
    if not sum(lengths):
        lengths[0] = 1  # seqeval's accuracy divides by the number of words
    gold = [[rng.choice(alphabet) for _ in range(n)] for n in lengths]
    pred = [[rng.choice(alphabet) if rng.random() < noise else tag for tag in sentence] for sentence in gold]
    return gold, pred


def assert_equal_to_seqeval(result, gold, pred):
    reference, (precision, recall, f1, number) = seqeval_reference(gold, pred)
    assert abs(result["precision"] - precision) <= TOL
    assert abs(result["recall"] - recall) <= TOL
    assert abs(result["f1"] - f1) <= TOL
    assert result["number"] == number
    assert abs(result["accuracy"] - reference["overall_accuracy"]) <= TOL
    flat = flatten_metrics(result, entity_level=True)
    expected = upstream_compute_metrics(reference, entity_level=True)
    assert list(flat) == list(expected)
    for key, value in expected.items():
        assert abs(flat[key] - value) <= TOL, key


def test_doctests():
    assert doctest.testmod(tagtune.metrics).failed == 0


def test_exact_small_result():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "B-MISC"]]
    assert score(gold, pred) == {
        "precision": 0.5, "recall": 2 / 3, "f1": 2 * 0.5 * (2 / 3) / (0.5 + 2 / 3), "accuracy": 4 / 6, "number": 3,
        "per_type": {
            "LOC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 1},
            "MISC": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 0},
            "ORG": {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "number": 1},
            "PER": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "number": 1},
        },
    }


def test_no_entities_anywhere_gives_zeros_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = score([["O", "O"], ["O"]], [["O", "O"], ["O"]])
    assert result == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 1.0, "number": 0, "per_type": {}}
    assert_equal_to_seqeval(result, [["O", "O"], ["O"]], [["O", "O"], ["O"]])


def test_only_predicted_or_only_gold_entities():
    gold, pred = [["O", "O"]], [["B-PER", "O"]]
    assert_equal_to_seqeval(score(gold, pred), gold, pred)
    assert_equal_to_seqeval(score(pred, gold), pred, gold)
    assert score(gold, pred)["per_type"] == {"PER": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "number": 0}}


def test_empty_scorer():
    assert EntityScorer().result() == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "accuracy": 0.0, "number": 0, "per_type": {}}


def test_sentences_are_joined_like_seqeval():
    # A '.'-tag keeps an entity open across seqeval's sentence separator; the scorer does the same.
    gold = [["B-PER", ".PER"], [".PER", "E-PER", "O"]]
    pred = [["B-PER", "O"], ["O", "O", "O"]]
    assert_equal_to_seqeval(score(gold, pred), gold, pred)
    assert score(gold, pred)["number"] == 1


def test_equal_to_seqeval_on_3000_random_corpora():
    rng = random.Random(2024)
    for _ in range(3000):
        gold, pred = random_corpus(rng)
        assert_equal_to_seqeval(score(gold, pred), gold, pred)


def test_equal_to_seqeval_on_realistic_iob2_corpora():
    rng = random.Random(99)
    alphabet = ["O"] * 6 + ["B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-MISC", "I-MISC"]
    for _ in range(300):
        gold, pred = random_corpus(rng, alphabet, max_sentences=30, max_len=25, noise=0.1)
        assert_equal_to_seqeval(score(gold, pred), gold, pred)


corpora = st.lists(st.lists(st.sampled_from(TAGS), max_size=10), min_size=1, max_size=6).filter(
    lambda gold: sum(map(len, gold)) > 0)


@settings(max_examples=200, deadline=None)
@given(corpora, st.randoms(use_true_random=False))
def test_equal_to_seqeval_hypothesis(gold, rng):
    pred = [[rng.choice(TAGS) if rng.random() < 0.4 else tag for tag in sentence] for sentence in gold]
    assert_equal_to_seqeval(score(gold, pred), gold, pred)


def test_batches_give_the_one_shot_result():
    rng = random.Random(8)
    for _ in range(300):
        gold, pred = random_corpus(rng, max_sentences=20)
        scorer = EntityScorer()
        start = 0
        while start < len(gold):
            end = start + rng.randint(0, 4)  # empty batches too
            scorer.update(gold[start:end], pred[start:end])
            start = end
        assert scorer.result() == score(gold, pred)
        assert scorer.sentences == len(gold)


def test_length_mismatch_names_the_sentence_and_counts_nothing():
    scorer = EntityScorer()
    scorer.update([["B-PER"]], [["B-PER"]])
    with pytest.raises(ValueError, match=r"^sentence 2 \(#1 of this batch\): 2 gold tags but 1 predicted; "):
        scorer.update([["O"], ["B-PER", "O"]], [["O"], ["B-PER"]])
    with pytest.raises(ValueError, match="^got 2 gold sentences but 1 predicted ones$"):
        scorer.update([["O"], ["O"]], [["O"]])
    assert scorer.result() == score([["B-PER"]], [["B-PER"]])


def test_inputs_are_not_mutated_and_tuples_work():
    gold = (("B-PER", "O"),)
    pred = [["B-PER", "O"]]
    assert score(gold, pred)["f1"] == 1.0
    assert pred == [["B-PER", "O"]]


def test_token_accuracy():
    gold, pred = [["NOUN", "VERB"], [], ["DET"]], [["NOUN", "NOUN"], [], ["DET"]]
    assert token_accuracy(gold, pred) == accuracy_score(gold, pred) == 2 / 3
    assert token_accuracy([], []) == 0.0
    with pytest.raises(ValueError, match=r"sentence 0 \(#0 of this batch\): 1 gold tags but 2 predicted"):
        token_accuracy([["A"]], [["A", "B"]])


def test_flatten_metrics_like_upstream():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["B-ORG", "B-MISC"]]
    result = score(gold, pred)
    reference, _ = seqeval_reference(gold, pred)
    assert flatten_metrics(result) == upstream_compute_metrics(reference, entity_level=False)
    assert flatten_metrics(result, prefix="eval_") == {
        "eval_precision": 0.5, "eval_recall": 2 / 3, "eval_f1": result["f1"], "eval_accuracy": 4 / 6}
    flat = flatten_metrics(result, entity_level=True, prefix="predict_")
    assert list(flat) == [
        "predict_LOC_precision", "predict_LOC_recall", "predict_LOC_f1", "predict_LOC_number",
        "predict_MISC_precision", "predict_MISC_recall", "predict_MISC_f1", "predict_MISC_number",
        "predict_ORG_precision", "predict_ORG_recall", "predict_ORG_f1", "predict_ORG_number",
        "predict_PER_precision", "predict_PER_recall", "predict_PER_f1", "predict_PER_number",
        "predict_overall_precision", "predict_overall_recall", "predict_overall_f1", "predict_overall_accuracy",
    ]
    assert flat["predict_ORG_number"] == 1 and flat["predict_overall_accuracy"] == 4 / 6
    assert {k.removeprefix("predict_"): v for k, v in flat.items()} == upstream_compute_metrics(reference, True)
