"""Tag a list of examples with a model and score the tags against the gold ones.

Used by both training engines and by ``tagtune evaluate``: one streaming pass (length-sorted batches,
per-word scores reassembled, decoded, scored batch by batch), so memory does not grow with the data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tagtune.align import Aligner, Encoding
from tagtune.corpus import Example
from tagtune.decode import Decoder
from tagtune.fileio import atomic_write_text
from tagtune.inference import DEFAULT_MAX_TOKENS, Forward, iter_word_scores
from tagtune.metrics import EntityScorer
from tagtune.progress import progress_bar

logger = logging.getLogger(__name__)

# Sentences encoded and run at once: bounds evaluation memory whatever the size of the split.
CHUNK_SIZE = 2000


@dataclass
class EvalResult:
    """Scores and word-level predictions for one split.

    Attributes:
        metrics: ``EntityScorer.result()`` when the examples are labelled, else ``{}``.
        predictions: Predicted tags per example, in input order; one per input word.
        windowed_examples: Examples longer than one window.
        long_words: Words longer than the aligner's ``word_cap`` sub-tokens (cut; still one prediction each).
        first_long_word: Where the first of them is, for the warning (:func:`tagtune.align.warn_long_words`).
        loss: Mean cross-entropy of the gold tags over the words (their first sub-token's scores), when
            labelled: the run's ``eval_loss``.
    """

    metrics: dict = field(default_factory=dict)
    predictions: list[list[str]] = field(default_factory=list)
    windowed_examples: int = 0
    num_words: int = 0
    long_words: int = 0
    first_long_word: str | None = None
    loss: float | None = None


def iter_predicted_tags(
    forward: Forward,
    encoding: Encoding,
    decoder: Decoder,
    *,
    pad_id: int,
    batch_size: int = 32,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int], None] | None = None,
    pad_to: int | None = None,
) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """Yield ``(example_index, tags, word_scores)`` for each encoded example, in completion order."""
    for index, scores in iter_word_scores(
        forward, encoding, len(decoder.labels), pad_id=pad_id, batch_size=batch_size, max_tokens=max_tokens,
        device=device, autocast_dtype=autocast_dtype, progress=progress, pad_to=pad_to,
    ):
        yield index, decoder(scores), scores


def document_chunks(examples: Sequence[Example], size: int) -> Iterator[tuple[int, int]]:
    """``[start, stop)`` ranges of about ``size`` examples, cut only between documents, so that
    document context never crosses a chunk.

    >>> docs = [Example(("a",), doc=d) for d in ("1", "1", "1", "2", "2")]
    >>> list(document_chunks(docs, 2))
    [(0, 3), (3, 5)]
    """
    start = 0
    while start < len(examples):
        stop = min(start + size, len(examples))
        while stop < len(examples) and examples[stop].doc is not None and examples[stop].doc == examples[stop - 1].doc:
            stop += 1
        yield start, stop
        start = stop


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
    chunk_size: int | None = None,
    max_tokens: int | None = DEFAULT_MAX_TOKENS,
    accelerator=None,
) -> EvalResult:
    """Predict every word of ``examples`` and score against their tags (when they have any).

    Examples are encoded and run ``chunk_size`` at a time (length-sorted within a chunk), so memory
    holds one chunk's windows and scores whatever the number of examples; only the tags are kept.
    A batch holds at most ``batch_size`` windows and ``max_tokens`` padded sub-tokens, so its
    activations are bounded too, however many long sentences the data has.

    With an ``accelerator`` of several processes (call on every process), each process predicts every
    ``num_processes``-th example of a chunk and the tags are gathered: every process returns the whole
    result, each word predicted once.
    """
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)
    labelled = bool(examples) and all(e.tags is not None for e in examples)
    scorer = EntityScorer()
    label_ids = {label: i for i, label in enumerate(decoder.labels)}
    loss_sum, loss_words = 0.0, 0  # word-level cross-entropy of the gold tags: the run's eval_loss
    pad_to = aligner.config.max_length if aligner.config.pad_to_max_length else None  # upstream's fixed shapes
    predictions: list[list[str]] = []
    windowed = long_words = 0
    first_long_word: str | None = None
    with progress_bar(total=len(examples), desc=description, unit="sentence") as bar:
        for start, stop in document_chunks(examples, chunk_size or CHUNK_SIZE):
            chunk = examples[start:stop]
            encoding = aligner.encode(chunk, labelled=False)  # the whole chunk: document context needs it
            windowed += encoding.windowed_examples
            long_words += encoding.long_words
            first_long_word = first_long_word or encoding.first_long_word
            mine = list(range(rank, len(chunk), world))
            local: list[tuple[int, list[str], float, int]] = []
            for index, predicted, scores in iter_predicted_tags(forward, _select(encoding, mine), decoder,
                                                                pad_id=aligner.pad_id, batch_size=batch_size,
                                                                max_tokens=max_tokens, device=device,
                                                                autocast_dtype=autocast_dtype, pad_to=pad_to):
                loss, known = 0.0, 0
                if labelled:  # a gold tag the model does not know has no score: left out of the loss
                    ids = np.array([label_ids.get(tag, -1) for tag in chunk[mine[index]].tags])
                    words = np.flatnonzero(ids >= 0)
                    loss, known = -float(scores[words, ids[words]].sum()), len(words)
                local.append((mine[index], predicted, loss, known))
                bar.update(world)
            if world > 1:
                from accelerate.utils import gather_object

                local = gather_object(local)
            tags: list[list[str] | None] = [None] * len(chunk)
            for index, predicted, loss, known in local:
                tags[index] = predicted
                loss_sum += loss
                loss_words += known
            if any(t is None for t in tags):
                raise RuntimeError("an example got no prediction; please report this with the data")
            if labelled:  # in input order, as seqeval reads a corpus
                scorer.update([list(e.tags) for e in chunk], tags)  # type: ignore[arg-type, misc]
            predictions.extend(tags)  # type: ignore[arg-type]
    return EvalResult(
        metrics=scorer.result() if labelled else {},
        loss=loss_sum / max(1, loss_words) if labelled else None,
        predictions=predictions,
        windowed_examples=windowed,
        num_words=sum(len(e.tokens) for e in examples),
        long_words=long_words,
        first_long_word=first_long_word,
    )


def _select(encoding: Encoding, examples: list[int]) -> Encoding:
    """The windows of ``examples`` (indices into ``encoding``'s examples), renumbered ``0..len-1``."""
    if len(examples) == len(encoding.word_counts):
        return encoding
    local = {index: k for k, index in enumerate(examples)}
    sub = Encoding(word_counts=[encoding.word_counts[i] for i in examples])
    for row, index in enumerate(encoding.example_index):
        if index in local:
            sub.input_ids.append(encoding.input_ids[row])
            sub.word_index.append(encoding.word_index[row])
            sub.example_index.append(local[index])
    return sub


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
