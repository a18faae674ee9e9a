"""torch.embedding_bag (ATen's form): output and the three bookkeeping tensors vs torch."""
import numpy as np
import pytest
import torch

import ember


@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32], ids=str)
@pytest.mark.parametrize("mode", [0, 1, 2])
@pytest.mark.parametrize("padding_idx", [None, 4])
@pytest.mark.parametrize("include_last_offset", [False, True])
def test_embedding_bag_returns_torchs_four_tensors(index_dtype, mode, padding_idx,
                                                   include_last_offset):
    weight = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
    indices = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9], dtype=index_dtype)
    offsets = torch.tensor([0, 2, 2, 5, 8] if include_last_offset else [0, 2, 2, 5],
                           dtype=index_dtype)
    args = (False, mode, False, None, include_last_offset, padding_idx)
    want = torch.embedding_bag(weight, indices, offsets, *args)
    got = ember.embedding_bag(ember.tensor(weight.numpy()), ember.tensor(indices.numpy()),
                              ember.tensor(offsets.numpy()), *args)
    assert len(got) == 4
    for name, g, w in zip(("output", "offset2bag", "bag_size", "max_indices"), got, want):
        assert tuple(g.shape) == tuple(w.shape), name
        assert g.dtype.name == str(w.dtype).split(".")[1], name
        np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, err_msg=name)


def test_embedding_bag_output_carries_weight_gradient():
    weight = torch.randn(6, 2, requires_grad=True)
    indices, offsets = torch.tensor([0, 5, 5, 2]), torch.tensor([0, 1])
    torch.embedding_bag(weight, indices, offsets, False, 1)[0].sum().backward()
    ew = ember.tensor(weight.detach().numpy(), requires_grad=True)
    ember.embedding_bag(ew, ember.tensor(indices.numpy()), ember.tensor(offsets.numpy()),
                        False, 1)[0].sum().backward()
    np.testing.assert_allclose(ew.grad.numpy(), weight.grad.numpy(), rtol=1e-6)
