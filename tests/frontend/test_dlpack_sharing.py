"""DLPack: ember shares memory with torch and NumPy both ways (a write is seen)."""
import gc

import numpy as np
import pytest
import torch

import ember
from ember.utils import dlpack as ember_dlpack


def test_from_torch_tensor_and_capsule_share_memory():
    t = torch.arange(6.).reshape(2, 3)
    ember.from_dlpack(t)[0, 1] = 10.0
    ember_dlpack.from_dlpack(torch.utils.dlpack.to_dlpack(t))[1, 2] = 11.0
    assert t[0, 1].item() == 10.0 and t[1, 2].item() == 11.0


def test_to_torch_and_numpy_share_memory():
    e = ember.zeros(4)
    torch.from_dlpack(e)[0] = 1.0
    torch.utils.dlpack.from_dlpack(ember_dlpack.to_dlpack(e))[1] = 2.0
    array = np.from_dlpack(e)
    assert array.flags.writeable
    array[2] = 3.0
    ember.from_dlpack(ember.to_dlpack(e))[3] = 4.0
    assert e.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert e.__dlpack_device__() == torch.zeros(1).__dlpack_device__()
    assert ember_dlpack.DLDeviceType.kDLCPU.name == torch.utils.dlpack.DLDeviceType.kDLCPU.name


def test_from_numpy_shares_memory():
    a = np.arange(3.0)
    ember.from_dlpack(a)[0] = 5.0
    assert a[0] == 5.0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.bool, torch.int8,
                                   torch.int64, torch.complex64])
def test_capsule_dtypes_and_strides_match_torch(dtype):
    x = (torch.arange(6.).reshape(2, 3) % 3).to(dtype).t()
    e = ember.from_dlpack(torch.utils.dlpack.to_dlpack(x))
    assert e.dtype.name == str(dtype).split(".")[1] and tuple(e.stride()) == x.stride()
    back = torch.from_dlpack(e)
    assert back.dtype == dtype and torch.equal(back, x)
    back[0, 0] = 1                          # exported memory is shared too
    assert e[0, 0].item() == 1


def test_capsule_memory_outlives_the_producer():
    t = torch.arange(1000, dtype=torch.int64)
    e = ember.from_dlpack(torch.utils.dlpack.to_dlpack(t))
    del t
    gc.collect()
    assert e.sum().item() == sum(range(1000))


def test_export_of_a_tensor_needing_grad_is_refused_as_torch_does():
    with pytest.raises(BufferError, match="require gradient"):
        torch.ones(2, requires_grad=True).__dlpack__()
    with pytest.raises(BufferError, match="require gradient"):
        ember.ones(2, requires_grad=True).__dlpack__()
