from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tagtune.batching import TokenBudgetBatchSampler, token_budget_batches


@given(lengths=st.lists(st.integers(1, 300), min_size=0, max_size=400), budget=st.integers(1, 2000),
       seed=st.integers(0, 10))
@settings(max_examples=200, deadline=None)
def test_every_index_once_and_budget_respected(lengths, budget, seed) -> None:
    batches = token_budget_batches(lengths, budget, seed, pool_size=64)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= budget


def test_padding_is_small_and_epochs_reshuffle() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=5000).tolist()
    sampler = TokenBudgetBatchSampler(lengths, max_tokens=2048, seed=1)
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in sampler)
    assert padded / real < 1.05
    first = [list(b) for b in sampler]
    sampler.set_epoch(1)
    assert [list(b) for b in sampler] != first
    sampler.set_epoch(0)
    assert [list(b) for b in sampler] == first
