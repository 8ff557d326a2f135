"""The epoch orders tasks share: a seeded permutation and the length-bucketed order."""

from __future__ import annotations

import torch

from archzoo.tasks.base import length_buckets


def bucket_spread(order: torch.Tensor, lengths: torch.Tensor, batch_size: int) -> float:
    """Mean (longest - shortest) length within the full batches of ``order``."""
    full = len(order) // batch_size * batch_size
    batches = lengths[order[:full]].view(-1, batch_size)
    return float((batches.max(1).values - batches.min(1).values).float().mean())


def test_length_buckets_is_a_deterministic_permutation_of_similar_lengths() -> None:
    lengths = torch.randint(3, 40, (1_037,), generator=torch.Generator().manual_seed(0))
    order = length_buckets(lengths, batch_size=16, seed=3, epoch=2)
    assert order.dtype == torch.int64 and torch.equal(order.sort().values, torch.arange(1_037))
    assert torch.equal(order, length_buckets(lengths, 16, seed=3, epoch=2))
    assert not torch.equal(order, length_buckets(lengths, 16, seed=3, epoch=3))
    assert not torch.equal(order, length_buckets(lengths, 16, seed=4, epoch=2))
    assert bucket_spread(order, lengths, 16) < 0.25 * bucket_spread(torch.randperm(1_037), lengths, 16)
