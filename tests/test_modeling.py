"""Loading a model to fine-tune: tagtune names the new head in one line, and holds back transformers'
load report (expected when fine-tuning) unless the load fails."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tagtune.config import ModelConfig
from tagtune.modeling import load_token_classifier


@contextmanager
def records_of(name: str) -> Iterator[list[logging.LogRecord]]:
    """The records of logger ``name`` (at WARNING and above) while the block runs."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    hf_logger = logging.getLogger(name)
    level = hf_logger.level
    hf_logger.setLevel(logging.WARNING)  # another test may have made transformers quiet
    hf_logger.addHandler(handler)
    try:
        yield records
    finally:
        hf_logger.removeHandler(handler)
        hf_logger.setLevel(level)


@pytest.fixture
def transformers_records() -> Iterator[list[logging.LogRecord]]:
    with records_of("transformers.modeling_utils") as records:
        yield records


@pytest.fixture(scope="module")
def encoder_dir(tiny_bert_dir, tmp_path_factory) -> Path:
    """A pretrained encoder without a token-classification head (with a pooler), as on the hub."""
    from transformers import BertModel

    path = tmp_path_factory.mktemp("encoder")
    BertModel.from_pretrained(tiny_bert_dir).save_pretrained(path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_bert_dir / name).is_file():
            (path / name).write_bytes((tiny_bert_dir / name).read_bytes())
    return path


def test_a_new_head_is_one_line_and_the_load_report_is_held_back(encoder_dir, caplog, transformers_records) -> None:
    labels = ["O", "B-PER", "I-PER"]
    with caplog.at_level(logging.INFO, logger="tagtune.modeling"):
        model = load_token_classifier(ModelConfig(model_name_or_path=str(encoder_dir)), labels)
    assert model.config.id2label == dict(enumerate(labels))
    assert [r.getMessage() for r in caplog.records if r.name == "tagtune.modeling"] == [
        "new classification head for 3 labels (classifier.bias, classifier.weight), trained from random weights"]
    assert [r for r in transformers_records if "LOAD REPORT" in r.getMessage()] == []


def test_a_failed_load_lets_the_load_report_through(tiny_ner_dir, transformers_records) -> None:
    # 3 labels on a 7-label head without --ignore_mismatched_sizes: transformers refuses, after its report.
    with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        load_token_classifier(ModelConfig(model_name_or_path=str(tiny_ner_dir)), ["O", "B-X", "I-X"])
    assert any("LOAD REPORT" in r.getMessage() for r in transformers_records)
