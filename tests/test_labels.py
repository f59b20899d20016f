"""Tagging schemes, seqeval-equal spans, validation/repair, label lists, corpus preparation."""

from __future__ import annotations

import doctest
import random
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities as seqeval_get_entities
from seqeval.scheme import IOB1, IOB2, IOBES, Tokens

import tagtune.labels
from tagtune.corpus import Corpus, Example
from tagtune.errors import LabelSchemeError
from tagtune.labels import (
    Span,
    allowed_ends,
    allowed_transitions,
    build_label_list,
    detect_scheme,
    get_entities,
    get_strict_entities,
    prepare_labels,
    repair_tags,
    split_tag,
    to_iob2,
    validate_tags,
)

# IOB1/IOB2/BIOES tags, tags without prefix, and garbage that seqeval reads its own way.
MIXED = [
    "O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC", "B-MISC", "I-MISC",
    "PER", "LOC", "NOUN", "B", "I", "E", "S", ".", ".PER", "I-", "B-PER-X", "X-Y-Z", "-LRB-", "OX",
    "ab-c", "B--X", "U-PER", "L-PER", "b-per",
]
WELL_FORMED = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


def seqeval_spans(tags):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # seqeval warns about every tag it does not recognise
        return [Span(t, s, e + 1) for t, s, e in seqeval_get_entities(list(tags))]


def test_doctests():
    assert doctest.testmod(tagtune.labels).failed == 0


def test_split_tag():
    assert [split_tag(t) for t in ["B-PER", "I-MISC", "E-X", "S-X", "O", "NOUN", "B", "U-PER", "B-"]] == [
        ("B", "PER"), ("I", "MISC"), ("E", "X"), ("S", "X"), ("O", ""), ("", "NOUN"), ("", "B"),
        ("", "U-PER"), ("B", ""),
    ]


# ------------------------------------------------------------------------------------------------
# get_entities == seqeval default mode


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ([], []),
        (["O", "O"], []),
        (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
        (["I-PER", "I-PER", "B-PER", "I-LOC"], [("PER", 0, 2), ("PER", 2, 3), ("LOC", 3, 4)]),
        (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
        (["B-PER", "E-PER", "S-LOC", "B-ORG", "I-ORG", "E-ORG"], [("PER", 0, 2), ("LOC", 2, 3), ("ORG", 3, 6)]),
        (["E-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["B-PER", "B-PER"], [("PER", 0, 1), ("PER", 1, 2)]),
        (["PER", "PER", "O"], [("ER", 0, 2)]),
        (["B", "I", "O"], [("_", 0, 2)]),
        (["B-PER", ".PER", "O", "I-PER"], [("PER", 3, 4)]),
    ],
)
def test_get_entities_examples(tags, expected):
    assert get_entities(tags) == [Span(*e) for e in expected]
    assert get_entities(tags) == seqeval_spans(tags)


def test_get_entities_empty_tag_is_an_error():
    with pytest.raises(LabelSchemeError, match="word 1: empty or non-string tag ''"):
        get_entities(["O", ""])


def test_get_entities_equals_seqeval_on_5000_random_sequences():
    rng = random.Random(20241125)
    for _ in range(5000):
        tags = [rng.choice(MIXED) for _ in range(rng.randint(0, 14))]
        assert get_entities(tags) == seqeval_spans(tags), tags


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(MIXED) | st.text(min_size=1, max_size=4), max_size=20))
def test_get_entities_equals_seqeval_hypothesis(tags):
    assert get_entities(tags) == seqeval_spans(tags)


def test_get_entities_does_not_mutate_and_accepts_tuples():
    tags = ("B-PER", "I-PER")
    assert get_entities(tags) == [Span("PER", 0, 2)]
    assert tags == ("B-PER", "I-PER")


# ------------------------------------------------------------------------------------------------
# strict mode == seqeval mode="strict"


