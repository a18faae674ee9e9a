"""Discrete Fourier transforms: torch.fft's functions as registry ops (namespace 'fft').

Every transform is one op named like ATen's (`fft_rfft2`, Python name `rfft2`) with
torch.fft's schema: `n`/`s` pad (with zeros) or trim the input along the transformed
dims before the transform, `dim` picks the dims, `norm` in {'backward', 'ortho',
'forward', None} picks where the 1/N goes. All transforms reduce to four n-d kinds:

- c2c: fft*/ifft* (complex in, complex out; real inputs are promoted);
- r2c: rfft*, and ihfft* = conj(rfft*(x, norm=swapped));
- c2r: irfft*, and hfft* = irfft*(conj(x), norm=swapped), whose last signal size
  defaults to 2 * (m - 1) for an input of m bins.

Dtypes follow PyTorch's CPU build: integers and bools are first promoted to the default
float dtype; float32 -> complex64, float64 -> complex128; half types are rejected.

Derivatives are the adjoint transforms, written with these same ops (conjugate Wirtinger
convention, as PyTorch): the VJP of a c2c transform is the opposite-direction c2c with
the swapped norm, then resized back to the input; r2c pads the gradient back to the full
spectrum before its inverse and keeps the real part; c2r's VJP is an r2c of the gradient
with the interior bins doubled (each stands for itself and its mirror image).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import dtypes
from ..errors import DTypeError, EmberError, EmberIndexError, ShapeError
from ..meta import TensorMeta
from ..registry import NOT_DIFFERENTIABLE, Tag, defop
from . import samples as S
from .rules import wrap_dim

NORMS = ("backward", "ortho", "forward")
FFT_TAGS = {Tag.FFT}


class FFTNormError(EmberError, ValueError):
    """A `norm` argument outside {'backward', 'ortho', 'forward', None}."""


# --- argument rules -----------------------------------------------------------------


def check_norm(norm) -> str:
    if norm is None:
        return "backward"
    if norm not in NORMS:
        raise FFTNormError(f'Invalid normalization mode: "{norm}"')
    return norm


def swap_norm(norm) -> str:
    """The norm of the adjoint: the scale 1/N moves to the other direction."""
    return {"backward": "forward", "forward": "backward", "ortho": "ortho"}[check_norm(norm)]


@dataclass(frozen=True)
class Plan:
    """Which dims a transform acts on and the signal length along each (for c2r the
    last one is the real output length)."""
    dims: tuple[int, ...]
    sizes: tuple[int, ...]


def _check_sizes(sizes) -> None:
    for n in sizes:
        if n < 1:
            raise ShapeError(f"Invalid number of data points ({n}) specified")


def plan_1d(x, n, dim: int, kind: str) -> Plan:
    if x.ndim == 0:
        raise EmberIndexError(f"Dimension specified as {dim} but tensor has no dimensions")
    d = wrap_dim(dim, x.ndim)
    if n is not None:
        _check_sizes((n,))      # -1 means "the input's size" only inside s, never as n
    return _finish_plan(x, (d,), (-1 if n is None else n,), kind)


def _as_tuple(v):
    return None if v is None else (tuple(v) if isinstance(v, (list, tuple)) else (v,))


def plan_nd(x, s, dim, kind: str, name: str) -> Plan:
    s, dim = _as_tuple(s), _as_tuple(dim)
    if dim is not None:
        dims = tuple(wrap_dim(d, x.ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise ShapeError("FFT dims must be unique")
        if s is not None and len(s) != len(dims):
            raise ShapeError("When given, dim and shape arguments must have the same length")
    elif s is not None:
        if len(s) > x.ndim:
            raise ShapeError(f"Got shape with {len(s)} values but input tensor only has "
                             f"{x.ndim} dimensions.")
        dims = tuple(range(x.ndim - len(s), x.ndim))
    else:
        dims = tuple(range(x.ndim))
    if kind != "c2c" and not dims:
        raise ShapeError(f"{name} must transform at least one axis")
    return _finish_plan(x, dims, s if s is not None else (-1,) * len(dims), kind)


def _finish_plan(x, dims, s, kind: str) -> Plan:
    """Fill -1 entries with the input's size (c2r's last: 2 * (m - 1))."""
    sizes = [x.shape[d] if n == -1 else n for d, n in zip(dims, s)]
    if kind == "c2r" and s[-1] == -1:
        sizes[-1] = 2 * (x.shape[dims[-1]] - 1)
    _check_sizes(sizes)
    return Plan(tuple(dims), tuple(sizes))


def input_sizes(plan: Plan, kind: str) -> tuple[int, ...]:
    """Sizes the input is padded/trimmed to: c2r reads only n // 2 + 1 bins of the last."""
    if kind == "c2r":
        return plan.sizes[:-1] + (plan.sizes[-1] // 2 + 1,)
    return plan.sizes


def output_shape(x, plan: Plan, kind: str) -> tuple[int, ...]:
    shape = list(x.shape)
    for d, n in zip(plan.dims, plan.sizes):
        shape[d] = n
    if kind == "r2c":
        shape[plan.dims[-1]] = plan.sizes[-1] // 2 + 1
    return tuple(shape)


def _float_dtype(dt, name: str):
    if dt in (dtypes.float16, dtypes.bfloat16):
        raise DTypeError(f"Unsupported dtype {dt.scalar_type_name}")
    if dt.category <= dtypes.Category.INT:
        return dtypes.get_default_dtype()
    return dt


def output_dtype(x, kind: str, name: str):
    dt = _float_dtype(x.dtype, name)
    if kind == "r2c" and dt.is_complex:
        real = "real" if name in ("rfft", "ihfft") else "real-valued"    # torch's wording
        raise DTypeError(f"{name} expects a {real} input tensor, but got {dt.scalar_type_name}")
    return dt.to_real() if kind == "c2r" else dt.to_complex()


# --- reference kernels (NumPy's pocketfft) -------------------------------------------


def _np_c2c(inverse: bool):
    fn = np.fft.ifftn if inverse else np.fft.fftn

    def run(x, plan, norm):
        if not plan.dims:   # fftn over no dims: the input, promoted (as torch)
            return x.astype(np.result_type(x.dtype, np.complex64))
        return fn(x, plan.sizes, plan.dims, norm)
    return run


def _np_rfft(x, plan, norm):
    return np.fft.rfftn(x, plan.sizes, plan.dims, norm)


def _np_irfft(x, plan, norm):
    return np.fft.irfftn(x, plan.sizes, plan.dims, norm)


def _np_hfft(x, plan, norm):
    return np.fft.irfftn(np.conj(x), plan.sizes, plan.dims, swap_norm(norm))


def _np_ihfft(x, plan, norm):
    return np.conj(np.fft.rfftn(x, plan.sizes, plan.dims, swap_norm(norm)))


# --- derivatives (ember ops only) -----------------------------------------------------


def resize(x, dims, sizes):
    """Zero-pad or trim `x` at the end of each of `dims` to `sizes` (one pad op)."""
    first = min(dims)
    pad = []
    for d in reversed(range(first, x.ndim)):
        extra = sizes[dims.index(d)] - x.shape[d] if d in dims else 0
        pad += [0, extra]
    if not any(pad):
        return x
    from .joining import pad_op
    return pad_op(x, pad)


def double_interior(x, dim: int, n: int):
    """Weights of a c2r transform's bins over its last dim: 1 for DC (and Nyquist for
    even n), 2 for the bins that stand for their mirror image too."""
    from .joining import cat
    from .shape import narrow
    m = x.shape[dim]
    twice = (n - 1) // 2
    parts = [narrow(x, dim, 0, 1), 2 * narrow(x, dim, 1, twice)]
    if m > 1 + twice:
        parts.append(narrow(x, dim, 1 + twice, m - 1 - twice))
    return cat(parts, dim)


def _c2c_vjp(inverse: bool):
    def vjp(g, x, plan, norm):
        adjoint = fftn if inverse else ifftn
        return resize(adjoint(g, dim=list(plan.dims), norm=swap_norm(norm)), plan.dims,
                      [x.shape[d] for d in plan.dims])
    return vjp


def _r2c_grad(g, x, plan, norm):
    """Gradient of rfftn(x, norm) for real x: pad to the full spectrum, adjoint c2c."""
    from .pointwise import real
    full = resize(g, plan.dims, plan.sizes)
    back = ifftn(full, dim=list(plan.dims), norm=swap_norm(norm))
    return real(resize(back, plan.dims, [x.shape[d] for d in plan.dims]))


def _c2r_grad(g, x, plan, norm):
    """Gradient of irfftn(x, norm): r2c of g with the interior bins counted twice."""
    spectrum = rfftn(g, dim=list(plan.dims), norm=swap_norm(norm))
    weighted = double_interior(spectrum, plan.dims[-1], plan.sizes[-1])
    return resize(weighted, plan.dims, [x.shape[d] for d in plan.dims])


def _hfft_vjp(g, x, plan, norm):
    from .pointwise import conj
    return conj(_c2r_grad(g, x, plan, swap_norm(norm)))


def _ihfft_vjp(g, x, plan, norm):
    from .pointwise import conj
    return _r2c_grad(conj(g), x, plan, swap_norm(norm))


# --- the transforms -------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    kind: str           # 'c2c', 'r2c', 'c2r'
    reference: object   # (array, Plan, norm) -> array
    vjp: object         # (g, x, Plan, norm) -> gradient of x


KINDS = {
    "fft": Kind("c2c", _np_c2c(False), _c2c_vjp(False)),
    "ifft": Kind("c2c", _np_c2c(True), _c2c_vjp(True)),
    "rfft": Kind("r2c", _np_rfft, _r2c_grad),
    "irfft": Kind("c2r", _np_irfft, _c2r_grad),
    "hfft": Kind("c2r", _np_hfft, _hfft_vjp),
    "ihfft": Kind("r2c", _np_ihfft, _ihfft_vjp),
}

SCHEMAS = {
    "1d": "(Tensor self, int? n=None, int dim=-1, str? norm=None) -> Tensor",
    "2d": "(Tensor self, int[]? s=None, int[] dim=[-2,-1], str? norm=None) -> Tensor",
    "nd": "(Tensor self, int[]? s=None, int[]? dim=None, str? norm=None) -> Tensor",
}
SUFFIX = {"1d": "", "2d": "2", "nd": "n"}


def transform(base: str, arity: str):
    """Declare torch.fft.<base><suffix>: one op per (transform kind, arity)."""
    name = base + SUFFIX[arity]
    spec = KINDS[base]

    def plan_of(x, size_arg, dim):
        if arity == "1d":
            return plan_1d(x, size_arg, dim, spec.kind)
        return plan_nd(x, size_arg, dim, spec.kind, name)

    def meta(x, size_arg, dim, norm):
        check_norm(norm)
        plan = plan_of(x, size_arg, dim)
        return TensorMeta(output_shape(x, plan, spec.kind), output_dtype(x, spec.kind, name),
                          str(x.device))

    def reference(x, size_arg, dim, norm):
        return spec.reference(x, plan_of(x, size_arg, dim), check_norm(norm))

    def derivative(g, self, dim, norm, n=None, s=None):
        return spec.vjp(g, self, plan_of(self, n if arity == "1d" else s, dim), norm)

    return defop(
        f"fft_{name}{SCHEMAS[arity]}", meta=meta, reference=reference, derivative=derivative,
        tags=FFT_TAGS, saves=(), namespace="fft", python_name=name,
        samples=_samples(spec.kind, arity), torch_ref=f"torch.fft.{name}",
        tol={"fwd": dict(rtol=1e-4, atol=1e-4), "grad": dict(rtol=1e-4, atol=1e-4)},
        doc=f"torch.fft.{name}",
    )


# --- samples for the op table ---------------------------------------------------------


def _complex(rng, *shape):
    return np.asarray(S.randn(rng, *shape) + 1j * S.randn(rng, *shape), np.complex64)


def _samples(kind: str, arity: str):
    """Real inputs (gradients checked by the table), complex inputs (values), odd and
    even lengths, padding and trimming, every norm, batched dims."""
    size_kw = "n" if arity == "1d" else "s"

    def gen(rng):
        real = [S.Sample((S.randn(rng, 6) if arity != "2d" else S.randn(rng, 1, 6),)),
                S.Sample((S.randn(rng, 3, 5),), {"norm": "ortho"}),
                S.Sample((S.randn(rng, 2, 4, 5),), {"norm": "forward", "dim": _dims(arity)}),
                S.Sample((S.randn(rng, 4, 6),), {size_kw: _sizes(arity, 5, 3)}),
                S.Sample((S.randn(rng, 3, 7).astype(np.float64),), {size_kw: _sizes(arity, 9, 4),
                                                                   "norm": "backward"})]
        cplx = [S.Sample((_complex(rng, 3, 5),)),
                S.Sample((_complex(rng, 4, 6),), {size_kw: _sizes(arity, 7, 2),
                                                  "norm": "ortho"})]
        return real + ([] if kind == "r2c" else cplx)
    return gen


def _dims(arity):
    return {"1d": 1, "2d": [0, 2], "nd": [2, 0]}[arity]


def _sizes(arity, a, b):
    return {"1d": a, "2d": [b, a], "nd": [b, a]}[arity]


fft, fft2, fftn = (transform("fft", a) for a in ("1d", "2d", "nd"))
ifft, ifft2, ifftn = (transform("ifft", a) for a in ("1d", "2d", "nd"))
rfft, rfft2, rfftn = (transform("rfft", a) for a in ("1d", "2d", "nd"))
irfft, irfft2, irfftn = (transform("irfft", a) for a in ("1d", "2d", "nd"))
hfft, hfft2, hfftn = (transform("hfft", a) for a in ("1d", "2d", "nd"))
ihfft, ihfft2, ihfftn = (transform("ihfft", a) for a in ("1d", "2d", "nd"))


# --- shifts -----------------------------------------------------------------------------


def _shift_dims(x, dim) -> list[int]:
    dims = _as_tuple(dim)
    return list(range(x.ndim)) if dims is None else [wrap_dim(d, x.ndim) for d in dims]


def shift_op(name: str, np_fn, adjoint_name: str):
    def derivative(g, self, dim):
        return FFT_OPS[adjoint_name](g, dim)

    return defop(
        f"fft_{name}(Tensor self, int[]? dim=None) -> Tensor",
        meta=lambda self, dim: (_shift_dims(self, dim), TensorMeta(
            tuple(self.shape), self.dtype, str(self.device)))[1],
        reference=lambda x, dim: np.ascontiguousarray(np_fn(x, _shift_dims(x, dim))),
        derivative=derivative, tags=FFT_TAGS | {Tag.SHAPE}, saves=(), namespace="fft",
        python_name=name, torch_ref=f"torch.fft.{name}",
        samples=lambda rng: [S.Sample((S.randn(rng, 5),)),
                             S.Sample((S.randn(rng, 4, 5),), {"dim": 1}),
                             S.Sample((S.randn(rng, 3, 4, 5),), {"dim": [0, -1]}),
                             S.Sample((_complex(rng, 3, 4),)),
                             S.Sample((S.int_array(rng, 7),))],
        doc=f"torch.fft.{name}",
    )


fftshift = shift_op("fftshift", np.fft.fftshift, "ifftshift")
ifftshift = shift_op("ifftshift", np.fft.ifftshift, "fftshift")


# --- sample frequencies (factories) -----------------------------------------------------


def _freq_dtype(name: str, dtype):
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    if not dt.is_floating_point:
        raise DTypeError(f"{name} requires a floating point dtype, got {dt}")
    return dt


def freq_op(name: str, np_fn, length):
    def meta(n, d, dtype, device):
        if n < 0:
            raise ShapeError(f"{name}: n must be non-negative, got {n}")
        return TensorMeta((length(n),), _freq_dtype(name, dtype), str(device or "cpu"))

    return defop(
        f"fft_{name}(int n, float d=1.0, *, ScalarType? dtype=None, Device? device=None)"
        " -> Tensor",
        meta=meta,
        reference=lambda n, d, dtype, device: np_fn(n, d).astype(
            _freq_dtype(name, dtype).np_dtype),
        derivative=NOT_DIFFERENTIABLE, tags=FFT_TAGS | {Tag.FACTORY}, namespace="fft",
        python_name=name, torch_ref=f"torch.fft.{name}",
        samples=lambda rng: [S.Sample((8,)), S.Sample((7, 0.5)), S.Sample((1,)),
                             S.Sample((5,), {"d": 0.1, "dtype": "float64"})],
        doc=f"torch.fft.{name}",
    )


fftfreq = freq_op("fftfreq", np.fft.fftfreq, lambda n: n)
rfftfreq = freq_op("rfftfreq", np.fft.rfftfreq, lambda n: n // 2 + 1)

FFT_OPS = {op.python_name: op for op in (
    fft, fft2, fftn, ifft, ifft2, ifftn, rfft, rfft2, rfftn, irfft, irfft2, irfftn,
    hfft, hfft2, hfftn, ihfft, ihfft2, ihfftn, fftshift, ifftshift, fftfreq, rfftfreq)}

__all__ = list(FFT_OPS) + ["FFT_OPS", "FFTNormError"]
