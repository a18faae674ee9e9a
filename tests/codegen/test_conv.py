"""conv2d (im2col + GEMM) against torch in float64, NCHW and NHWC."""
import numpy as np
import pytest
import torch

from ember.codegen.llvm.conv import conv2d
from ember.ir.errors import DTypeError, ShapeError

CASES = [
    ((2, 3, 9, 11), (4, 3, 3, 3), {}),
    ((2, 4, 8, 8), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 6, 10, 7), (6, 1, 3, 3), dict(padding=(2, 1), dilation=2, groups=6)),   # depthwise
    ((2, 8, 5, 5), (16, 8, 1, 1), {}),                                           # pointwise
    ((1, 8, 6, 6), (4, 4, 1, 1), dict(groups=2)),                                # grouped 1x1
    ((2, 6, 7, 7), (5, 6, 1, 1), dict(stride=2)),                                # downsample
    ((1, 3, 7, 7), (5, 3, 2, 4), dict(stride=(2, 3), padding="valid")),
    ((1, 3, 7, 9), (5, 3, 3, 5), dict(padding="same", dilation=(1, 2))),
    ((1, 3, 16, 16), (8, 3, 7, 7), dict(stride=2, padding=3)),                   # a stem
    # >= 16 channels per group: channels-last patches (the native im2col) in both layouts
    ((1, 32, 6, 5), (8, 16, 3, 3), dict(padding=1, groups=2, stride=(1, 2))),
    ((2, 16, 5, 5), (4, 16, 3, 3), dict(dilation=2, padding=2)),
]


def _reference(x, w, bias, kwargs):
    t = torch.nn.functional.conv2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                   None if bias is None else torch.from_numpy(bias).double(),
                                   **kwargs)
    return t.numpy()


@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("x_shape,w_shape,kwargs", CASES, ids=[str(c[2]) + str(c[1]) for c in CASES])
def test_conv2d_matches_torch(x_shape, w_shape, kwargs, layout, rng):
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32)
    want = _reference(x, w, bias, kwargs)
    if layout == "nhwc":
        got = conv2d(np.ascontiguousarray(x.transpose(0, 2, 3, 1)), w, bias, layout="nhwc",
                     **kwargs).transpose(0, 3, 1, 2)
    else:
        got = conv2d(x, w, bias, **kwargs)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_no_bias_and_channels_last_view(rng):
    x = rng.standard_normal((2, 5, 6, 6)).astype(np.float32)
    w = rng.standard_normal((3, 5, 3, 3)).astype(np.float32)
    view = x.transpose(0, 2, 3, 1)            # NHWC view of an NCHW array (not contiguous)
    got = conv2d(view, w, padding=1, layout="nhwc").transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, _reference(x, w, None, dict(padding=1)), rtol=1e-5,
                               atol=1e-5)


def test_bad_inputs_are_named():
    x = np.zeros((1, 4, 5, 5), np.float32)
    with pytest.raises(ShapeError, match=r"has 4 channels, but weight \(2, 3, 3, 3\) expects 3"):
        conv2d(x, np.zeros((2, 3, 3, 3), np.float32))
    with pytest.raises(ShapeError, match="groups=3 must divide in_channels=4"):
        conv2d(x, np.zeros((3, 1, 3, 3), np.float32), groups=3)
    with pytest.raises(ShapeError, match="smaller than the dilated kernel"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), dilation=3)
    with pytest.raises(ShapeError, match="padding='same' is not supported for strided"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), padding="same", stride=2)
    with pytest.raises(ShapeError, match=r"bias must have shape \(2,\)"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(DTypeError, match="input must be a float32 numpy array, got float64"):
        conv2d(x.astype(np.float64), np.zeros((2, 4, 3, 3), np.float32))
    with pytest.raises(ShapeError, match="layout must be one of"):
        conv2d(x, np.zeros((2, 4, 3, 3), np.float32), layout="chwn")
