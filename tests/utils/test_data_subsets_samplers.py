"""utils.data's Subset, random_split, SubsetRandomSampler and WeightedRandomSampler:
the same sizes, contents and errors as torch.utils.data (the draws themselves come from
ember's generator, so only their invariants are compared)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import ember
import ember.utils.data as edata


def _datasets(n=10):
    values = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    return (edata.TensorDataset(ember.tensor(values), ember.arange(n)),
            tdata.TensorDataset(torch.tensor(values), torch.arange(n)))


def test_subset_indexes_like_torch():
    ours, ref = _datasets()
    indices = [7, 2, 5]
    sub, sub_ref = edata.Subset(ours, indices), tdata.Subset(ref, indices)
    assert len(sub) == len(sub_ref)
    for i in range(len(sub)):
        np.testing.assert_array_equal(sub[i][0].numpy(), sub_ref[i][0].numpy())
        assert sub[i][1].item() == sub_ref[i][1].item()
    batches = [b[1].tolist() for b in edata.DataLoader(sub, batch_size=2)]
    assert batches == [b[1].tolist() for b in tdata.DataLoader(sub_ref, batch_size=2)]


@pytest.mark.parametrize("lengths", [[7, 3], [0.8, 0.2], [0.34, 0.33, 0.33], [10, 0]])
def test_random_split_sizes_match_torch_and_partition(lengths):
    ours, ref = _datasets()
    parts = edata.random_split(ours, lengths, generator=ember.Generator().manual_seed(0))
    parts_ref = tdata.random_split(ref, lengths, generator=torch.Generator().manual_seed(0))
    assert [len(p) for p in parts] == [len(p) for p in parts_ref]
    seen = sorted(p[i][1].item() for p in parts for i in range(len(p)))
    assert seen == list(range(10))                      # disjoint and complete


def test_random_split_is_reproducible_per_generator():
    ours, _ = _datasets()
    first = edata.random_split(ours, [5, 5], generator=ember.Generator().manual_seed(3))
    again = edata.random_split(ours, [5, 5], generator=ember.Generator().manual_seed(3))
    assert first[0].indices == again[0].indices


def test_random_split_bad_lengths_refused_like_torch():
    ours, ref = _datasets()
    with pytest.raises(ValueError, match="Sum of input lengths") as ours_err:
        edata.random_split(ours, [4, 4])
    with pytest.raises(ValueError, match="Sum of input lengths"):
        tdata.random_split(ref, [4, 4])
    assert "10" in str(ours_err.value)


def test_subset_random_sampler_permutes_the_given_indices():
    indices = [9, 4, 6, 1]
    sampler = edata.SubsetRandomSampler(indices, generator=ember.Generator().manual_seed(1))
    drawn = list(sampler)
    assert sorted(drawn) == sorted(indices) and len(sampler) == 4
    ours, _ = _datasets()
    loader = edata.DataLoader(ours, batch_size=3, sampler=sampler)
    assert sorted(sum((b[1].tolist() for b in loader), [])) == sorted(indices)


def test_weighted_random_sampler():
    sampler = edata.WeightedRandomSampler([0.0, 1.0, 0.0, 3.0], num_samples=200,
                                          generator=ember.Generator().manual_seed(0))
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 200
    assert set(drawn) <= {1, 3}
    assert 100 < drawn.count(3) < 200                  # ~150 expected
    unique = list(edata.WeightedRandomSampler([1.0, 1.0, 1.0], 3, replacement=False))
    assert sorted(unique) == [0, 1, 2]
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        edata.WeightedRandomSampler([1.0], 0)
    with pytest.raises(ValueError, match="num_samples should be a positive integer"):
        tdata.WeightedRandomSampler([1.0], 0)
