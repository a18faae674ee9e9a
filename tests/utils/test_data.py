"""ember.utils.data: datasets, samplers, default_collate and the single-process
DataLoader, against torch.utils.data's batching."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.utils.data as tdata

import ember
from ember.utils import data


def _batches_as_numpy(loader):
    return [[part.numpy() for part in batch] for batch in loader]


@pytest.mark.parametrize("batch_size,drop_last", [(3, False), (3, True), (4, False)])
def test_sequential_loader_matches_torch(batch_size, drop_last):
    values, labels = np.arange(20.0, dtype=np.float32).reshape(10, 2), np.arange(10)
    expected = tdata.DataLoader(tdata.TensorDataset(torch.from_numpy(values),
                                                    torch.from_numpy(labels)),
                                batch_size=batch_size, drop_last=drop_last)
    loader = data.DataLoader(data.TensorDataset(ember.tensor(values), ember.tensor(labels)),
                             batch_size=batch_size, drop_last=drop_last)
    assert len(loader) == len(expected)
    for ours, theirs in zip(_batches_as_numpy(loader), _batches_as_numpy(expected),
                            strict=True):
        for a, b in zip(ours, theirs, strict=True):
            np.testing.assert_array_equal(a, b)


def test_shuffled_loader_is_a_permutation():
    ember.manual_seed(0)
    loader = data.DataLoader(data.TensorDataset(ember.arange(10)), batch_size=4, shuffle=True)
    seen = np.concatenate([batch[0].numpy() for batch in loader])
    assert sorted(seen.tolist()) == list(range(10))


def test_default_collate_nests_like_torch():
    samples = [{"x": np.ones(2, np.float32) * i, "y": (i, float(i))} for i in range(3)]
    expected = tdata.default_collate(samples)
    batch = data.default_collate(samples)
    np.testing.assert_array_equal(batch["x"].numpy(), expected["x"].numpy())
    for a, b in zip(batch["y"], expected["y"], strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert str(a.dtype).split(".")[-1] == str(b.dtype).split(".")[-1]


def test_iterable_dataset_batches_the_stream():
    class Stream(data.IterableDataset[int]):
        def __iter__(self):
            return iter(range(7))
    batches = [batch.numpy().tolist() for batch in data.DataLoader(Stream(), batch_size=3)]
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("options,message", [
    (dict(sampler="sequential", shuffle=True), "mutually exclusive"),
    (dict(num_workers=-1), "non-negative"),
    (dict(prefetch_factor=2), "prefetch_factor option could only be specified"),
    (dict(persistent_workers=True), "needs num_workers > 0"),
    (dict(batch_size=None, drop_last=True), "mutually exclusive with drop_last"),
    (dict(timeout=-1), "timeout option should be non-negative")])
def test_option_errors_match_torch(options, message):
    for lib in (tdata, data):
        dataset = lib.TensorDataset(torch.arange(4) if lib is tdata else ember.arange(4))
        if options.get("sampler") == "sequential":
            options = dict(options, sampler=lib.SequentialSampler(dataset))
        with pytest.raises(ValueError, match=message):
            lib.DataLoader(dataset, **options)
