"""ember._foreach_* (the list-of-tensors ops EMA and optimizer code calls) against torch's:
every function torch has, with each operand form (one scalar, one tensor, a list of
tensors, a list of scalars), in-place forms mutating the list's tensors, autograd through
the out-of-place forms, and the length-mismatch error."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402

TORCH_NAMES = sorted(n for n in dir(torch) if n.startswith("_foreach_"))
UNARY = ["abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "erf", "erfc", "exp", "expm1",
         "floor", "frac", "lgamma", "log", "log10", "log1p", "log2", "neg", "reciprocal",
         "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "sqrt", "tan", "tanh", "trunc"]
BINARY = ["add", "sub", "mul", "div", "maximum", "minimum", "clamp_min", "clamp_max", "pow"]


def _arrays(seed, positive=False):
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.1, 0.9, shape) if positive else rng.standard_normal(shape)
              for shape in ((3,), (2, 2), ())]
    return [a.astype(np.float32) for a in arrays]


def _lists(seed, positive=False):
    arrays = _arrays(seed, positive)
    return [torch.tensor(a) for a in arrays], [ember.tensor(a) for a in arrays]


def _check(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.detach().numpy(), w.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_every_torch_foreach_function_exists():
    missing = [n for n in TORCH_NAMES if not hasattr(ember, n)]
    assert not missing, missing


@pytest.mark.parametrize("op", UNARY)
def test_unary(op):
    t, e = _lists(0, positive=op in ("acos", "asin", "log", "log10", "log2", "rsqrt", "sqrt"))
    _check(getattr(ember, f"_foreach_{op}")(e), getattr(torch, f"_foreach_{op}")(t))
    returned = getattr(ember, f"_foreach_{op}_")(e)
    getattr(torch, f"_foreach_{op}_")(t)
    assert returned is e
    _check(e, t)


#: torch's overloads: a Tensor operand for add/sub/mul/div only; pow names its scalar
#: operand `exponent`, not `scalar`
BINARY_FORMS = [(op, form) for op in BINARY
                for form in ("scalar", "list", "scalars", "tensor", "keyword")
                if (form != "tensor" or op in ("add", "sub", "mul", "div"))
                and (form != "keyword" or op != "pow")]


@pytest.mark.parametrize("op,form", BINARY_FORMS)
def test_binary(op, form):
    t, e = _lists(1, positive=op == "pow")
    t2, e2 = _lists(2, positive=True)
    operands = {"scalar": ((0.5,), (0.5,), {}), "list": ((t2,), (e2,), {}),
                "scalars": (([0.5, 2.0, -1.0],), ([0.5, 2.0, -1.0],), {}),
                "tensor": ((torch.tensor(1.5),), (ember.tensor(1.5),), {}),
                "keyword": ((), (), {"scalar": 0.25})}
    targs, eargs, kwargs = operands[form]
    _check(getattr(ember, f"_foreach_{op}")(e, *eargs, **kwargs),
           getattr(torch, f"_foreach_{op}")(t, *targs, **kwargs))
    getattr(ember, f"_foreach_{op}_")(e, *eargs, **kwargs)
    getattr(torch, f"_foreach_{op}_")(t, *targs, **kwargs)
    _check(e, t)


def test_add_sub_alpha_and_scalar_pow_base():
    t, e = _lists(3)
    t2, e2 = _lists(4)
    _check(ember._foreach_add(e, e2, alpha=-0.5), torch._foreach_add(t, t2, alpha=-0.5))
    ember._foreach_sub_(e, e2, alpha=2)
    torch._foreach_sub_(t, t2, alpha=2)
    _check(e, t)
    _check(ember._foreach_pow(2.0, e), torch._foreach_pow(2.0, t))


@pytest.mark.parametrize("op", ["addcmul", "addcdiv"])
def test_addcmul_addcdiv(op):
    t, e = _lists(5)
    t1, e1 = _lists(6)
    t2, e2 = _lists(7, positive=True)
    _check(getattr(ember, f"_foreach_{op}")(e, e1, e2, 0.3),
           getattr(torch, f"_foreach_{op}")(t, t1, t2, 0.3))
    _check(getattr(ember, f"_foreach_{op}")(e, e1, e2, [1.0, 2.0, 3.0]),
           getattr(torch, f"_foreach_{op}")(t, t1, t2, [1.0, 2.0, 3.0]))
    _check(getattr(ember, f"_foreach_{op}")(e, e1, e2, ember.tensor([1.0, -2.0, 0.5])),
           getattr(torch, f"_foreach_{op}")(t, t1, t2, torch.tensor([1.0, -2.0, 0.5])))
    getattr(ember, f"_foreach_{op}_")(e, e1, e2, value=-0.7)
    getattr(torch, f"_foreach_{op}_")(t, t1, t2, value=-0.7)
    _check(e, t)


def test_lerp_norm_max_powsum_copy_zero_clone_mm():
    t, e = _lists(8)
    t1, e1 = _lists(9)
    _check(ember._foreach_lerp(e, e1, 0.3), torch._foreach_lerp(t, t1, 0.3))
    _check(ember._foreach_lerp(e, e1, e1), torch._foreach_lerp(t, t1, t1))
    ember._foreach_lerp_(e, e1, weight=0.9)
    torch._foreach_lerp_(t, t1, weight=0.9)
    _check(e, t)
    for ord_ in (1, 2, float("inf")):
        _check(ember._foreach_norm(e, ord_), torch._foreach_norm(t, ord_))
    norms = ember._foreach_norm(e, dtype=ember.float64)
    assert all(n.dtype == ember.float64 for n in norms)
    _check(ember._foreach_max(e), torch._foreach_max(t))
    _check(ember._foreach_powsum(e, 3), torch._foreach_powsum(t, 3))
    clones = ember._foreach_clone(e)
    ember._foreach_zero_(e)
    torch._foreach_zero_(t)
    _check(e, t)
    assert float(clones[0].abs().sum()) > 0
    ember._foreach_copy_(e, clones)
    _check(e, clones)
    m = [np.random.default_rng(i).standard_normal((2, 2)).astype(np.float32) for i in range(2)]
    _check(ember._foreach_mm([ember.tensor(a) for a in m], [ember.tensor(a) for a in m]),
           torch._foreach_mm([torch.tensor(a) for a in m], [torch.tensor(a) for a in m]))


def test_out_of_place_forms_are_differentiable():
    arrays = _arrays(10)
    t = [torch.tensor(a, requires_grad=True) for a in arrays]
    e = [ember.tensor(a, requires_grad=True) for a in arrays]
    for lib, xs in ((torch, t), (ember, e)):
        ys = lib._foreach_mul(lib._foreach_exp(xs), 3.0)
        sum(y.sum() for y in ys).backward()
    _check([x.grad for x in e], [x.grad for x in t])


def test_list_length_mismatch_is_an_error():
    _, e = _lists(11)
    with pytest.raises(RuntimeError, match="same number of tensors"):
        ember._foreach_add(e, e[:2])
    with pytest.raises(TypeError, match="list or tuple of Tensors"):
        ember._foreach_add(e[0], 1.0)
