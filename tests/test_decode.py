from __future__ import annotations

import itertools

import numpy as np
import pytest

from tagtune.decode import Decoder, argmax_decode, viterbi_decode
from tagtune.labels import allowed_ends, allowed_transitions, validate_tags

IOB2 = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]


@pytest.mark.parametrize("labels,scheme", [(IOB2, "IOB2"), (BIOES, "BIOES")])
def test_viterbi_never_outputs_an_invalid_sequence(labels: list[str], scheme: str) -> None:
    rng = np.random.default_rng(0)
    decoder = Decoder(labels, scheme, "viterbi")
    argmax_invalid = 0
    for _ in range(2000):
        scores = np.log(rng.dirichlet(np.ones(len(labels)) * 0.3, size=rng.integers(1, 12)))
        tags = decoder(scores)
        assert validate_tags(tags, scheme) == [], tags
        argmax_invalid += bool(validate_tags([labels[i] for i in argmax_decode(scores)], scheme))
    assert argmax_invalid > 100  # the random scores do produce broken arg-max sequences


def test_viterbi_is_the_best_valid_sequence_by_brute_force() -> None:
    rng = np.random.default_rng(1)
    allowed, ends = allowed_transitions(BIOES, "BIOES"), allowed_ends(BIOES, "BIOES")
    for _ in range(50):
        steps = int(rng.integers(1, 5))
        scores = rng.normal(size=(steps, len(BIOES)))
        best, best_path = -np.inf, None
        for path in itertools.product(range(len(BIOES)), repeat=steps):
            if validate_tags([BIOES[i] for i in path], "BIOES"):
                continue
            total = sum(scores[t, i] for t, i in enumerate(path))
            if total > best:
                best, best_path = total, list(path)
        assert viterbi_decode(scores, allowed, ends) == best_path


def test_argmax_mode_and_unconstrained_schemes_take_each_word_alone() -> None:
    scores = np.log(np.array([[0.1, 0.1, 0.8, 0.0 + 1e-9, 1e-9, 1e-9, 1e-9]]))
    assert Decoder(IOB2, "IOB2", "argmax")(scores) == ["I-PER"]
    assert Decoder(IOB2, "IOB2", "viterbi")(scores) != ["I-PER"]
    pos = ["NN", "VB", "DT"]
    assert Decoder(pos, "none", "viterbi")(np.log(np.array([[0.2, 0.5, 0.3]]))) == ["VB"]


def test_empty_sequence() -> None:
    assert Decoder(IOB2, "IOB2")(np.zeros((0, len(IOB2)))) == []