@pytest.mark.parametrize(
    ("scheme", "seqeval_scheme", "alphabet"),
    [
        ("IOB2", IOB2, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B", "I"]),
        ("BIOES", IOBES, WELL_FORMED),
        ("IOB1", IOB1, ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]),
    ],
)
def test_strict_entities_equal_seqeval(scheme, seqeval_scheme, alphabet):
    rng = random.Random(7)
    for _ in range(3000):
        tags = [rng.choice(alphabet) for _ in range(rng.randint(0, 12))]
        expected = [Span(e.tag, e.start, e.end) for e in Tokens(tags, seqeval_scheme).entities]
        assert get_strict_entities(tags, scheme) == expected, tags


def test_strict_entities_examples():
    assert get_strict_entities(["I-PER", "B-PER", "I-PER", "I-LOC"], "IOB2") == [Span("PER", 1, 3)]
    assert get_strict_entities(["B-PER", "I-PER", "O", "S-LOC", "B-ORG"], "BIOES") == [Span("LOC", 3, 4)]
    assert get_strict_entities(["I-PER", "I-PER", "I-LOC", "O", "I-LOC"], "IO") == [
        Span("PER", 0, 2), Span("LOC", 2, 3), Span("LOC", 4, 5)]


def test_strict_entities_errors():
    with pytest.raises(LabelSchemeError, match=r"word 1: tag 'E-PER' is not allowed in IOB2 \(allowed prefixes: I, O, B\)"):
        get_strict_entities(["B-PER", "E-PER"], "IOB2")
    with pytest.raises(LabelSchemeError, match="scheme 'none'"):
        get_strict_entities(["NOUN"], "none")
    with pytest.raises(LabelSchemeError, match="unknown tagging scheme 'BILOU'"):
        get_strict_entities(["O"], "BILOU")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# detect_scheme / to_iob2


@pytest.mark.parametrize(
    ("sequences", "expected"),
    [
        ([["B-PER", "I-PER", "O", "B-LOC"]], "IOB2"),
        ([["B-PER"], ["O", "B-LOC", "B-LOC"]], "IOB2"),
        ([["I-PER", "I-PER", "B-PER", "O", "I-LOC"]], "IOB1"),
        ([["I-ORG", "O"], ["I-PER", "B-PER"]], "IOB1"),
        # IOB2 with one stray I- stays IOB2 (and gets repaired), IOB1 with one stray B- stays IOB1.
        ([["B-PER", "O", "B-LOC", "I-LOC", "O", "I-ORG"]], "IOB2"),
        ([["I-PER", "O", "I-LOC", "O", "B-ORG", "O", "I-MISC"]], "IOB1"),
        ([["B-PER", "E-PER", "O"]], "BIOES"),
        ([["S-PER", "O"]], "BIOES"),
        ([["I-PER", "I-PER", "O", "I-LOC"]], "IO"),
        ([["NOUN", "VERB", "."]], "none"),
        ([["B-NP", "I-NP", "O"]], "IOB2"),
        ([["O", "O"]], "none"),
        ([], "none"),
    ],
)
def test_detect_scheme(sequences, expected):
    assert detect_scheme(sequences) == expected


def test_detect_scheme_reads_a_generator_once():
    assert detect_scheme(tags for tags in [["I-PER"], ["I-PER", "B-PER"]]) == "IOB1"


def test_to_iob2_examples():
    assert to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == [
        "B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG"]
    assert to_iob2(["I-LOC", "O", "I-LOC", "I-LOC"]) == ["B-LOC", "O", "B-LOC", "I-LOC"]  # IO
    assert to_iob2(["B-PER", "E-PER", "S-LOC", "E-LOC"]) == ["B-PER", "I-PER", "B-LOC", "B-LOC"]  # BIOES
    assert to_iob2(["NOUN", "O"]) == ["NOUN", "O"]
    assert to_iob2([]) == []


def test_to_iob2_is_pure_and_keeps_seqeval_spans():
    rng = random.Random(3)
    for _ in range(2000):
        tags = [rng.choice(WELL_FORMED + ["B-MISC", "I-MISC"]) for _ in range(rng.randint(0, 12))]
        before = list(tags)
        converted = to_iob2(tags)
        assert tags == before
        assert converted is not tags
        assert get_entities(converted) == get_entities(tags)
        assert validate_tags(converted, "IOB2") == []


