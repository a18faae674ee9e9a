"""PyTorch's out= keyword and its public-signature checks, against torch's behaviour:
results written into out (resized, cast), the refusals torch makes (dtype, overlap,
autograd), and TypeError for numbers where torch's signature needs a Tensor."""
import numpy as np
import pytest
import torch

import ember


def test_out_receives_the_result_resized_and_cast():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    out, tout = ember.zeros(4, dtype=ember.float64), torch.zeros(4, dtype=torch.float64)
    with pytest.warns(UserWarning):
        assert ember.mul(ember.tensor(x), 2, out=out) is out
    torch.mul(torch.tensor(x), 2, out=tout)
    assert out.dtype == ember.float64 and out.tolist() == tout.tolist()


def test_out_for_multi_output_ops_and_composites():
    values, indices = ember.zeros(0), ember.zeros(0, dtype=ember.int64)
    ember.sort(ember.tensor([3.0, 1.0, 2.0]), out=(values, indices))
    assert values.tolist() == [1.0, 2.0, 3.0] and indices.tolist() == [1, 2, 0]
    taken = ember.zeros(2)
    ember.take(ember.tensor([5.0, 6.0, 7.0]), ember.tensor([2, 0]), out=taken)
    assert taken.tolist() == [7.0, 5.0]


@pytest.mark.parametrize("call", [
    lambda e, x: e.add(x, 1, out=e.zeros(3, dtype=e.int64)),          # can't cast back
    lambda e, x: e.mm(x.reshape(3, 1), x.reshape(1, 3), out=e.zeros(3, 3, dtype=e.float64)),
    lambda e, x: e.cat([x, x], out=x),                                  # overlaps an input
    lambda e, x: e.take(x, e.tensor([0, 1, 2]), out=e.zeros(1).expand(3)),  # self-overlap
], ids=["cast", "exact_dtype", "overlap", "internal_overlap"])
def test_out_refusals_match_torch(call):
    with pytest.raises(RuntimeError):
        call(torch, torch.ones(3))
    with pytest.raises(RuntimeError):
        call(ember, ember.ones(3))


def test_out_with_grad_is_refused_and_exact_alias_is_allowed():
    with pytest.raises(RuntimeError, match="automatic differentiation"):
        ember.add(ember.ones(3, requires_grad=True), 1, out=ember.zeros(3))
    y = ember.tensor([1.0, 2.0])
    ember.mul(y, 3, out=y)              # pointwise over itself: like mul_
    assert y.tolist() == [3.0, 6.0]


@pytest.mark.parametrize("name, args", [
    ("atan2", "t2"), ("atan2", "2t"), ("eq", "2t"), ("maximum", "t2"), ("pow", "22"),
    ("remainder", "22"), ("copysign", "2t"), ("eq", "t2"), ("pow", "2t"), ("remainder", "2t"),
    ("add", "2t"),
])
def test_numbers_where_torch_wants_tensors(name, args):
    def call(lib):
        t = lib.tensor([1.0, 2.0])
        values = [t if c == "t" else 2 for c in args]
        return getattr(lib, name)(*values)
    try:
        call(torch)
    except TypeError:
        with pytest.raises(TypeError):
            call(ember)
        return
    np.testing.assert_allclose(call(ember).numpy(), call(torch).numpy())


def test_internal_scalar_calls_still_work():
    x = ember.tensor([0.0, 2.0], requires_grad=True)
    (x.abs() ** 2).sum().backward()    # derivative rules pass scalars to ops freely
    assert x.grad.tolist() == [0.0, 4.0]
    assert (2 == ember.tensor([2])).tolist() == [True]   # reflected operators stay legal
