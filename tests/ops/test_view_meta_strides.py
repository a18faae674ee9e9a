"""Every view op's meta rule gives the strides eager gives, on inputs that are not
contiguous too: compiled kernels index a view's shared buffer with the meta's strides,
so contiguous strides on a transposed or complex input read wrong elements silently
(view_as_real, real and imag did, compiled)."""
import numpy as np
import pytest

import ember
from ember.ir.meta import meta_of
from ember.ir.registry import OPS, Tag

VIEW_OPS = sorted((op for op in OPS.values() if Tag.VIEW in op.tags and op.samples
                   and Tag.INPLACE not in op.tags), key=lambda op: op.name)


def _column_major(value):
    """The same values as a non-contiguous tensor (its last two dims' strides swapped)."""
    if isinstance(value, np.ndarray):
        if value.ndim < 2:
            return ember.tensor(value)
        return ember.tensor(np.ascontiguousarray(np.swapaxes(value, -1, -2))).transpose(-1, -2)
    if isinstance(value, (list, tuple)):
        return type(value)(_column_major(v) for v in value)
    return value


def _meta(value):
    if isinstance(value, ember.Tensor):
        return meta_of(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_meta(v) for v in value)
    return value


@pytest.mark.parametrize("op", VIEW_OPS, ids=lambda op: op.name)
def test_view_meta_strides_match_eager(op):
    rng = np.random.default_rng(0)
    for sample in op.samples(rng):
        args = _column_major(sample.args)
        try:
            out = op(*args, **sample.kwargs)
        except Exception:          # noqa: BLE001 - a sample that needs contiguous input
            continue
        meta = op.meta(*op.schema.bind(_meta(args), sample.kwargs))
        outs = out if isinstance(out, (list, tuple)) else [out]
        metas = meta if isinstance(meta, (list, tuple)) else [meta]
        for got, want in zip(outs, metas):
            if got.numel() > 1:
                assert tuple(want.strides) == tuple(got.stride()), \
                    f"{op.name}: meta strides {want.strides}, eager {got.stride()}"
