"""The native global average pool of a channels-last quint8 value (qelementwise qgap_u8:
adaptive_avg_pool2d to 1 x 1, a CNN's head): the integers of the NumPy steps
(lite_int8.adaptive_average_quantized) and of torch's quantized kernel, over channel
counts off the 16-lane vector, window sizes and zero points."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import ember
from ember.codegen.llvm import qelementwise as QE
from ember.runtime import lite_int8 as lite

pytestmark = pytest.mark.skipif(not QE.available(), reason="no AVX2 / AVX-512 host")


@pytest.mark.parametrize("n,c,h,w,zp", [(8, 512, 7, 7, 0), (3, 37, 5, 4, 128), (2, 16, 1, 1, 7),
                                        (1, 5, 13, 11, 255), (4, 256, 14, 14, 64),
                                        (2, 96, 255, 255, 3)])
def test_native_global_pool_equals_the_numpy_steps(n, c, h, w, zp):
    rng = np.random.default_rng(n * c + h)
    q = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8).transpose(0, 3, 1, 2)
    want = lite.adaptive_average_quantized(q, 0.05, zp, [1, 1]).reshape(n, c)
    got = QE.global_avg_pool_nhwc(q.transpose(0, 2, 3, 1), zp)
    np.testing.assert_array_equal(got, want)


def test_extremes_and_ties_equal_the_numpy_steps():
    """All-255 and all-0 windows (the clamp), and windows whose mean lands on .5."""
    q = np.zeros((4, 2, 1, 16), np.uint8)          # [N, H, W, C]: 2 pixels a window
    q[0] = 255
    q[2, 0, 0], q[2, 1, 0] = 3, 4                  # mean 3.5: a tie, even rounding
    q[3, 0, 0], q[3, 1, 0] = 4, 5                  # 4.5
    for zp in (0, 1, 200):
        want = lite.adaptive_average_quantized(q.transpose(0, 3, 1, 2), 0.1, zp, [1, 1])
        np.testing.assert_array_equal(QE.global_avg_pool_nhwc(q, zp), want.reshape(4, 16))


def test_other_layouts_and_sizes_are_declined():
    x = np.zeros((2, 3, 4, 8), np.uint8)
    assert QE.global_avg_pool_nhwc(x[:, :, :2], 0) is None          # not contiguous
    assert QE.global_avg_pool_nhwc(x.astype(np.int8), 0) is None
    assert QE.global_avg_pool_nhwc(np.zeros((1, 256, 256, 4), np.uint8), 0) is None


@pytest.mark.parametrize("shape,scale,zp", [((8, 512, 7, 7), 0.03, 0), ((4, 40, 9, 6), 0.2, 97),
                                            ((2, 3, 5, 5), 1.5, 250)])
def test_quantized_adaptive_avg_pool_of_a_channels_last_tensor_matches_torch(shape, scale, zp):
    """F.adaptive_avg_pool2d(x, 1) / nn.AdaptiveAvgPool2d((1, 1)) on a channels-last quint8
    tensor (what a converted CNN's head gets), against torch's quantized kernel."""
    rng = np.random.default_rng(shape[1])
    x = rng.standard_normal(shape).astype(np.float32) * 3
    tq = torch.quantize_per_tensor(torch.from_numpy(x), scale, zp, torch.quint8) \
        .contiguous(memory_format=torch.channels_last)
    eq = ember.quantize_per_tensor(ember.tensor(x), scale, zp, ember.quint8) \
        .contiguous(memory_format=ember.channels_last)
    want = torch.nn.functional.adaptive_avg_pool2d(tq, 1)
    for got in (ember.nn.functional.adaptive_avg_pool2d(eq, 1),
                ember.nn.AdaptiveAvgPool2d((1, 1))(eq)):
        assert tuple(got.shape) == tuple(want.shape)
        assert got.q_scale() == want.q_scale() and got.q_zero_point() == want.q_zero_point()
        np.testing.assert_array_equal(got.int_repr().numpy(), want.int_repr().numpy())
