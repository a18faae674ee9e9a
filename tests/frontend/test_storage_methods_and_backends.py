"""Tensor.set_/is_set_to/as_strided_/resize/resize_as and the torch.backends flag modules
(mkldnn, opt_einsum, cpu, mkl, openmp), against torch."""
import numpy as np
import pytest
import torch

import ember


def _both(fn):
    return fn(ember), fn(torch)


def _same(ours, theirs):
    assert tuple(ours.shape) == tuple(theirs.shape)
    assert ours.stride() == theirs.stride()
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_set_to_a_tensor_shares_storage():
    for m in (ember, torch):
        a = m.arange(6.0)
        b = m.empty(0)
        assert b.set_(a) is b
        assert b.is_set_to(a) and a.is_set_to(b)
        b[0] = 10.0
        assert a[0].item() == 10.0
        assert not b.is_set_to(a[1:])
    with pytest.raises(ember.DTypeError):
        ember.empty(0).set_(ember.arange(3))


@pytest.mark.parametrize("args", [(2, (2, 2), (1, 2)), (0, (3,), None), (1, (2, 2), None)])
def test_set_to_a_storage_with_geometry(args):
    def run(m):
        a = m.arange(6.0)
        return m.empty(0).set_(a.untyped_storage(), *args)
    _same(*_both(run))


def test_set_whole_storage_and_empty():
    _same(*_both(lambda m: m.empty(0).set_(m.arange(6.0).untyped_storage())))
    _same(*_both(lambda m: m.ones(3).set_()))
    with pytest.raises(ember.ShapeError):
        ember.empty(0).set_(ember.arange(6.0).untyped_storage(), 4, (2, 2))


def test_as_strided_in_place():
    def run(m):
        x = m.arange(6.0)
        assert x.as_strided_((2, 2), (1, 2), 1) is x
        return x
    _same(*_both(run))


def test_deprecated_out_of_place_resize():
    for m in (ember, torch):
        z = m.arange(6.0)
        with pytest.warns(UserWarning, match="non-inplace resize is deprecated"):
            r = z.resize(2, 3)
        assert tuple(r.shape) == (2, 3) and tuple(z.shape) == (6,)
        assert r.data_ptr() == z.data_ptr()
        with pytest.warns(UserWarning, match="non-inplace resize_as is deprecated"):
            assert tuple(z.resize_as(m.ones(3, 2)).shape) == (3, 2)


def test_backend_flag_modules():
    import ember.backends.mkldnn as mkldnn
    import ember.backends.opt_einsum as opt_einsum
    assert mkldnn.enabled is torch.backends.mkldnn.enabled is True
    with mkldnn.flags(enabled=False):
        assert mkldnn.enabled is False
    assert mkldnn.enabled is True
    try:
        import opt_einsum as _  # noqa: F401
        installed = True
    except ImportError:
        installed = False
    assert opt_einsum.is_available() is torch.backends.opt_einsum.is_available() is installed
    assert ember.backends.cpu.get_cpu_capability() == torch.backends.cpu.get_cpu_capability()
    assert ember.backends.mkl.is_available() is False
    assert ember.backends.openmp.is_available() is False
