"""Random sampling ops: bernoulli, multinomial, normal, and the distributions behind
Tensor's in-place samplers (uniform_, normal_, cauchy_, exponential_, geometric_,
log_normal_, random_, bernoulli_).

Every kernel draws from a `Generator?` argument when one is given (an ember.Generator:
its `.numpy` is the numpy Generator) and otherwise from the frontend's default
generator (`ir.rng.generator()`), so `ember.manual_seed` makes them reproducible. The
streams differ from PyTorch's (another engine): tests check distributions, shapes and
dtypes, never values against torch.

The samplers are differentiable the way PyTorch's are: zero gradients. The in-place
samplers' output does not depend on `self`'s values, and PyTorch defines bernoulli's and
normal's gradients w.r.t. their parameters as zero too (no reparameterization).
"""
from __future__ import annotations

import numpy as np

from .. import dtypes, rng as ir_rng
from ..errors import DTypeError, ShapeError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .rules import broadcast_shapes, is_tensor_like, shape_of

RANDOM = {Tag.RANDOM}


def numpy_generator(generator) -> np.random.Generator:
    """The numpy Generator to draw from: the given ember.Generator's, else the default."""
    return generator.numpy if generator is not None else ir_rng.generator()


def _like(self) -> TensorMeta:
    return TensorMeta(tuple(self.shape), self.dtype, str(self.device))


def _zero_grad(g, self, **_params):
    """The sample does not depend on self's values: a zero gradient, as in PyTorch."""
    from .creation import zeros_like
    return zeros_like(g)


def _require_float(name, self, complex_ok=False):
    if not (self.dtype.is_floating_point or complex_ok and self.dtype.is_complex):
        raise DTypeError(f"{name}_ expects a floating point tensor, got "
                         f"{self.dtype.scalar_type_name}")


def _sampler(name, params: str, check, draw, doc, samples=None, torch_ref=None,
             floating=True, complex_ok=False):
    """A functional sampler `name(self, params, *, generator)`: self's shape and dtype,
    values from `draw(rng, shape, *params)`; Tensor.<name>_ fills self in place. With
    complex_ok, a complex self gets independent draws for its real and imaginary parts."""
    def meta(self, *args):
        if floating:
            _require_float(name, self, complex_ok)
        check(*args[:-1])
        return _like(self)

    def reference(x, *args):
        rng = numpy_generator(args[-1])
        out = draw(rng, x.shape, *args[:-1])
        if x.dtype.kind == "c":
            out = out + 1j * draw(rng, x.shape, *args[:-1])
        return np.asarray(out).astype(x.dtype)

    return defop(
        f"{name}(Tensor self{params}, *, Generator? generator=None) -> Tensor",
        meta=meta, reference=reference, derivative=_zero_grad,
        tags=RANDOM, inplace_variant=True, saves=(), samples=samples, torch_ref=torch_ref,
        doc=doc)


def _fail_unless(ok: bool, message: str) -> None:
    if not ok:
        raise ShapeError(message)


def _check_uniform(low, high):
    _fail_unless(low <= high, f"uniform_ expects to return a [from, to) range, but found "
                              f"from={low} > to={high}")


uniform = _sampler(
    "uniform", ", float from=0, float to=1", _check_uniform,
    lambda rng, shape, low, high: rng.uniform(low, high, shape),
    "Uniform samples in [from, to) (for complex: real and imaginary parts each).",
    complex_ok=True,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 2.0, 2.0), grad=False)],
    torch_ref=lambda torch: lambda x, a, b: x.clone().uniform_(a, b))


def _check_cauchy(median, sigma):
    _fail_unless(sigma > 0, f"cauchy_ expects sigma > 0.0, but found sigma={sigma}")


cauchy = _sampler(
    "cauchy", ", float median=0, float sigma=1", _check_cauchy,
    lambda rng, shape, median, sigma: median + sigma * rng.standard_cauchy(shape),
    "Cauchy(median, sigma) samples.")


def _check_exponential(lambd):
    _fail_unless(lambd > 0, f"exponential_ expects lambda > 0.0, but found lambda={lambd}")


exponential = _sampler(
    "exponential", ", float lambd=1", _check_exponential,
    lambda rng, shape, lambd: rng.exponential(1.0 / lambd, shape),
    "Exponential(rate lambd) samples.",
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), float("inf")), grad=False)],
    torch_ref=lambda torch: lambda x, lambd: x.clone().exponential_(lambd))


def _check_geometric(p):
    _fail_unless(0 < p < 1, f"geometric_ expects p to be in (0, 1), but got p={p}")


geometric = _sampler(
    "geometric", ", float p", _check_geometric,
    lambda rng, shape, p: rng.geometric(p, shape),
    "Geometric(p) samples: the number of Bernoulli(p) trials up to the first success.",
    floating=False)


def _check_log_normal(mean, std):
    _fail_unless(std > 0, f"log_normal_ expects std > 0.0, but found std={std}")


