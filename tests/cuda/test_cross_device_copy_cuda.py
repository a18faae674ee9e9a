"""Eager copies between the CPU and a CUDA device as torch allows them: `copy_` in both
directions (dtype conversion, broadcasting, gradients to each side), `to(...,
non_blocking=True)`, `.cuda(non_blocking=True)`, `pin_memory()`, and `x[i] = value` on a
CUDA x with a CPU value (a basic index is a copy_; an advanced index takes 0-dim values).
Values compared with the same calls in torch on the CPU.
In CI under TRITON_INTERPRET=1 (tests/cuda/emulation.py); on a GPU via run_on_gpu.sh."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import torch  # noqa: E402

import ember  # noqa: E402

from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture

CASES = [((2, 3), "float32", (2, 3), "float32"),
         ((2, 3), "float32", (3,), "int64"),        # broadcast and convert
         ((4, 1, 3), "float64", (1, 3), "float32"),
         ((5,), "int32", (), "float64"),            # 0-dim source
         ((2, 2), "bool", (2, 2), "float32")]


def _values(shape, dtype, seed):
    rng = np.random.default_rng(seed)
    return np.asarray((rng.standard_normal(shape) * 4).astype(dtype))


@pytest.mark.parametrize("direction", ["cpu->cuda", "cuda->cpu"])
@pytest.mark.parametrize("dst_shape,dst_dtype,src_shape,src_dtype", CASES)
def test_copy_between_cpu_and_cuda(device, direction, dst_shape, dst_dtype,  # noqa: F811
                                   src_shape, src_dtype):
    dst_np, src_np = _values(dst_shape, dst_dtype, 0), _values(src_shape, src_dtype, 1)
    want = torch.from_numpy(dst_np.copy()).copy_(torch.from_numpy(src_np.copy()))
    dst_dev, src_dev = ("cuda", "cpu") if direction == "cpu->cuda" else ("cpu", "cuda")
    dst = ember.tensor(dst_np).to(dst_dev)
    src = ember.tensor(src_np).to(src_dev)
    out = dst.copy_(src, non_blocking=True)
    assert out is dst and dst.device.type == dst_dev
    np.testing.assert_array_equal(dst.cpu().numpy(), want.numpy())


def test_copy_gradients_reach_both_devices(device):  # noqa: F811
    a = ember.zeros(2, 3, device=device, requires_grad=True)
    b = ember.arange(3.0, requires_grad=True)                 # CPU, broadcast into a's copy
    y = a.clone()
    y.copy_(b)
    (y * ember.tensor([[1.0], [2.0]]).to(device)).sum().backward()
    ta, tb = torch.zeros(2, 3, requires_grad=True), torch.arange(3.0, requires_grad=True)
    ty = ta.clone()
    ty.copy_(tb)
    (ty * torch.tensor([[1.0], [2.0]])).sum().backward()
    assert a.grad.is_cuda and not b.grad.is_cuda
    np.testing.assert_array_equal(a.grad.cpu().numpy(), ta.grad.numpy())
    np.testing.assert_array_equal(b.grad.numpy(), tb.grad.numpy())


def test_non_blocking_moves_and_pin_memory(device):  # noqa: F811
    x = ember.arange(12.0).reshape(3, 4)
    pinned = x.pin_memory()
    for moved in (x.to(device, non_blocking=True), x.cuda(non_blocking=True),
                  pinned.to(device, non_blocking=True),
                  x.to(device, ember.float64, non_blocking=True)):
        assert moved.is_cuda
        np.testing.assert_array_equal(moved.cpu().numpy(), x.numpy())
    back = x.to(device).to("cpu", non_blocking=True)
    np.testing.assert_array_equal(back.numpy(), x.numpy())
    assert x.cpu(memory_format=ember.contiguous_format).is_contiguous()


def test_setitem_on_cuda_with_cpu_values(device):  # noqa: F811
    x, tx = ember.zeros(3, 4, device=device), torch.zeros(3, 4)
    row = np.arange(4, dtype=np.float32)
    x[1] = ember.tensor(row)                                 # basic index: a copy_
    tx[1] = torch.from_numpy(row)
    x[0, 2] = ember.tensor(7.0)                              # 0-dim CPU value
    tx[0, 2] = torch.tensor(7.0)
    x[ember.tensor([2, 0]).to(device), 3] = ember.tensor(-1.0)   # advanced index, 0-dim
    tx[torch.tensor([2, 0]), 3] = torch.tensor(-1.0)
    x[:, 0] = ember.tensor([5.0, 6.0, 7.0], dtype=ember.float64)  # converted
    tx[:, 0] = torch.tensor([5.0, 6.0, 7.0], dtype=torch.float64)
    np.testing.assert_array_equal(x.cpu().numpy(), tx.numpy())


def test_other_ops_still_refuse_mixed_devices(device):  # noqa: F811
    with pytest.raises(ember.DeviceError, match=r"add_: .*cpu and cuda:0"):
        ember.zeros(3, device=device).add_(ember.ones(3))


def test_bool_mask_indexing_on_cuda(device):  # noqa: F811
    """`x[mask] = v` (one-element v) is a masked_fill_ on the device, the mask on the
    device or the CPU; `x[mask]` reads the mask's count back, as torch's nonzero does."""
    base = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 10
    x, tx = ember.tensor(base).to(device), torch.from_numpy(base.copy())
    x[x > 5] = 0
    tx[tx > 5] = 0
    cols = np.array([True, False, True, False])
    x[:, :, ember.tensor(cols)] = ember.tensor(-1.0)          # CPU mask after basic dims
    tx[:, :, torch.from_numpy(cols)] = torch.tensor(-1.0)
    x[ember.tensor(base[:, :, 0] < 0).to(device)] = 2.5       # a 2-d mask over dims 0-1
    tx[torch.from_numpy(base[:, :, 0] < 0)] = 2.5
    np.testing.assert_array_equal(x.cpu().numpy(), tx.numpy())
    np.testing.assert_array_equal(x[x < 1].cpu().numpy(), tx[tx < 1].numpy())
    with pytest.raises(IndexError):
        x[ember.tensor([True, False, True]).to(device)] = 1.0  # mask shape mismatch
