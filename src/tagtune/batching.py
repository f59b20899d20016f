"""Training batches that waste little on padding: a token budget per batch instead of a sentence count.

Sentences are shuffled, grouped into pools of similar length, cut into batches whose padded size
(``len(batch) * longest``) stays under ``max_tokens``, and the batches are shuffled again, so that each
epoch sees the data in a new order while every batch is nearly free of padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from tagtune.errors import ConfigError

# A batch of N sentences is read as a budget of N x 10 padded sub-tokens, so ``--per_device_train_batch_size
# 32`` trains on batches of 320 sub-tokens, about 16 CoNLL-2003 sentences (mean 20 sub-tokens under a
# WordPiece vocabulary). Measured (benchmarks/RESULTS.md, "The default training recipe"): on CoNLL-2003,
# 1 epoch, 320-token batches scored 83.85 test F1 against 81.78 for 640-token batches, 81.14 for
# length-grouped and 81.91 for the upstream recipe's model (all with Viterbi decoding): smaller,
# padding-free batches give more optimizer steps for the same sub-tokens, and each step weighs tokens,
# not sentences.
SUBTOKENS_PER_SENTENCE = 10
SAMPLING_STRATEGIES = ("random", "sequential", "group_by_length", "batch_rebalance")


def default_token_budget(batch_size: int) -> int:
    """Padded sub-tokens per training batch when no batching flag is given.

    >>> default_token_budget(32)
    320
    """
    return SUBTOKENS_PER_SENTENCE * batch_size


def resolve_batching(batch_size: int, max_tokens_per_batch: int | None, group_by_length: bool | None = None,
                     strategy: str | None = None) -> tuple[int, str]:
    """``(max_tokens_per_batch, sampling strategy)`` of a run from its batching flags, for both engines.

    No flag: token-budget batches of :func:`default_token_budget`. ``--group_by_length`` /
    ``--train_sampling_strategy`` choose sentence-count batches in that order (budget 0);
    ``--max_tokens_per_batch 0`` too, in upstream's random order.

    >>> resolve_batching(32, None)
    (320, 'random')
    >>> resolve_batching(32, None, group_by_length=True), resolve_batching(8, 0)
    ((0, 'group_by_length'), (0, 'random'))

    Raises:
        ConfigError: Contradictory flags, or a negative budget.
    """
    if group_by_length is not None:
        chosen = "group_by_length" if group_by_length else "random"
        if strategy not in (None, chosen):
            raise ConfigError(f"--group_by_length {group_by_length} contradicts --train_sampling_strategy {strategy}; "
                              "pass one of them")
        strategy = chosen
    if strategy is not None and strategy not in SAMPLING_STRATEGIES:
        raise ConfigError(f"--train_sampling_strategy '{strategy}' is not one of {', '.join(SAMPLING_STRATEGIES)}")
    if max_tokens_per_batch is not None and max_tokens_per_batch < 0:
        raise ConfigError(f"--max_tokens_per_batch must be >= 0, got {max_tokens_per_batch}")
    if max_tokens_per_batch and strategy is not None:
        raise ConfigError(f"--max_tokens_per_batch {max_tokens_per_batch} (token-budget batches) and "
                          f"--train_sampling_strategy {strategy} / --group_by_length choose two batchings; "
                          "pass one of them")
    if max_tokens_per_batch is None:
        max_tokens_per_batch = 0 if strategy is not None else default_token_budget(batch_size)
    return max_tokens_per_batch, strategy or "random"


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

    @property
    def sampler(self) -> TokenBudgetBatchSampler:
        # Accelerate's DataLoaderShard.set_epoch reaches a batch sampler wrapped for several processes
        # (BatchSamplerShard) only through ``batch_sampler.sampler.set_epoch``.
        return self

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)


class EpochRandomSampler:
    """Upstream's random order as a sampler whose order depends only on ``(seed, epoch)``, so a resumed
    run recomputes the epoch's order and skips exactly the batches it already trained on."""

    def __init__(self, size: int, seed: int):
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        return iter(np.random.default_rng(self.seed + self.epoch).permutation(self.size).tolist())

    def __len__(self) -> int:
        return self.size


class EpochLengthGroupedSampler:
    """transformers' length-grouped order (``get_length_grouped_indices``) as a function of ``(seed, epoch)``.

    Built over the *global* batch (per-device batch x processes), so every process draws the same order
    and Accelerate deals consecutive per-device batches of similar length to the processes. Resuming
    recomputes the epoch's order and skips the batches already trained on.
    """

    def __init__(self, lengths: Sequence[int], global_batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), global_batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))

    def __len__(self) -> int:
        return len(self.lengths)


def train_batches(lengths: Sequence[int], max_tokens_per_batch: int, strategy: str, batch_size: int, seed: int,
                  world: int = 1) -> dict:
    """``DataLoader`` arguments for the bare loop's training batches: their order depends only on
    ``(seed, epoch)``, the same on every process, so a resumed run skips exactly the batches it trained on.

    Token-budget batches (the default) keep about ``max_tokens_per_batch`` padded sub-tokens a batch;
    Accelerate deals whole batches to the processes. Sentence-count batches are random (upstream) or
    length-grouped over the *global* batch (per-device batch x processes).
    """
    if max_tokens_per_batch:
        return {"batch_sampler": TokenBudgetBatchSampler(lengths, max_tokens_per_batch, seed=seed)}
    if strategy == "group_by_length":
        return {"batch_size": batch_size, "sampler": EpochLengthGroupedSampler(lengths, batch_size * world, seed)}
    if strategy == "random":
        return {"batch_size": batch_size, "sampler": EpochRandomSampler(len(lengths), seed)}
    raise ConfigError(f"the accelerate loop batches sentences 'random' or 'group_by_length', not '{strategy}'")