log_normal = _sampler(
    "log_normal", ", float mean=1, float std=2", _check_log_normal,
    lambda rng, shape, mean, std: rng.lognormal(mean, std, shape),
    "exp(Normal(mean, std)) samples.")


def _check_std(std):
    _fail_unless(std >= 0, f"normal expects std >= 0.0, but found std {std}")


def _normal_noise(rng, shape, dtype) -> np.ndarray:
    """Standard normal noise; complex noise has variance 1 split evenly between the real
    and imaginary parts (PyTorch's complex normal)."""
    if np.dtype(dtype).kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) / np.sqrt(2)
    return rng.standard_normal(shape)


def _normal_functional_ref(x, mean, std, generator):
    noise = _normal_noise(numpy_generator(generator), x.shape, x.dtype)
    if x.dtype.kind == "c":          # the mean goes to both parts, as in PyTorch
        return (mean * (1 + 1j) + std * noise).astype(x.dtype)
    return (mean + std * noise).astype(x.dtype)


normal_functional = defop(
    "normal_functional(Tensor self, float mean=0, float std=1, *, Generator? generator=None)"
    " -> Tensor",
    meta=lambda self, mean, std, generator: (_require_float("normal", self, True),
                                             _check_std(std), _like(self))[2],
    reference=_normal_functional_ref,
    derivative=_zero_grad, tags=RANDOM, saves=(),
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 1.5, 0.0), grad=False)],
    torch_ref=lambda torch: lambda x, m, s: x.clone().normal_(m, s),
    doc="Normal(mean, std) samples shaped like self (Tensor.normal_ fills self with them).",
)


# --- random_: integers -----------------------------------------------------------------

def _random_bounds(dtype, low, high):
    """[low, high) for random_: the default top is 2**mantissa bits + 1 for floats (every
    integer there is exact), the largest value for integers."""
    if high is not None:
        return low, high
    if dtype.is_floating_point:
        digits = {dtypes.float16: 11, dtypes.bfloat16: 8, dtypes.float32: 24,
                  dtypes.float64: 53}[dtype]
        return low, 2 ** digits + 1
    if dtype is dtypes.bool_:
        return low, 2
    return low, int(np.iinfo(dtype.np_dtype).max) + 1


def _random_meta(self, low, high, generator):
    if self.dtype.is_complex:
        raise DTypeError("random_ is not implemented for complex tensors")
    lo, hi = _random_bounds(self.dtype, low, high)
    _fail_unless(lo < hi, f"random_ expects 'from' to be less than 'to', but got from={lo} "
                          f">= to={hi}")
    return _like(self)


def _random_ref(x, low, high, generator):
    lo, hi = _random_bounds(dtypes.from_numpy_dtype(x.dtype), low, high)
    draws = numpy_generator(generator).integers(lo, hi, x.shape, dtype=np.int64
                                                if hi <= 2 ** 63 else np.uint64)
    return draws.astype(x.dtype)


random = defop(
    "random(Tensor self, int from=0, int? to=None, *, Generator? generator=None) -> Tensor",
    meta=_random_meta, reference=_random_ref, derivative=_zero_grad,
    tags=RANDOM, saves=(), python_name="random_functional",
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 3, 4), grad=False)],
    torch_ref=lambda torch: lambda x, a, b: x.clone().random_(a, b),
    doc="Integers uniform in [from, to) (default: every integer the dtype holds exactly) "
        "shaped like self; Tensor.random_ fills self with them.",
)


# --- bernoulli -------------------------------------------------------------------------

def _bernoulli_meta(self, p, generator):
    if not (self.dtype.is_floating_point or self.dtype.category <= dtypes.Category.INT):
        raise DTypeError(f"bernoulli is not implemented for {self.dtype.name}")
    if p is not None and not is_tensor_like(p):
        _fail_unless(0 <= p <= 1, f"bernoulli_ expects p to be in [0, 1], but got p={p}")
    if is_tensor_like(p):
        broadcast_shapes(tuple(p.shape), tuple(self.shape))
    return _like(self)


def _bernoulli_ref(x, p, generator):
    probs = x if p is None else p
    probs = np.broadcast_to(np.asarray(probs, np.float64), x.shape)
    if probs.size and (np.isnan(probs).any() or probs.min() < 0 or probs.max() > 1):
        raise ShapeError("bernoulli: all elements of the probabilities must be in [0, 1]")
    return (numpy_generator(generator).random(x.shape) < probs).astype(x.dtype)


bernoulli = defop(
    "bernoulli(Tensor self, Tensor? p=None, *, Generator? generator=None) -> Tensor",
    meta=_bernoulli_meta, reference=_bernoulli_ref,
    derivative=lambda g, self, p, generator: (_zero_grad(g, self), None),
    tags=RANDOM, method=True, inplace_variant=True, saves=(),
    samples=lambda rng: [S.Sample(((S.randn(rng, 3, 4) > 0).astype(np.float32),), grad=False,
                                  note="zero gradient by definition: tests/ops/test_sampling"),
                         S.Sample((S.randn(rng, 2, 3), 1.0), grad=False,
                                  note="torch has no derivative for bernoulli(self, p)"),
                         S.Sample((S.randn(rng), 0.0), grad=False)],
    torch_ref="torch.bernoulli",
    doc="1 with probability self (or p), else 0, in self's dtype.",
)