# ------------------------------------------------------------------------------------------------
# validate / repair


@pytest.mark.parametrize(
    ("tags", "scheme", "expected"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], "IOB2", []),
        (["I-PER", "O", "I-LOC", "B-ORG", "I-MISC"], "IOB2", [
            (0, "'I-PER' at sentence start"), (2, "'I-LOC' after 'O'"), (4, "'I-MISC' after 'B-ORG'")]),
        (["B-PER", "E-PER", "PER"], "IOB2", [
            (1, "'E-PER' is not allowed in IOB2"), (2, "'PER' has no B-/I- prefix")]),
        (["I-PER", "B-PER", "O", "I-LOC"], "IOB1", []),
        (["O", "B-PER", "I-PER"], "IOB1", [
            (1, "'B-PER' after 'O' (IOB1 uses B- only between two entities of one type)")]),
        (["I-PER", "O", "B-LOC"], "IO", [(2, "'B-LOC' is not allowed in IO")]),
        (["B-PER", "I-PER", "E-PER", "S-LOC", "O"], "BIOES", []),
        (["B-PER", "O", "I-LOC", "E-ORG", "B-LOC"], "BIOES", [
            (0, "'B-PER' before 'O'"), (2, "'I-LOC' after 'O'"), (2, "'I-LOC' before 'E-ORG'"),
            (3, "'E-ORG' after 'I-LOC'"), (4, "'B-LOC' at sentence end")]),
        (["NOUN", "B-X", "I-Y"], "none", []),
        ([], "IOB2", []),
    ],
)
def test_validate_tags(tags, scheme, expected):
    assert validate_tags(tags, scheme) == expected


@pytest.mark.parametrize(
    ("tags", "scheme", "expected"),
    [
        (["O", "I-PER", "I-PER", "B-LOC", "I-ORG"], "IOB2", ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]),
        (["B-PER", "S-PER", "E-PER"], "IOB2", ["B-PER", "B-PER", "B-PER"]),
        (["PER", "I-PER", "O"], "IOB2", ["B-PER", "I-PER", "O"]),
        (["O", "B-PER", "I-PER", "B-PER"], "IOB1", ["O", "I-PER", "I-PER", "B-PER"]),
        (["B-PER", "I-PER", "O", "S-LOC"], "IO", ["I-PER", "I-PER", "O", "I-LOC"]),
        (["B-PER", "O", "I-LOC", "I-LOC"], "BIOES", ["S-PER", "O", "B-LOC", "E-LOC"]),
        (["B-PER", "I-PER", "I-PER", "O"], "BIOES", ["B-PER", "I-PER", "E-PER", "O"]),
        (["E-PER", "E-PER", "I-LOC"], "BIOES", ["S-PER", "S-PER", "S-LOC"]),
        (["NOUN", "I-X"], "none", ["NOUN", "I-X"]),
    ],
)
def test_repair_tags(tags, scheme, expected):
    before = list(tags)
    assert repair_tags(tags, scheme) == expected
    assert tags == before


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "BIOES", "IO"])
def test_repair_always_validates_and_keeps_valid_input(scheme):
    rng = random.Random(11)
    for _ in range(3000):
        tags = [rng.choice(MIXED) for _ in range(rng.randint(0, 10))]
        repaired = repair_tags(tags, scheme)
        assert len(repaired) == len(tags)
        assert validate_tags(repaired, scheme) == [], (tags, repaired)
        assert repair_tags(repaired, scheme) == repaired
        # A sequence is valid exactly when repair leaves it alone: repair changes only what is flagged.
        assert (validate_tags(tags, scheme) == []) == (repaired == tags), tags


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(MIXED), max_size=16), st.sampled_from(["IOB1", "IOB2", "BIOES", "IO"]))
def test_repair_validates_hypothesis(tags, scheme):
    repaired = repair_tags(tags, scheme)
    assert validate_tags(repaired, scheme) == []
    assert (validate_tags(tags, scheme) == []) == (repaired == tags)


