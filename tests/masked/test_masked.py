"""ember.masked against torch.masked: values (fully masked-out rows included), dtypes,
float64 gradients (masked-out elements get none), and the mask broadcasting rule."""
import numpy as np
import pytest
import torch

import ember

RNG = np.random.default_rng(0)
X = RNG.standard_normal((3, 5))
MASK = RNG.random((3, 5)) > 0.4
MASK[1] = False                      # one fully masked-out row


def _pair(name, *args, **kwargs):
    """(ember result, torch result) for masked.<name> on X and MASK."""
    te = ember.tensor(X, requires_grad=True)
    tt = torch.tensor(X, requires_grad=True)
    got = getattr(ember.masked, name)(te, *args, mask=ember.tensor(MASK), **kwargs)
    want = getattr(torch.masked, name)(tt, *args, mask=torch.tensor(MASK), **kwargs)
    return te, got, tt, want


@pytest.mark.parametrize("name,args,kwargs", [
    ("sum", (1,), {}), ("prod", (1,), {"keepdim": True}), ("amax", ((0, 1),), {}),
    ("amin", (1,), {}), ("mean", (1,), {}), ("logsumexp", (1,), {}),
    ("norm", (2.0, 1), {}), ("var", (1,), {}), ("std", (1,), {"unbiased": False}),
    ("softmax", (1,), {}), ("log_softmax", (1,), {}), ("softmin", (0,), {}),
    ("cumsum", (1,), {}), ("cumprod", (1,), {}), ("median", (1,), {}),
    ("normalize", (2.0, 1), {}),
])
def test_values_and_grads_match_torch(name, args, kwargs):
    te, got, tt, want = _pair(name, *args, **kwargs)
    np.testing.assert_allclose(got.detach().numpy(), want.detach().numpy(), rtol=1e-10,
                               atol=1e-12, equal_nan=True)
    cot = np.nan_to_num(RNG.standard_normal(tuple(want.shape)))
    finite = np.isfinite(want.detach().numpy())
    cot = np.where(finite, cot, 0.0)       # no gradient through the nan/inf outputs
    (got * ember.tensor(cot)).sum().backward()
    (want * torch.tensor(cot)).nansum().backward()
    np.testing.assert_allclose(te.grad.numpy(), tt.grad.numpy(), rtol=1e-9, atol=1e-12,
                               equal_nan=True)


def test_argmax_keeps_input_dtype_as_torch():
    got = ember.masked.argmax(ember.tensor(X), 1, mask=ember.tensor(MASK))
    want = torch.masked.argmax(torch.tensor(X), 1, mask=torch.tensor(MASK))
    assert got.dtype == ember.float64 and want.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_integer_sum_accumulates_in_int64_and_mask_broadcasts():
    x = np.arange(12, dtype=np.int32).reshape(3, 4)
    row_mask = np.array([True, False, True, True])
    got = ember.masked.sum(ember.tensor(x), 0, mask=ember.tensor(row_mask))
    want = torch.masked.sum(torch.tensor(x), 0, mask=torch.tensor(row_mask))
    assert got.dtype == ember.int64
    np.testing.assert_array_equal(got.numpy(), want.numpy())


def test_logaddexp_masks_each_operand():
    a, b = RNG.standard_normal(4), RNG.standard_normal(4)
    ma, mb = np.array([1, 0, 1, 0], bool), np.array([1, 1, 0, 0], bool)
    got = ember.masked.logaddexp(ember.tensor(a), ember.tensor(b), input_mask=ember.tensor(ma),
                                 other_mask=ember.tensor(mb))
    want = torch.masked.logaddexp(torch.tensor(a), torch.tensor(b),
                                  input_mask=torch.tensor(ma), other_mask=torch.tensor(mb))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-12)


def test_bad_mask_and_dim_raise_like_torch():
    x = ember.tensor(X)
    with pytest.raises(IndexError):
        ember.masked.sum(x, 0, mask=ember.ones(2, 3, 5, dtype=ember.bool))
    with pytest.raises(IndexError):
        ember.masked.sum(x, 2)
    with pytest.raises(ValueError, match="Could not infer output dtype"):
        ember.masked.mean(ember.tensor([1, 2]))


def test_masked_out_elements_get_zero_gradient():
    x = ember.tensor(X, requires_grad=True)
    ember.masked.amax(x, 1, mask=ember.tensor(MASK)).sum().backward()
    assert not x.grad.numpy()[~MASK].any()
    assert x.grad.numpy()[MASK].sum() == 2.0      # one max per row that has valid elements


@pytest.mark.parametrize("name,args", [("sum", (1,)), ("softmax", (1,)), ("median", (1,)),
                                       ("var", (1,)), ("amax", ((0, 1),))])
def test_compiled_equals_eager(name, args):
    fn = getattr(ember.masked, name)
    x = ember.tensor(X.astype(np.float32))
    mask = ember.tensor(MASK)
    compiled = ember.compile(lambda t, m: fn(t, *args, mask=m))
    np.testing.assert_allclose(compiled(x, mask).numpy(), fn(x, *args, mask=mask).numpy(),
                               rtol=1e-5, atol=1e-6, equal_nan=True)
