"""From per-word label scores to tags: independent arg-max or constrained Viterbi.

Arg-max picks each word's best label alone and can output ``O I-ORG`` or ``B-LOC I-PER``. Constrained
Viterbi finds the best-scoring sequence among those the tagging scheme allows, so every predicted
entity is well formed. Scores are log-probabilities (or any additive scores) of shape ``[words, L]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Decoding = Literal["viterbi", "argmax"]


def argmax_decode(scores: np.ndarray) -> list[int]:
    """Best label per word.

    >>> argmax_decode(np.array([[0.1, 0.9], [0.8, 0.2]]))
    [1, 0]
    """
    return [int(i) for i in np.argmax(scores, axis=-1)] if len(scores) else []


def viterbi_decode(scores: np.ndarray, allowed: np.ndarray, allowed_end: np.ndarray | None = None,
                   transitions: np.ndarray | None = None) -> list[int]:
    """Best label sequence under hard transition constraints (and optional learned transitions).

    Args:
        scores: ``[T, L]`` additive scores per word and label.
        allowed: ``[L + 1, L]`` booleans; row ``L`` is the start state.
        allowed_end: ``[L]`` booleans for labels that may end a sequence (all when ``None``).
        transitions: Optional ``[L + 1, L]`` additive transition scores (a CRF's).

    >>> allowed = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 1], [1, 1, 0]], dtype=bool)  # O, B-X, I-X
    >>> viterbi_decode(np.log(np.array([[0.6, 0.1, 0.3], [0.1, 0.1, 0.8]])), allowed)
    [1, 2]
    """
    steps, num_labels = scores.shape if scores.ndim == 2 else (0, allowed.shape[1])
    if steps == 0:
        return []
    penalty = np.where(allowed, 0.0, -np.inf)
    if transitions is not None:
        penalty = penalty + transitions
    best = scores[0] + penalty[num_labels]
    backpointers = np.zeros((steps, num_labels), dtype=np.int64)
    pair = penalty[:num_labels]  # [previous, next]
    for t in range(1, steps):
        candidates = best[:, None] + pair
        backpointers[t] = np.argmax(candidates, axis=0)
        best = candidates[backpointers[t], np.arange(num_labels)] + scores[t]
    if allowed_end is not None:
        best = np.where(allowed_end, best, -np.inf)
    if not np.isfinite(best).any():
        # Impossible only when the constraints allow no path at all; fall back rather than fail.
        return argmax_decode(scores)
    path = [int(np.argmax(best))]
    for t in range(steps - 1, 0, -1):
        path.append(int(backpointers[t, path[-1]]))
    return path[::-1]


class Decoder:
    """Decodes word scores into tag names for one label list and scheme."""

    def __init__(self, labels: Sequence[str], scheme: str, method: Decoding = "viterbi",
                 transitions: np.ndarray | None = None):
        from tagtune.labels import allowed_ends, allowed_transitions

        self.labels = list(labels)
        self.method = method
        self.transitions = transitions
        self.allowed = allowed_transitions(self.labels, scheme)
        self.allowed_end = allowed_ends(self.labels, scheme)
        # Without constraints and learned transitions Viterbi equals arg-max; skip its cost.
        self._trivial = bool(self.allowed.all() and self.allowed_end.all() and transitions is None)

    def __call__(self, scores: np.ndarray) -> list[str]:
        return [self.labels[i] for i in self.decode_ids(scores)]

    def decode_ids(self, scores: np.ndarray) -> list[int]:
        """Like calling the decoder, but label ids instead of names."""
        if self.method == "argmax" or self._trivial:
            return argmax_decode(scores)
        if self.transitions is None and len(scores):
            # An arg-max path that the constraints allow is also the best allowed path: skip Viterbi.
            ids = np.argmax(scores, axis=-1)
            if (self.allowed[len(self.labels), ids[0]] and self.allowed_end[ids[-1]]
                    and self.allowed[ids[:-1], ids[1:]].all()):
                return ids.tolist()
        return viterbi_decode(scores, self.allowed, self.allowed_end, self.transitions)