# --- multinomial -----------------------------------------------------------------------

def _multinomial_meta(self, num_samples, replacement, generator):
    if self.ndim not in (1, 2):
        raise ShapeError(f"prob_dist must be 1 or 2 dim, got {self.ndim}")
    if not self.dtype.is_floating_point:
        raise DTypeError(f"multinomial only supports floating-point dtypes for input, got: "
                         f"{self.dtype.scalar_type_name}")
    _fail_unless(num_samples > 0, "cannot sample n_sample <= 0 samples")
    n = self.shape[-1]
    _fail_unless(replacement or num_samples <= n,
                 "cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    shape = (num_samples,) if self.ndim == 1 else (self.shape[0], num_samples)
    return TensorMeta(shape, dtypes.int64, str(self.device))


def _multinomial_row(rng, probs, k, replacement):
    if not np.all(np.isfinite(probs)) or probs.min() < 0:
        raise ShapeError("probability tensor contains either `inf`, `nan` or element < 0")
    total = probs.sum()
    _fail_unless(total > 0, "invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and np.count_nonzero(probs) < k:
        raise ShapeError("invalid multinomial distribution (with replacement=False, not "
                         "enough non-negative category to sample)")
    return rng.choice(probs.size, size=k, replace=replacement, p=probs / total)


def _multinomial_ref(x, num_samples, replacement, generator):
    rng = numpy_generator(generator)
    rows = np.atleast_2d(x).astype(np.float64)
    out = np.stack([_multinomial_row(rng, r, num_samples, replacement) for r in rows]) \
        if rows.shape[0] else np.zeros((0, num_samples), np.int64)
    return out.reshape(num_samples) if x.ndim == 1 else out


multinomial = defop(
    "multinomial(Tensor self, int num_samples, bool replacement=False, *, "
    "Generator? generator=None) -> Tensor",
    meta=_multinomial_meta, reference=_multinomial_ref, derivative=NOT_DIFFERENTIABLE,
    tags=RANDOM, method=True,
    samples=lambda rng: [S.Sample((np.array([0, 0, 3, 0], np.float32), 5, True)),
                         S.Sample((np.eye(3, dtype=np.float32)[[2, 0]], 2, True))],
    torch_ref="torch.multinomial",
    doc="Category indices drawn with the (unnormalized) probabilities in each row.",
)


# --- normal(mean, std) -----------------------------------------------------------------

def _normal_meta(mean, std, generator):
    tensors = [t for t in (mean, std) if is_tensor_like(t)]
    if not tensors:
        raise ShapeError("normal(mean, std) needs a tensor mean or std (or a size)")
    for t in tensors:
        if not (t.dtype.is_floating_point or t.dtype.is_complex):
            raise DTypeError(f"normal expects floating point mean and std, got "
                             f"{t.dtype.scalar_type_name}")
    if not is_tensor_like(std):
        _check_std(std)
    dtype = dtypes.promote_types(*[t.dtype for t in tensors]) if len(tensors) == 2 else \
        tensors[0].dtype
    shape = broadcast_shapes(shape_of(mean), shape_of(std))
    return TensorMeta(shape, dtype, str(tensors[0].device))


def _normal_ref(mean, std, generator):
    std = np.asarray(std)
    if std.size and std.min() < 0:
        raise ShapeError("normal expects all elements of std >= 0.0")
    shape = np.broadcast_shapes(np.shape(mean), std.shape)
    kind = np.result_type(np.asarray(mean), std)
    return np.asarray(mean) + std * _normal_noise(numpy_generator(generator), shape, kind)


def _normal_grad(g, mean, std, generator):
    """Zero for both, as PyTorch defines it (normal is not reparameterized there; write
    mean + std * randn_like(...) for a pathwise gradient)."""
    from .creation import zeros_like
    return (zeros_like(g) if is_tensor_like(mean) else None,
            zeros_like(g) if is_tensor_like(std) else None)


normal = defop(
    "normal(Tensor mean, Tensor std, *, Generator? generator=None) -> Tensor",
    meta=_normal_meta, reference=_normal_ref, derivative=_normal_grad,
    tags=RANDOM,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), 0.0), grad=False,
                                  note="zero gradient by definition: tests/ops/test_sampling"),
                         S.Sample((S.randn(rng, 2, 3), np.zeros((2, 3), np.float32)),
                                  grad=False, note="std 0: deterministic, d/dstd is 0/0")],
    torch_ref="torch.normal",
    doc="Normal(mean, std) samples, mean and std broadcast (either may be a number).",
)
