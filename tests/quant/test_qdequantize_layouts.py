"""dequantize of quantized tensors that are not C-contiguous (channels-last, sliced,
permuted) in eager mode and under ember.compile: the values torch.dequantize gives, and a
compiled function's result equal to eager's (a plan reads each step's result in the layout
the op's meta rule gives; a result left in the input's layout was read as the wrong
elements, e.g. a row's values swapped with another's)."""
import numpy as np
import pytest
import torch

import ember

pytestmark = pytest.mark.filterwarnings("ignore")

# what follows the dequantize (y; F the library's nn.functional): ops that read their
# input's elements by position
AFTER = {
    "reshape": lambda y, F: y.reshape(y.shape[0], -1) * 2.0,
    "sum": lambda y, F: y.sum(1) + 1.0,
    "mean": lambda y, F: y.mean((2, 3)) if y.dim() == 4 else y.mean(1),
    "instance_norm": lambda y, F: F.instance_norm(y) if y.dim() == 4 else y * 3.0,
}


def _channels_last(lib, x):
    return lib.quantize_per_tensor(lib.tensor(x) if lib is ember else torch.from_numpy(x),
                                   0.05, 3, lib.quint8).contiguous(
        memory_format=lib.channels_last)


def _sliced(lib, x):
    t = lib.tensor(x) if lib is ember else torch.from_numpy(x)
    return lib.quantize_per_tensor(t, 0.05, 130, lib.quint8)[:, ::2]


def _permuted(lib, x):
    t = lib.tensor(x) if lib is ember else torch.from_numpy(x)
    return lib.quantize_per_tensor(t, 0.04, -3, lib.qint8).permute(0, 2, 3, 1)


LAYOUTS = {"channels_last": (_channels_last, (2, 4, 11, 2)),
           "sliced": (_sliced, (3, 10)),
           "permuted": (_permuted, (2, 3, 5, 4))}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_eager_dequantize_matches_torch(layout):
    make, shape = LAYOUTS[layout]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    e, t = make(ember, x), make(torch, x)
    np.testing.assert_array_equal(e.int_repr().numpy(), t.int_repr().numpy())
    np.testing.assert_array_equal(e.dequantize().numpy(), t.dequantize().numpy())


@pytest.mark.parametrize("after", sorted(AFTER))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_compiled_dequantize_matches_eager(layout, after):
    make, shape = LAYOUTS[layout]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    q = make(ember, x)
    fn = lambda v: AFTER[after](v.dequantize(), ember.nn.functional)     # noqa: E731
    want = fn(q).numpy()
    with ember.no_grad():
        got = ember.compile(fn)(q).numpy()
    # a compiled reduction may sum in another order: rounding apart, never elements apart
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    t = AFTER[after](make(torch, x).dequantize(), torch.nn.functional)
    np.testing.assert_allclose(want, t.numpy(), rtol=1e-5, atol=1e-6)
