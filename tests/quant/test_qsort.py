"""Ordering ops on per-tensor quantized tensors, as torch runs them: sort / argsort /
msort / topk / max(dim) / min(dim) order the integers (the scale is positive), values keep
the input's qparams and indices are int64. Distinct values, so the indices are the same
whatever the tie order."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import ember

warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")

CASES = {
    "sort": lambda m, q: m.sort(q, dim=1),
    "sort_descending_dim0": lambda m, q: m.sort(q, dim=0, descending=True),
    "sort_stable_method": lambda m, q: q.sort(stable=True),
    "argsort": lambda m, q: m.argsort(q, dim=1, descending=True),
    "msort": lambda m, q: m.msort(q),
    "topk": lambda m, q: m.topk(q, 3),
    "topk_smallest_dim0": lambda m, q: q.topk(2, dim=0, largest=False),
    "max_dim": lambda m, q: m.max(q, 1),
    "min_dim_keepdim": lambda m, q: m.min(q, 0, keepdim=True),
}


def _twins(dtype):
    # a permutation of distinct integers: no ties
    ints = np.random.default_rng(0).permutation(48).reshape(4, 12).astype(np.float32)
    x = (ints - 20) * 0.1
    zero_point = 30 if dtype == "quint8" else 5
    return (ember.quantize_per_tensor(ember.tensor(x), 0.1, zero_point, getattr(ember, dtype)),
            torch.quantize_per_tensor(torch.from_numpy(x), 0.1, zero_point,
                                      getattr(torch, dtype)))


def _parts(result):
    return list(result) if isinstance(result, tuple) else [result]


@pytest.mark.parametrize("dtype", ["quint8", "qint8"])
@pytest.mark.parametrize("case", list(CASES))
def test_ordering_ops_on_quantized_tensors_as_torch(case, dtype):
    e_q, t_q = _twins(dtype)
    e_out, t_out = _parts(CASES[case](ember, e_q)), _parts(CASES[case](torch, t_q))
    assert len(e_out) == len(t_out)
    for e, t in zip(e_out, t_out):
        assert e.is_quantized == t.is_quantized
        if t.is_quantized:
            assert (e.q_scale(), e.q_zero_point(), str(e.dtype).split(".")[1]) == \
                (t.q_scale(), t.q_zero_point(), str(t.dtype).split(".")[1])
            np.testing.assert_array_equal(e.int_repr().numpy(), t.int_repr().numpy())
        else:
            np.testing.assert_array_equal(e.numpy(), t.numpy())
    t_res, e_res = CASES[case](torch, t_q), CASES[case](ember, e_q)
    if isinstance(t_res, tuple):                    # the named (values, indices)
        assert e_res._fields == ("values", "indices")


def test_per_channel_sort_refused_as_torch():
    x = ember.quantize_per_channel(ember.randn(3, 4), ember.tensor([0.1, 0.2, 0.3]),
                                   ember.tensor([0, 0, 0]), 0, ember.qint8)
    with pytest.raises(NotImplementedError, match="sort"):
        ember.sort(x)
