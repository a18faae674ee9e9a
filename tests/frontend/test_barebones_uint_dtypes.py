"""uint16/uint32/uint64: tensors from NumPy and by conversion, the ops torch supports on
them, and torch's refusal to promote them with other integer types."""
import numpy as np
import pytest
import torch

import ember


@pytest.mark.parametrize("name", ["uint16", "uint32", "uint64"])
def test_barebones_uints_match_torch(name):
    values = np.array([3, 1, 2], dtype=name)
    ours, theirs = ember.from_numpy(values), torch.from_numpy(values)
    assert str(ours.dtype).split(".")[1] == str(theirs.dtype).split(".")[1] == name
    assert ours.dtype.is_signed is theirs.dtype.is_signed is False
    assert ours.dtype.itemsize == theirs.dtype.itemsize
    for fn in (lambda t: t * 2, lambda t: t.sum(), lambda t: t.to(getattr(t, "dtype")),
               lambda t: t.float(), lambda t: t[0], lambda t: t == t,
               lambda t: t.sort().values, lambda t: t.long()):
        a, b = fn(ours), fn(theirs)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
        assert str(a.dtype).split(".")[1] == str(b.dtype).split(".")[1]
    for m, t in ((ember, ours), (torch, theirs)):
        with pytest.raises((ember.DTypeError, RuntimeError), match="Promotion for uint16"):
            t + m.ones(3, dtype=m.int32)
    assert ember.iinfo(getattr(ember, name)).max == torch.iinfo(getattr(torch, name)).max
    assert getattr(ember, name) is ember.tensor([1], dtype=getattr(ember, name)).dtype
