"""Tag a list of examples with a model and score the tags against the gold ones.

Used by both training engines and by ``tagtune evaluate``: one streaming pass (length-sorted batches,
per-word scores reassembled, decoded, scored batch by batch), so memory does not grow with the data.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tagtune.align import Aligner, Encoding
from tagtune.corpus import Example
from tagtune.decode import Decoder
from tagtune.fileio import atomic_write_text
from tagtune.inference import Forward, iter_word_scores
from tagtune.metrics import EntityScorer
from tagtune.progress import progress_bar

logger = logging.getLogger(__name__)


@dataclass
class EvalResult:
    """Scores and word-level predictions for one split.

    Attributes:
        metrics: ``EntityScorer.result()`` when the examples are labelled, else ``{}``.
        predictions: Predicted tags per example, in input order; one per input word.
        windowed_examples: Examples longer than one window.
    """

    metrics: dict = field(default_factory=dict)
    predictions: list[list[str]] = field(default_factory=list)
    windowed_examples: int = 0
    num_words: int = 0


def iter_predicted_tags(
    forward: Forward,
    encoding: Encoding,
    decoder: Decoder,
    *,
    pad_id: int,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    description: str = "predicting",
) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """Yield ``(example_index, tags, word_scores)`` for each encoded example, in completion order."""
    with progress_bar(total=len(encoding), desc=description, unit="window") as bar:
        for index, scores in iter_word_scores(
            forward, encoding, len(decoder.labels), pad_id=pad_id, batch_size=batch_size, device=device,
            autocast_dtype=autocast_dtype, progress=bar.update,
        ):
            yield index, decoder(scores), scores


def evaluate_examples(
    forward: Forward,
    aligner: Aligner,
    examples: Sequence[Example],
    decoder: Decoder,
    *,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    description: str = "evaluating",
) -> EvalResult:
    """Predict every word of ``examples`` and score against their tags (when they have any)."""
    labelled = bool(examples) and all(e.tags is not None for e in examples)
    scorer = EntityScorer()
    predictions: list[list[str] | None] = [None] * len(examples)
    encoding = aligner.encode(examples, labelled=False)
    for index, tags, _ in iter_predicted_tags(forward, encoding, decoder, pad_id=aligner.pad_id,
                                              batch_size=batch_size, device=device,
                                              autocast_dtype=autocast_dtype, description=description):
        predictions[index] = tags
        if labelled:
            scorer.update([list(examples[index].tags)], [tags])  # type: ignore[arg-type]
    assert all(p is not None for p in predictions)
    result = EvalResult(
        metrics=scorer.result() if labelled else {},
        predictions=predictions,  # type: ignore[arg-type]
        windowed_examples=encoding.windowed_examples,
        num_words=sum(len(e.tokens) for e in examples),
    )
    return result


def format_predictions_conll(examples: Sequence[Example], predictions: Sequence[Sequence[str]]) -> str:
    """CoNLL columns: ``word gold predicted`` (``word predicted`` when unlabelled), blank line between
    sentences, one line per input word.

    >>> format_predictions_conll([Example(("EU", "rejects"), ("B-ORG", "O"))], [["B-ORG", "O"]])
    'EU B-ORG B-ORG\\nrejects O O\\n\\n'
    """
    lines: list[str] = []
    for example, tags in zip(examples, predictions, strict=True):
        assert len(tags) == len(example.tokens)
        gold = example.tags if example.tags is not None else None
        for i, word in enumerate(example.tokens):
            # A word containing whitespace would break the columns; keep it readable and one field.
            cell = "".join("_" if ch.isspace() else ch for ch in word) or "_"
            lines.append(f"{cell} {gold[i]} {tags[i]}" if gold is not None else f"{cell} {tags[i]}")
        lines.append("")
    return "\n".join(lines) + ("\n" if lines else "")


def write_predictions(path: Path, examples: Sequence[Example], predictions: Sequence[Sequence[str]]) -> None:
    """Write :func:`format_predictions_conll` atomically."""
    atomic_write_text(path, format_predictions_conll(examples, predictions))
