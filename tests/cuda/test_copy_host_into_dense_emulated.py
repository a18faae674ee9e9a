"""Host values copied into a dense CUDA tensor go straight in, in the target's memory order
(eager_cuda._host_into_dense): no upload buffer and no copy kernel, which a cold process
had to compile first (BatchNorm's num_batches_tracked update during a training step's
trace). Checked on the emulated device against NumPy; other targets take the general copy."""
import numpy as np
import pytest

import ember
from ember.frontend import devices, eager_cuda

from emulation import emulated_cuda


@pytest.fixture
def launches(monkeypatch):
    with emulated_cuda():
        seen = []
        real = eager_cuda.launch
        monkeypatch.setattr(eager_cuda, "launch",
                            lambda generated, *a, **k: seen.append(generated.name) or
                            real(generated, *a, **k))
        yield seen


def _host(shape, dtype):
    rng = np.random.default_rng(0)
    return ember.tensor((rng.standard_normal(shape) * 100).astype(dtype))


@pytest.mark.parametrize("make", [
    lambda: ember.zeros(2, 3, 4, 5).cuda(),                                  # contiguous
    lambda: ember.zeros(2, 3, 4, 5).cuda().contiguous(memory_format=ember.channels_last),
    lambda: ember.zeros(4, 6).cuda().t(),                                    # transposed
], ids=["contiguous", "channels_last", "transposed"])
def test_dense_targets_take_one_copy_and_no_kernel(launches, make):
    target = make()
    launches.clear()                                 # making it may launch a layout copy
    source = _host(tuple(target.shape), np.float32)
    strides = target.stride()
    devices.copy_into(target, source)
    assert launches == [] and target.stride() == strides
    np.testing.assert_array_equal(target.cpu().numpy(), source.numpy())


def test_a_batchnorm_counter_update_compiles_nothing(launches):
    counter = ember.tensor(np.array(3, dtype=np.int64)).cuda()
    launches.clear()
    ember.nn.init._fill_(counter, counter.cpu().numpy() + 1)
    assert launches == [] and int(counter.cpu().item()) == 4


def test_other_targets_take_the_general_copy(launches):
    base = ember.zeros(4, 6).cuda()
    strided = base[:, ::2]                                    # gaps: not dense
    source = _host((4, 3), np.float32)
    cast = ember.zeros(2, 3, dtype=ember.float64).cuda()       # another dtype: cast on device
    launches.clear()
    devices.copy_into(strided, source)
    devices.copy_into(cast, _host((2, 3), np.float32))
    assert len(launches) == 2
    np.testing.assert_array_equal(base.cpu().numpy()[:, ::2], source.numpy())
    np.testing.assert_array_equal(base.cpu().numpy()[:, 1::2], 0)
