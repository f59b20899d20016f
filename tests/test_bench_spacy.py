"""The CoNLL -> spaCy conversion of benchmarks/bench_spacy.py: -DOCSTART- lines never become tokens."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_conll_with_docstart_converts_to_sentence_docs(tmp_path: Path) -> None:
    spacy = pytest.importorskip("spacy")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_spacy import doc_tags, read_conll_splits, write_docbin
    from spacy.tokens import DocBin

    text = ("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
            "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n\n-DOCSTART- -X- -X- O\n\n"
            "BRUSSELS NNP B-NP B-LOC\n1996-08-22 CD I-NP O\n")
    for name in ("train.txt", "valid.txt", "test.txt"):
        (tmp_path / name).write_text(text)
    splits = read_conll_splits(tmp_path)
    vocab = spacy.blank("en").vocab
    assert write_docbin(splits["train"], vocab, tmp_path / "train.spacy") == 4
    docs = list(DocBin().from_disk(tmp_path / "train.spacy").get_docs(vocab))
    assert [[t.text for t in doc] for doc in docs] == [["EU", "rejects", "German"], ["Peter", "Blackburn"],
                                                       ["BRUSSELS", "1996-08-22"]]
    assert [doc_tags(doc) for doc in docs] == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"], ["B-LOC", "O"]]
