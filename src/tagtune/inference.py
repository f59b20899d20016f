"""Forward passes over encoded windows, streaming per-word scores back in example order.

Windows are sorted by length and padded only to the longest of their batch; results are reassembled
per example by :class:`tagtune.align.WordCollector`, so memory holds only the examples still in flight
plus one batch of logits, whatever the size of the data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, nullcontext

import numpy as np
import torch

from tagtune.align import Aggregation, Encoding, WordCollector, iter_length_sorted_batches
from tagtune.allocator import release_freed_memory_eagerly
from tagtune.errors import AlignmentError

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# Windows are sorted by length, so a batch is bounded by padded tokens rather than by a count: short
# sentences go many to a batch, long windows fewer. On the development CPU (2 cores, 4 MiB L2 each),
# 64 windows / 1024 tokens beat 32 / unbounded and 128-256 / 4096-8192 for both torch and ONNX
# Runtime (the activations of a batch stay in cache); 1,000 CoNLL sentences, MiniLM. The token bound
# also bounds a batch's activations, so peak memory does not depend on how many of the longest
# windows the data happens to contain.
DEFAULT_BATCH_SIZE = 64
DEFAULT_MAX_TOKENS = 1024


def pad_batch(rows: list[list[int]], pad_id: int, multiple_of: int = 1,
              length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` for rows padded on the right to the longest (rounded up), or to
    ``length`` when given (``--pad_to_max_length``: fixed shapes)."""
    longest = max(max(len(r) for r in rows), length or 0)
    longest = -(-longest // multiple_of) * multiple_of
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), longest), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    return ids, mask


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log-probabilities over the last axis, in numpy (a torch call on a small tensor costs a wake-up of
    its thread pool per batch).

    >>> np.round(np.exp(log_softmax(np.array([[0.0, 0.0], [2.0, 0.0]]))), 3).tolist()
    [[0.5, 0.5], [0.881, 0.119]]
    """
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def model_forward(model: torch.nn.Module) -> Forward:
    """A forward function returning logits ``[B, T, L]`` for a transformers token-classification model."""

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits

    return forward


def iter_word_scores(
    forward: Forward,
    encoding: Encoding,
    num_labels: int,
    *,
    pad_id: int,
    batch_size: int = 32,
    max_tokens: int | None = None,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: Callable[[int], None] | None = None,
    aggregation: Aggregation = "first",
    workers: int = 1,
    pad_to: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(example_index, log_probs[words, L])`` for every example, each exactly once.

    Examples come out in the order they complete, not input order; callers that need input order
    index by ``example_index``. ``aggregation`` other than ``first`` (see
    :class:`~tagtune.align.WordCollector`) needs an encoding made with ``subtokens=True``; with
    ``none`` the rows are the example's sub-tokens instead of its words.

    ``workers > 1`` runs that many batches at once on a thread pool (at most ``workers + 1`` in
    memory), for a ``forward`` that releases the GIL and runs single-threaded, such as an ONNX Runtime
    session with one intra-op thread: whole batches in parallel scale better than one small batch
    split across cores, and the bookkeeping here overlaps the forward passes. ``pad_to`` pads every batch
    to that many sub-tokens.
    """
    release_freed_memory_eagerly()  # activations of ever-changing shapes must not pile up in the heap
    collector = WordCollector(encoding.word_counts, num_labels, aggregation, encoding.token_words)
    token_index = encoding.token_index if aggregation != "first" else None
    # Examples with no words have no windows; they are complete from the start.
    for index, count in enumerate(encoding.word_counts):
        if count == 0:
            yield index, np.zeros((0, num_labels), dtype=np.float32)
    lengths = [len(r) for r in encoding.input_ids]
    device = torch.device(device)

    def contexts() -> ExitStack:
        stack = ExitStack()
        stack.enter_context(torch.inference_mode())
        if autocast_dtype is not None:
            stack.enter_context(torch.autocast(device_type=device.type, dtype=autocast_dtype))
        return stack

    def scores_of(rows: list[int]) -> np.ndarray:
        ids, mask = pad_batch([encoding.input_ids[r] for r in rows], pad_id, length=pad_to)
        logits = forward(ids.to(device), mask.to(device))
        return log_softmax(logits.float().cpu().numpy())

    def scores_in_thread(rows: list[int]) -> np.ndarray:
        with contexts():  # inference_mode and autocast are per thread
            return scores_of(rows)

    batches = iter_length_sorted_batches(lengths, batch_size, max_tokens)
    # One context for the whole loop when sequential: autocast then casts each weight once.
    with contexts() if workers <= 1 else nullcontext():
        run = scores_of if workers <= 1 else scores_in_thread
        for rows, log_probs in _run_batches(run, batches, workers):
            for k, row in enumerate(rows):
                done = collector.add(encoding.example_index[row], np.asarray(encoding.word_index[row]),
                                     log_probs[k],
                                     np.asarray(token_index[row]) if token_index is not None else None)
                if done is not None:
                    yield encoding.example_index[row], done
            if progress is not None:
                progress(len(rows))
    if collector.pending():
        missing = collector.missing()
        first = min(missing)
        raise AlignmentError(
            f"{len(missing)} sentence(s) got no prediction for some words (first: sentence #{first} of its batch, "
            f"{missing[first]} word(s) missing); this is a bug in tagtune's windows: please report it with the "
            "sentence and --max_seq_length/--stride"
        )


def _run_batches(run: Callable[[list[int]], np.ndarray], batches: Iterator[list[int]],
                 workers: int) -> Iterator[tuple[list[int], np.ndarray]]:
    """``(rows, run(rows))`` in batch order, computing up to ``workers`` batches at once."""
    if workers <= 1:
        for rows in batches:
            yield rows, run(rows)
        return
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tagtune-forward") as pool:
        pending: deque = deque()
        for rows in batches:
            pending.append((rows, pool.submit(run, rows)))
            if len(pending) > workers:
                done_rows, future = pending.popleft()
                yield done_rows, future.result()
        while pending:
            done_rows, future = pending.popleft()
            yield done_rows, future.result()
