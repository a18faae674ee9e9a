"""ember.compile on layout-sensitive graphs: permutes, reductions, broadcasts, layer_norm and
softmax on shapes with size-1 (and size-0) dims, compiled (LLVM) against eager.

The regression cases are the smallest graphs that gave wrong values before their fix; the
property test builds random graphs of the same ops to find the next one."""
import numpy as np
import pytest

import ember
import ember.nn.functional as F
from tests.op_samples import assert_arrays_close


def _assert_compiled_equals_eager(fn, *tensors, tol=1e-4):
    with ember.no_grad():
        want = fn(*tensors)
        got = ember.compile(fn)(*tensors)
    assert tuple(got.shape) == tuple(want.shape) and got.dtype == want.dtype
    assert_arrays_close(got.numpy(), want.numpy(), rtol=tol, atol=tol)


def _centered_channels_last(x):
    """A reduction over channels of a channels-last view, permuted back to NCHW."""
    nhwc = x.permute(0, 2, 3, 1)
    return (nhwc - nhwc.sum(3, keepdim=True) / x.shape[1]).permute(0, 3, 1, 2)


@pytest.mark.parametrize("shape", [(2, 8, 1, 1), (2, 8, 2, 2), (2, 8, 1, 3)])
def test_reduce_broadcast_permute_back(shape):
    # [2,8,1,1]: the permuted-back output [2,8,1,1] has the rank of the keepdim result
    # [2,1,1,1], and the kernel stored it as that (one channel of eight): wrong values
    _assert_compiled_equals_eager(_centered_channels_last, ember.randn(*shape))


def _layer_norm_2d(x, weight, bias):
    """ConvNeXt's LayerNorm2d: layer_norm over channels of a channels-last view."""
    y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), weight, bias, 1e-6)
    return y.permute(0, 3, 1, 2)


@pytest.mark.parametrize("spatial", [1, 2])
def test_layer_norm_2d(spatial):
    # was NaN at 1x1 (the same store of a [N,C,1,1] output as a keepdim result)
    c = 768 if spatial == 1 else 16
    _assert_compiled_equals_eager(_layer_norm_2d, ember.randn(2, c, spatial, spatial),
                                  ember.randn(c), ember.randn(c))


def test_relu_keeps_nan():
    # the kernel computed `x > 0 ? x : 0`, which maps NaN to 0; PyTorch's relu keeps NaN
    x = ember.tensor([float("nan"), -1.0, 2.0, 0.0])
    _assert_compiled_equals_eager(lambda t: t.relu() * 2, x)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_over_an_empty_dim(name):
    # eager (NumPy's max has no identity) and the decomposition (amax) raised; torch gives []
    import torch
    fn = getattr(ember, name)
    assert tuple(fn(ember.randn(2, 0, 3), 1).shape) == \
        tuple(getattr(torch, name)(torch.randn(2, 0, 3), 1).shape)
    _assert_compiled_equals_eager(lambda t: fn(t, 1), ember.randn(2, 0, 3))

