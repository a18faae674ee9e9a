"""Random sampling (ir/ops/sampling.py): ember's streams differ from torch's, so these
tests check what must hold for any correct sampler — shapes and dtypes like torch's,
reproducibility under manual_seed and an explicit Generator, and sample moments
within a few standard errors of the distribution's (n = 20000: fast, and a wrong
distribution misses by far more than the tolerance)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import ember

N = 20000


def _draw(fill, dtype=ember.float64, n=N):
    return fill(ember.empty(n, dtype=dtype)).numpy()


def _within(value, expected, stderr, what):
    assert abs(value - expected) < 6 * stderr, f"{what}: {value} vs {expected} (+-{stderr})"


@pytest.mark.parametrize("name, args", [
    ("uniform_", (-2, 3)), ("normal_", (1.5, 2.0)), ("cauchy_", (0.5, 2.0)),
    ("exponential_", (4.0,)), ("geometric_", (0.3,)), ("log_normal_", (0.2, 0.5)),
    ("random_", (-3, 7)), ("bernoulli_", (0.3,))])
def test_in_place_samplers_are_reproducible_and_return_self(name, args):
    ember.manual_seed(7)
    t = ember.empty(50)
    out = getattr(t, name)(*args)
    assert out is t and t.shape == (50,) and t.dtype is ember.float32
    ember.manual_seed(7)
    again = getattr(ember.empty(50), name)(*args)
    np.testing.assert_array_equal(t.numpy(), again.numpy())
    first, second = (getattr(ember.empty(50), name)(*args, generator=ember.Generator()
                                                     .manual_seed(3)) for _ in range(2))
    np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert not np.array_equal(first.numpy(), t.numpy())      # another stream than seed 7


def test_moments_of_each_distribution():
    u = _draw(lambda t: t.uniform_(-2, 3))
    assert u.min() >= -2 and u.max() < 3
    _within(u.mean(), 0.5, 5 / math.sqrt(12 * N), "uniform mean")
    z = _draw(lambda t: t.normal_(1.5, 2.0))
    _within(z.mean(), 1.5, 2 / math.sqrt(N), "normal mean")
    _within(z.std(), 2.0, 2 / math.sqrt(2 * N), "normal std")
    e = _draw(lambda t: t.exponential_(4.0))
    assert e.min() >= 0
    _within(e.mean(), 0.25, 0.25 / math.sqrt(N), "exponential mean")
    g = _draw(lambda t: t.geometric_(0.3))
    assert g.min() >= 1 and np.all(g == np.round(g))
    _within(g.mean(), 1 / 0.3, math.sqrt(0.7) / 0.3 / math.sqrt(N), "geometric mean")
    ln = _draw(lambda t: t.log_normal_(0.2, 0.5))
    _within(np.log(ln).mean(), 0.2, 0.5 / math.sqrt(N), "log-normal log-mean")
    c = _draw(lambda t: t.cauchy_(0.5, 2.0))
    _within(np.median(c), 0.5, 2 * math.pi / 2 / math.sqrt(N), "cauchy median")
    b = _draw(lambda t: t.bernoulli_(0.3))
    assert set(np.unique(b)) <= {0.0, 1.0}
    _within(b.mean(), 0.3, math.sqrt(0.21 / N), "bernoulli frequency")


def test_random_ranges_per_dtype():
    r = _draw(lambda t: t.random_(-3, 7), ember.int64)
    assert r.min() == -3 and r.max() == 6
    assert _draw(lambda t: t.random_(5), ember.int32).max() == 4
    full = _draw(lambda t: t.random_(), ember.float32)
    assert full.min() >= 0 and full.max() <= 2 ** 24 and np.all(full == np.round(full))
    assert set(np.unique(_draw(lambda t: t.random_(), ember.bool))) == {False, True}


def test_complex_samplers_split_the_variance():
    z = ember.empty(N, dtype=ember.complex128).normal_(2.0, 1.0).numpy()
    _within(z.real.mean(), 2.0, 1 / math.sqrt(N), "complex normal real mean")
    _within(z.imag.std(), math.sqrt(0.5), 1 / math.sqrt(N), "complex normal imag std")
    u = ember.empty(N, dtype=ember.complex64).uniform_(2, 3).numpy()
    assert u.real.min() >= 2 and u.imag.max() < 3


def test_bernoulli_and_normal_functions():
    p = ember.tensor(np.linspace(0, 1, 5)).expand(N, 5)
    freq = ember.bernoulli(p).numpy().mean(0)
    np.testing.assert_allclose(freq, np.linspace(0, 1, 5), atol=6 * 0.5 / math.sqrt(N))
    assert ember.bernoulli(ember.zeros(3, 2), p=1.0).tolist() == [[1.0, 1.0]] * 3
    n = ember.normal(ember.tensor([0.0, 10.0]).expand(N, 2), ember.tensor([1.0, 0.1]))
    np.testing.assert_allclose(n.numpy().mean(0), [0, 10], atol=6 / math.sqrt(N))
    np.testing.assert_allclose(n.numpy().std(0), [1, 0.1], rtol=0.05)
    assert ember.normal(2.0, 3.0, (4, 5)).shape == (4, 5)
    assert ember.normal(ember.zeros(2, 1, dtype=ember.float64), 1.0).dtype is ember.float64
    assert ember.normal(0.5, ember.ones(3)).shape == (3,)


def test_multinomial_frequencies_and_no_replacement():
    probs = ember.tensor([1.0, 2.0, 0.0, 5.0])
    draws = ember.multinomial(probs, N, replacement=True).numpy()
    assert draws.dtype == np.int64 and 2 not in draws
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / N, [1 / 8, 2 / 8, 0, 5 / 8],
                               atol=6 * 0.5 / math.sqrt(N))
    rows = ember.multinomial(ember.ones(50, 6), 6).numpy()
    assert rows.shape == (50, 6) and all(sorted(r) == list(range(6)) for r in rows)
    with pytest.raises(ValueError, match="without replacement"):
        ember.multinomial(ember.ones(3), 4)


def test_gradients_are_zero_like_torch():
    for make in (lambda L, m, s: L.normal(m, s), lambda L, m, s: L.bernoulli(m.sigmoid()),
                 lambda L, m, s: L.normal(m, 2.0)):
        te, tt = (ember.zeros(3, requires_grad=True), ember.ones(3, requires_grad=True)), \
            (torch.zeros(3, requires_grad=True), torch.ones(3, requires_grad=True))
        out_e, out_t = make(ember, *te), make(torch, *tt)
        ge = ember.autograd.grad(out_e.sum(), list(te), allow_unused=True)
        gt = torch.autograd.grad(out_t.sum(), list(tt), allow_unused=True)
        for a, b in zip(ge, gt):
            assert (a is None or not a.numpy().any()) and (b is None or not b.any())


def test_sampling_inside_compile_draws_fresh_values_and_follows_the_seed():
    f = ember.compile(lambda x: x + ember.bernoulli(ember.full_like(x, 0.5)))
    x = ember.zeros(64)
    ember.manual_seed(1)
    first, second = f(x).numpy(), f(x).numpy()
    assert not np.array_equal(first, second)
    ember.manual_seed(1)
    np.testing.assert_array_equal(f(x).numpy(), first)


def test_bad_parameters_raise():
    with pytest.raises(ValueError, match="sigma"):
        ember.empty(2).cauchy_(0, 0)
    with pytest.raises(ValueError, match="lambda"):
        ember.empty(2).exponential_(-1)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        ember.empty(2).geometric_(1.0)
    with pytest.raises(ValueError, match="std"):
        ember.normal(ember.zeros(2), -1.0)
    with pytest.raises(TypeError, match="floating point"):
        ember.empty(2, dtype=ember.int64).uniform_()