def test_unknown_scheme():
    with pytest.raises(LabelSchemeError, match="unknown tagging scheme 'BIO'; expected one of IOB1, IOB2, BIOES, IO, none"):
        validate_tags(["O"], "BIO")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------
# build_label_list


def ex(tags, origin=""):
    return Example(tuple(f"w{i}" for i in range(len(tags))), tuple(tags), origin=origin)


def test_label_list_order_first_appearance_not_alphabetical():
    splits = {
        "train": [ex(["B-PER", "I-PER", "O", "S-ORG"]), ex(["E-PER", "B-LOC", "E-LOC"])],
        "validation": [ex(["B-ORG", "E-ORG", "I-ORG"])],
        "test": [ex(["S-PER"])],
    }
    labels, warnings_ = build_label_list(splits)
    assert labels == ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-ORG", "I-ORG", "E-ORG", "S-ORG", "B-LOC", "E-LOC"]
    assert warnings_ == [
        "tag 'B-ORG' is in validation (first at validation example #0) but never in train; the model cannot learn it",
        "tag 'E-ORG' is in validation (first at validation example #0) but never in train; the model cannot learn it",
        "tag 'I-ORG' is in validation (first at validation example #0) but never in train; the model cannot learn it",
        "tag 'S-PER' is in test (first at test example #0) but never in train; the model cannot learn it",
    ]


def test_label_list_split_order_is_train_validation_test_whatever_the_mapping_order():
    splits = {"test": [ex(["B-MISC"])], "validation": [ex(["B-LOC"])], "train": [ex(["B-PER", "O"])]}
    labels, _ = build_label_list(splits)
    assert labels == ["O", "B-PER", "B-LOC", "B-MISC"]


def test_label_list_pos_tags():
    splits = {"train": [ex(["PROPN", "VERB", "DET", "NOUN"]), ex(["DET", "ADJ", "PUNCT"])]}
    assert build_label_list(splits) == (["PROPN", "VERB", "DET", "NOUN", "ADJ", "PUNCT"], [])


def test_label_list_only_in_test_warning_names_origin():
    splits = {"train": [ex(["B-PER", "O"])], "test": [ex(["O", "B-PER"]), ex(["B-EVT", "I-EVT"], "test.conll:40")]}
    labels, warnings_ = build_label_list(splits)
    assert labels == ["O", "B-PER", "B-EVT", "I-EVT"]
    assert warnings_ == [
        "tag 'B-EVT' is in test (first at test.conll:40) but never in train; the model cannot learn it",
        "tag 'I-EVT' is in test (first at test.conll:40) but never in train; the model cannot learn it",
    ]


def test_label_list_without_train_has_no_only_in_test_warning():
    assert build_label_list({"test": [ex(["B-PER"])]}) == (["B-PER"], [])


def test_label_list_known_order_plus_unknown_tags():
    splits = {"train": [ex(["B-PER", "O", "B-NEW"], "train.txt:3")], "test": [ex(["I-NEW"], "test.txt:9")]}
    labels, warnings_ = build_label_list(splits, known=["O", "B-LOC", "I-LOC", "B-PER", "I-PER"])
    assert labels == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER", "B-NEW", "I-NEW"]
    assert warnings_ == [
        "tag 'B-NEW' (first in train at train.txt:3) is not among the label names; added at the end of the label list",
        "tag 'I-NEW' (first in test at test.txt:9) is not among the label names; added at the end of the label list",
        "tag 'I-NEW' is in test (first at test.txt:9) but never in train; the model cannot learn it",
    ]


def test_label_list_duplicate_known_names():
    with pytest.raises(LabelSchemeError, match="label names list 'O' more than once"):
        build_label_list({"train": []}, known=["O", "B-PER", "O"])


