"""dequantize of per-tensor 8-bit tensors by the native kernel (codegen/llvm/
qelementwise.py qdequantize_u8 / _i8): the same float32 values as torch.dequantize and as
ember's NumPy reference, bit for bit, for small outputs (one direct call), large ones
(split over the thread pool), odd lengths (the one-lane tail); other layouts take the reference."""
import numpy as np
import pytest
import torch

import ember
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qelementwise as QE
from ember.ir import dtypes
from ember.ir.quantized import QuantizedArray, dequantize_array

pytestmark = pytest.mark.skipif(not QE.available(), reason="the native kernel needs AVX2")

CASES = [("quint8", 0.0123, 3), ("quint8", 1e-3, 0), ("quint8", 3.7, 250),
         ("qint8", 0.1, -7), ("qint8", 2.5e-5, 127), ("qint8", 0.37, -128)]


@pytest.mark.parametrize("size", [1, 17, 64 * 1024, (1 << 18) + 5])
@pytest.mark.parametrize("dtype,scale,zero_point", CASES)
def test_dequantize_matches_torch(size, dtype, scale, zero_point):
    rng = np.random.default_rng(size)
    x = (rng.standard_normal(size) * 4).astype(np.float32)
    t = torch.quantize_per_tensor(torch.from_numpy(x), scale, zero_point,
                                  getattr(torch, dtype))
    e = ember.quantize_per_tensor(ember.tensor(x), scale, zero_point, getattr(ember, dtype))
    np.testing.assert_array_equal(e.int_repr().numpy(), t.int_repr().numpy())
    out = e.dequantize()
    assert out.dtype == ember.float32
    assert out.numpy().tobytes() == t.dequantize().numpy().tobytes()
    qa = e._qarray()
    native = CQ.dequantize_kernel(qa)
    assert native is not None       # the kernel, not the reference, computed `out`
    assert native().tobytes() == dequantize_array(qa).tobytes()


@pytest.mark.parametrize("np_dtype", [np.uint8, np.int8])
def test_large_zero_point_matches_reference(np_dtype):
    """zero points far outside the 8-bit range (allowed on ember's arrays): still exact."""
    q = np.random.default_rng(1).integers(-128, 128, 1000).astype(np_dtype)
    qa = QuantizedArray(q, dtypes.quint8 if np_dtype == np.uint8 else dtypes.qint8,
                        2.5e-5, -(1 << 22) + 3)
    assert CQ.dequantize_kernel(qa)().tobytes() == dequantize_array(qa).tobytes()


def test_channels_last_takes_the_reference():
    """The kernel writes contiguous results only: a channels-last value's result in its
    own layout is not the one the meta rule (and so a compiled plan) reads."""
    q = np.random.default_rng(0).integers(0, 256, (2, 8, 5, 3)).astype(np.uint8)
    nhwc = np.ascontiguousarray(q.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    assert CQ.dequantize_kernel(QuantizedArray(nhwc, dtypes.quint8, 0.05, 9)) is None


def test_other_layouts_and_per_channel_take_the_reference():
    q = np.arange(24, dtype=np.uint8).reshape(4, 6)
    assert CQ.dequantize_kernel(QuantizedArray(q[:, ::2], dtypes.quint8, 0.1, 1)) is None
    per_channel = QuantizedArray(q, dtypes.quint8, np.full(4, 0.1), np.zeros(4, np.int64), 0)
    assert CQ.dequantize_kernel(per_channel) is None


def test_tensor_dequantize_of_channels_last_matches_torch():
    x = np.random.default_rng(2).standard_normal((2, 8, 5, 3)).astype(np.float32)
    t = torch.quantize_per_tensor(
        torch.from_numpy(x).contiguous(memory_format=torch.channels_last), 0.02, 120,
        torch.quint8).dequantize()
    e = ember.quantize_per_tensor(
        ember.tensor(x).contiguous(memory_format=ember.channels_last), 0.02, 120,
        ember.quint8).dequantize()
    np.testing.assert_array_equal(e.numpy(), t.numpy())
    e.add_(1.0)         # the result owns its memory: a plain float tensor
    np.testing.assert_array_equal(e.numpy(), t.numpy() + 1.0)
