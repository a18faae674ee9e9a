"""int8 convolutions on AMX tiles (codegen/llvm/qgemm_amx.py) with what the VNNI kernels
have: the padding read in the kernel (each A row's runs copied from the unpadded image,
the zero point outside it), the prepared call (lite_int8.QAmxCall: claimed row tiles, a
kept block and scratch), the conv runners and the fused residual add
(qgemm_amx_u8_add). Bit for bit the NumPy reference's integers, on the geometries the
VNNI border tiles are tested on (tests/quant/test_qconv_kernel_pad.py)."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm_amx as QA
from ember.ir.ops import OPS
from ember.runtime import lite_int8 as lite
from tests.quant.test_qconv_kernel_pad import GEOMETRIES, _activation, _weight

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(not QA.available(), reason="no AMX-INT8 tiles here")]


@pytest.fixture
def in_kernel(monkeypatch):
    """Every padded run-layout conv pads in the kernel (whatever its run's length);
    counts the gathers made so."""
    made = []
    real = lite.conv_gather_unpadded
    monkeypatch.setattr(lite, "PAD_IN_KERNEL_MIN_RUN", 4)
    monkeypatch.setattr(lite, "conv_gather_unpadded",
                        lambda *args: made.append(args) or real(*args))
    return made


@pytest.mark.parametrize("shape, oc, kernel, stride, padding, dilation, channels_last",
                         GEOMETRIES)
@pytest.mark.parametrize("zero_point", [0, 131, 255])
def test_amx_padding_in_the_kernel_equals_the_reference(rng, in_kernel, shape, oc, kernel,
                                                        stride, padding, dilation,
                                                        channels_last, zero_point):
    x = _activation(rng, shape, zero_point, channels_last)
    args = [x, _weight(rng, oc, shape[1], *kernel), rng.standard_normal(oc).astype(np.float32),
            list(stride), list(padding), list(dilation), 1, 0.05, 90, True]
    got = CQ.conv2d(*args, cache={}, cfg=QA.AMX)
    assert len(in_kernel) == 1
    np.testing.assert_array_equal(got.int_repr, OPS["quantized_conv2d"].reference(*args).int_repr)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("oc", [40, 64])       # a ragged last column block, whole ones
def test_amx_runners_and_the_fused_residual_add_equal_the_reference(rng, threads, oc):
    if CQ.gemm_config() is not QA.AMX:
        pytest.skip("eager mode's GEMM here is not AMX (EMBER_QGEMM / EMBER_ISA)")
    before = ember.get_num_threads()
    ember.set_num_threads(threads)
    try:
        for shape, padding in (((3, 64, 11, 9), [1, 1]), ((2, 32, 6, 6), [0, 0])):
            x = _activation(rng, shape, 120, True)
            other = _activation(rng, (shape[0], oc) + shape[2:], 77, True)
            args = [x, _weight(rng, oc, shape[1], 3, 3) if padding[0] else
                    _weight(rng, oc, shape[1], 1, 1), rng.standard_normal(oc).astype(np.float32),
                    [1, 1], padding, [1, 1], 1, 0.07, 60, True]
            cache = {}
            runner = CQ.conv_runner(args, cache)
            fused = CQ.conv_runner(args, cache, residual=(other, 0.09, 40, True))
            want = OPS["quantized_conv2d"].reference(*args).int_repr
            want_add = OPS["quantized_conv2d_add"].reference(*args, other, 0.09, 40,
                                                             True).int_repr
            for _ in range(3):      # the kept block and scratch, called again
                np.testing.assert_array_equal(runner(x.int_repr, args[2]).int_repr, want)
                np.testing.assert_array_equal(
                    fused(x.int_repr, args[2], other.int_repr).int_repr, want_add)
            assert runner(x.int_repr, args[2] + 1) is None      # another bias: full path
    finally:
        ember.set_num_threads(before)
