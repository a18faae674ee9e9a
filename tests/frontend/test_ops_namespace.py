"""ember.ops.aten: torch.ops.aten's names reach ember's registry ops."""
import numpy as np
import pytest
import torch

import ember


@pytest.mark.parametrize("name,overload,args", [
    ("relu", "default", [np.array([-1.0, 2.0], np.float32)]),
    ("add", "Tensor", [np.ones(3, np.float32), np.arange(3, dtype=np.float32)]),
    ("mul", "Tensor", [np.ones(3, np.float32), np.arange(3, dtype=np.float32)]),
])
def test_aten_overloads_match_torch(name, overload, args):
    want = getattr(getattr(torch.ops.aten, name), overload)(*map(torch.from_numpy, args))
    got = getattr(getattr(ember.ops.aten, name), overload)(*map(ember.tensor, args))
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_unknown_aten_op_is_named():
    with pytest.raises(AttributeError, match="ember.ops.aten has no op named 'no_such_op'"):
        ember.ops.aten.no_such_op