def test_label_list_skips_unlabelled_examples():
    splits = {"train": [Example(("a", "b")), ex(["O", "B-X"])]}
    assert build_label_list(splits) == (["O", "B-X"], [])


# ------------------------------------------------------------------------------------------------
# prepare_labels


def test_prepare_labels_converts_iob1_without_touching_the_input():
    train = [ex(["I-PER", "I-PER", "O", "I-LOC"], "train.txt:1"), ex(["I-ORG", "B-ORG"], "train.txt:6")]
    test = [ex(["O", "I-PER"], "test.txt:1")]
    corpus = Corpus({"train": train, "test": test}, format="conll", warnings=["read note"])
    new, scheme, labels = prepare_labels(corpus)
    assert scheme == "IOB2"
    assert [e.tags for e in new.splits["train"]] == [("B-PER", "I-PER", "O", "B-LOC"), ("B-ORG", "B-ORG")]
    assert [e.tags for e in new.splits["test"]] == [("O", "B-PER")]
    assert new.splits["train"][0].origin == "train.txt:1"
    assert labels == ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]
    assert new.warnings == ["read note"]
    assert corpus.splits["train"] is train and train[0].tags == ("I-PER", "I-PER", "O", "I-LOC")
    assert corpus.warnings == ["read note"]


def test_prepare_labels_iob1_known_names_get_their_b_tags():
    corpus = Corpus({"train": [ex(["I-PER", "O", "I-MISC", "B-MISC"])]}, label_names=["O", "I-PER", "I-MISC", "B-MISC"])
    _, scheme, labels = prepare_labels(corpus)
    assert scheme == "IOB2"
    assert labels == ["O", "B-PER", "I-PER", "I-MISC", "B-MISC"]


def test_prepare_labels_repairs_with_one_warning():
    train = [ex(["B-PER", "O", "I-PER", "I-PER"], "train.txt:10"), ex(["O"], "train.txt:15"),
             ex(["B-LOC", "I-ORG"], "train.txt:17")]
    corpus = Corpus({"train": train})
    new, scheme, labels = prepare_labels(corpus)
    assert scheme == "IOB2"
    assert [e.tags for e in new.splits["train"]] == [("B-PER", "O", "B-PER", "I-PER"), ("O",), ("B-LOC", "B-ORG")]
    assert new.splits["train"][1] is train[1]  # unchanged examples are shared, changed ones are new
    assert new.warnings == ["repaired 2 invalid IOB2 tags in 2 sentences (first: train.txt:10 word 3: 'I-PER' after 'O')"]
    assert labels == ["O", "B-PER", "I-PER", "B-LOC", "B-ORG"]
    assert train[0].tags == ("B-PER", "O", "I-PER", "I-PER")


def test_prepare_labels_strict_names_the_first_problem():
    corpus = Corpus({"train": [ex(["S-PER"]), ex(["O", "B-LOC", "E-LOC", "I-LOC"], "train.conll:412")]})
    with pytest.raises(LabelSchemeError) as info:
        prepare_labels(corpus, strict=True)
    assert str(info.value) == ("train.conll:412 word 4: invalid BIOES: 'I-LOC' after 'E-LOC'; "
                               "fix the file, or drop --strict_labels to repair it")


def test_prepare_labels_without_repair_keeps_tags_and_warns():
    corpus = Corpus({"validation": [ex(["O", "I-PER"])], "train": [ex(["B-PER", "I-PER", "O"])]})
    new, scheme, _ = prepare_labels(corpus, repair=False)
    assert scheme == "IOB2"
    assert new.splits["validation"][0].tags == ("O", "I-PER")
    assert list(new.splits) == ["validation", "train"]
    assert new.warnings == ["kept 1 invalid IOB2 tag in 1 sentence (first: validation example #0 word 2: 'I-PER' after 'O')"]


