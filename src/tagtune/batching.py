"""Training batches that waste little on padding: a token budget per batch instead of a sentence count.

Sentences are shuffled, grouped into pools of similar length, cut into batches whose padded size
(``len(batch) * longest``) stays under ``max_tokens``, and the batches are shuffled again, so that each
epoch sees the data in a new order while every batch is nearly free of padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np


def token_budget_batches(lengths: Sequence[int], max_tokens: int, seed: int, pool_size: int = 4096,
                         max_batch_size: int | None = None) -> list[list[int]]:
    """Index batches with ``len(batch) * max(length) <= max_tokens`` (a longer single row stands alone).

    >>> sorted(sorted(b) for b in token_budget_batches([3, 3, 3, 9], max_tokens=9, seed=0))
    [[0, 1, 2], [3]]
    """
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(lengths))
    batches: list[list[int]] = []
    for pool_start in range(0, len(order), pool_size):
        pool = sorted(order[pool_start:pool_start + pool_size].tolist(), key=lambda i: lengths[i])
        batch: list[int] = []
        longest = 0
        for index in pool:
            grown = max(longest, lengths[index])
            full = max_batch_size is not None and len(batch) >= max_batch_size
            if batch and ((len(batch) + 1) * grown > max_tokens or full):
                batches.append(batch)
                batch, grown = [], lengths[index]
            batch.append(index)
            longest = grown
        if batch:
            batches.append(batch)
    if len(batches) > 1:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


class TokenBudgetBatchSampler:
    """A batch sampler for ``DataLoader(batch_sampler=...)``; a new shuffle each epoch (``set_epoch``)."""

    def __init__(self, lengths: Sequence[int], max_tokens: int, seed: int = 0, max_batch_size: int | None = None):
        if max_tokens < 1:
            raise ValueError("max_tokens must be positive")
        self.lengths = list(lengths)
        self.max_tokens = max_tokens
        self.seed = seed
        self.max_batch_size = max_batch_size
        self.epoch = 0
        self._batches = self._make()

    def _make(self) -> list[list[int]]:
        return token_budget_batches(self.lengths, self.max_tokens, self.seed + self.epoch,
                                    max_batch_size=self.max_batch_size)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._batches = self._make()

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)
