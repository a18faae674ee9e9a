"""The int8 convolution's padded channels-last input (lite_int8.nhwc_input) equals torch's
constant pad of the NHWC integers with the zero point, on fresh and on reused buffers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ember.runtime import lite_int8 as lite


@pytest.mark.parametrize("n,c,h,w,ph,pw,cp", [
    (2, 64, 5, 7, 1, 1, 64), (3, 3, 9, 8, 3, 3, 3), (2, 5, 4, 4, 1, 1, 8),
    (1, 16, 6, 6, 2, 1, 16), (2, 8, 3, 3, 0, 1, 8), (8, 64, 46, 46, 1, 1, 64)])
def test_padded_input_equals_torch_pad(rng, n, c, h, w, ph, pw, cp):
    for zero_point in (7, 200):      # the second call may reuse the first's buffer
        nhwc = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
        x = nhwc.transpose(0, 3, 1, 2)           # channels-last, as a conv's output
        want = F.pad(torch.from_numpy(nhwc), (0, cp - c, pw, pw, ph, ph), value=zero_point)
        got = lite.nhwc_input(x, zero_point, (ph, pw), cp)
        np.testing.assert_array_equal(got, want.numpy())


def _native_pad():
    from ember.codegen.llvm import qelementwise as QE
    if not QE.available():
        pytest.skip("the native padded copy needs AVX2 or AVX-512")
    return QE


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n,c,h,w,ph,pw", [
    (2, 64, 5, 7, 1, 1), (1, 16, 6, 6, 2, 1), (2, 8, 3, 3, 0, 1), (8, 128, 28, 28, 1, 1),
    (8, 256, 14, 14, 1, 1), (3, 32, 4, 9, 3, 0)])
def test_native_padded_copy_equals_torch_pad(rng, n, c, h, w, ph, pw, threads):
    """The native padded copy (qelementwise pad_nhwc: rows split over the pool from
    lite_int8.PAD_PARALLEL_MIN_BYTES written, which the two resnet18 shapes here reach)
    writes torch's constant pad, from contiguous and from sliced channels-last sources;
    nhwc_input takes it for copies that large (the slack bytes past the end too)."""
    import ember
    QE = _native_pad()
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        for zero_point, sliced in ((7, False), (200, True)):
            big = rng.integers(0, 256, (n, h + 2, w + 3, c), dtype=np.uint8)
            nhwc = big[:, 1:h + 1, 2:w + 2] if sliced else np.ascontiguousarray(big[:, :h, :w])
            want = F.pad(torch.from_numpy(np.ascontiguousarray(nhwc)), (0, 0, pw, pw, ph, ph),
                         value=zero_point).numpy()
            got = np.full(want.shape, 1, np.uint8)
            QE.pad_nhwc(nhwc, got, (ph, pw), zero_point)
            np.testing.assert_array_equal(got, want)
            if want.nbytes < lite.PAD_PARALLEL_MIN_BYTES:
                continue
            got = lite.nhwc_input(nhwc.transpose(0, 3, 1, 2), zero_point, (ph, pw), c, 5,
                                  pad=QE.pad_nhwc)
            np.testing.assert_array_equal(got, want)
            tail = np.asarray(got.base).reshape(-1)[got.size:got.size + 5]
            np.testing.assert_array_equal(tail, np.full(5, zero_point, np.uint8))
    finally:
        ember.set_num_threads(before)


def test_native_border_around_a_packed_input(rng):
    """A packed input (the stem's 3 channels): the native copy writes only the border and
    the interleaving pack the inside, as NumPy's border fills and the pack did."""
    QE = _native_pad()
    x = rng.integers(0, 256, (2, 3, 21, 17), dtype=np.uint8)
    want = F.pad(torch.from_numpy(x.transpose(0, 2, 3, 1).copy()), (0, 0, 3, 3, 3, 3), value=9)
    got = lite.nhwc_input(x, 9, (3, 3), 3, 0, QE.pack_nhwc, QE.pad_nhwc)
    np.testing.assert_array_equal(got, want.numpy())


def test_native_padded_copy_rejects_a_mismatched_source():
    QE = _native_pad()
    src = np.zeros((1, 4, 4, 8), np.uint8)
    with pytest.raises(ValueError, match="interior shape"):
        QE.pad_nhwc(src, np.zeros((1, 6, 7, 8), np.uint8), (1, 1), 0)