def test_prepare_labels_bioes_pos_and_unlabelled():
    bioes = Corpus({"train": [ex(["S-PER", "B-LOC", "E-LOC"])], "test": [Example(("x",))]})
    new, scheme, labels = prepare_labels(bioes)
    assert (scheme, labels, new.warnings) == ("BIOES", ["S-PER", "B-LOC", "E-LOC"], [])
    pos = Corpus({"train": [ex(["NOUN", "VERB"])]}, label_names=["VERB", "NOUN", "ADJ"])
    assert prepare_labels(pos)[1:] == ("none", ["VERB", "NOUN", "ADJ"])
    empty = Corpus({"test": [Example(("x", "y"))]})
    assert prepare_labels(empty)[1:] == ("none", [])


# ------------------------------------------------------------------------------------------------
# Decoding constraints


def test_allowed_transitions_iob2():
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    expected = [
        # O  B-P I-P B-L I-L    to / from
        [1, 1, 0, 1, 0],  # O
        [1, 1, 1, 1, 0],  # B-PER
        [1, 1, 1, 1, 0],  # I-PER
        [1, 1, 0, 1, 1],  # B-LOC
        [1, 1, 0, 1, 1],  # I-LOC
        [1, 1, 0, 1, 0],  # start
    ]
    assert allowed_transitions(labels, "IOB2").astype(int).tolist() == expected
    assert allowed_ends(labels, "IOB2").tolist() == [True] * 5


def test_allowed_transitions_bioes():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    expected = [
        [1, 1, 0, 0, 1],  # O
        [0, 0, 1, 1, 0],  # B-PER
        [0, 0, 1, 1, 0],  # I-PER
        [1, 1, 0, 0, 1],  # E-PER
        [1, 1, 0, 0, 1],  # S-PER
        [1, 1, 0, 0, 1],  # start
    ]
    assert allowed_transitions(labels, "BIOES").astype(int).tolist() == expected
    assert allowed_ends(labels, "BIOES").tolist() == [True, False, False, True, True]


def test_allowed_transitions_io_none_and_shape():
    for scheme in ("IO", "none"):
        allowed = allowed_transitions(["O", "I-PER", "NOUN"], scheme)
        assert allowed.shape == (4, 3) and allowed.dtype == np.bool_ and allowed.all()
    assert allowed_transitions([], "IOB2").shape == (1, 0)


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2", "BIOES"])
def test_transitions_agree_with_validate(scheme):
    """A sequence of the scheme's own tags passes validate_tags exactly when every step is allowed."""
    labels = {"IOB1": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"], "IOB2": ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"],
              "BIOES": WELL_FORMED}[scheme]
    allowed, ends = allowed_transitions(labels, scheme), allowed_ends(labels, scheme)
    rng = random.Random(5)
    for _ in range(3000):
        ids = [rng.randrange(len(labels)) for _ in range(rng.randint(1, 8))]
        path_ok = all(allowed[a, b] for a, b in zip([len(labels)] + ids, ids)) and ends[ids[-1]]
        assert path_ok == (validate_tags([labels[i] for i in ids], scheme) == []), [labels[i] for i in ids]


# ------------------------------------------------------------------------------------------------
# The shipped sample data


def test_sample_data_is_clean_iob2_and_reproducible():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    splits = {}
    for split in ("train", "validation", "test"):
        text = (root / "src" / "tagtune" / "sample_data" / f"{split}.conll").read_text(encoding="utf-8")
        blocks = [[line.split(" ") for line in block.split("\n") if line and not line.startswith("-DOCSTART-")]
                  for block in text.split("\n\n")]
        splits[split] = [Example(tuple(r[0] for r in b), tuple(r[3] for r in b)) for b in blocks if b]
        for column in (2, 3):  # chunk and NER columns
            sequences = [[r[column] for r in b] for b in blocks if b]
            assert detect_scheme(sequences) == "IOB2"
            assert all(validate_tags(tags, "IOB2") == [] for tags in sequences)
    assert {split: len(examples) for split, examples in splits.items()} == {"train": 400, "validation": 100, "test": 100}
    assert build_label_list(splits) == (["O", "B-PER", "I-PER", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-LOC", "I-LOC"], [])
    check = subprocess.run([sys.executable, str(root / "scripts" / "make_sample_data.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
