"""Complex construction and reinterpretation: complex, polar, view_as_real,
view_as_complex, conj_physical, resolve_conj, resolve_neg.

view_as_real / view_as_complex are views (Tag.VIEW): the result shares the input's
storage, reinterpreting each complex element as two reals (last dim of size 2) and back,
so writes through one show in the other, as in PyTorch. ember keeps no lazy conjugate
or negative bit (`conj` materializes), so resolve_conj / resolve_neg return a view of
their input unchanged.

PyTorch's half-precision complex dtype (complex32, `Tensor.chalf`) does not exist in
ember: complex/polar/view_as_complex of float16 inputs raise a DTypeError saying so.
"""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..errors import DTypeError
from ..meta import TensorMeta
from ..registry import Promotion, Tag, defop
from . import samples as S
from .pointwise import UNARY, conj, imag, real, sgn
from .pointwise_math import MathArgumentError, tensors_only
from .rules import aliasing_meta, pointwise_meta, same_meta

NO_COMPLEX32 = ("ember has no complex32 (torch.chalf): complex results of float16 inputs "
                "are not supported")


def _sample(*args, grad=True, **kwargs):
    return S.Sample(tuple(args), kwargs, grad=grad)


def _complex_of(name: str, allow_half: bool):
    """complex(real, imag) / polar(abs, angle): two float tensors of one dtype."""
    def rule(a, b):
        tensors_only(name)(a, b)
        kinds = "Half, Float or Double" if allow_half else "Float or Double"
        for t in (a, b):
            if not t.dtype.is_floating_point or t.dtype is dtypes.bfloat16:
                raise MathArgumentError(f"Expected both inputs to be {kinds} tensors but got "
                                        f"{a.dtype.scalar_type_name} and "
                                        f"{b.dtype.scalar_type_name}")
        if a.dtype is not b.dtype:
            raise MathArgumentError(f"Expected object of scalar type {a.dtype.scalar_type_name} "
                                    f"but got scalar type {b.dtype.scalar_type_name} for second "
                                    "argument")
        if a.dtype is dtypes.float16:
            raise DTypeError(NO_COMPLEX32)
        out = pointwise_meta(Promotion.DEFAULT)(a, b)
        return out.with_(dtype=a.dtype.to_complex())
    return rule


def _complex_reference(re, im):
    out = np.empty(np.broadcast_shapes(re.shape, im.shape),
                   np.result_type(re.dtype, np.complex64))
    out.real, out.imag = re, im
    return out


def _pair_samples(make_first):
    def gen(rng):
        return [_sample(make_first(rng, 3, 4), S.randn(rng, 4)),
                # 0-d complex results: the table's cotangents cannot be 0-d complex arrays
                _sample(make_first(rng), S.randn(rng), grad=False),
                _sample(make_first(rng, 2, 1, 3, dtype=np.float64),
                        S.randn(rng, 4, 1, dtype=np.float64)),
                _sample(make_first(rng, 0, 3), S.randn(rng, 3))]
    return gen


def _complex_derivative(g, **_):
    """(real(g), imag(g)); the schema's argument names (real, imag) would shadow the ops."""
    return real(g), imag(g)


complex = defop(  # noqa: A001 - PyTorch's name
    "complex(Tensor real, Tensor imag) -> Tensor",
    meta=_complex_of("complex", allow_half=True), reference=_complex_reference,
    derivative=_complex_derivative, tags={Tag.POINTWISE, Tag.BINARY},
    samples=_pair_samples(S.randn), torch_ref="torch.complex",
)


def _polar_reference(r, theta):
    return _complex_reference(r * np.cos(theta), r * np.sin(theta))


def _polar_derivative(g, abs, angle, out):  # noqa: A002 - torch's argument names
    """out = abs * e^{i angle}: d/dabs is Re(g conj(sgn(out))) (0 where abs = 0, as torch),
    d/dangle is Re(g conj(i out)) = Im(g conj(out))."""
    return real(g * conj(sgn(out))), imag(g * conj(out))


polar = defop(
    "polar(Tensor abs, Tensor angle) -> Tensor",
    meta=_complex_of("polar", allow_half=False), reference=_polar_reference,
    derivative=_polar_derivative, tags={Tag.POINTWISE, Tag.BINARY},
    samples=_pair_samples(S.positive), torch_ref="torch.polar",
)


# --- views: view_as_real, view_as_complex ------------------------------------------------------


def _view_as_real_meta(self):
    if not self.dtype.is_complex:
        raise MathArgumentError("view_as_real is only supported for complex tensors")
    # a view: each complex element becomes two reals, so every stride doubles (a transposed
    # or sliced input keeps its layout; contiguous strides here read the wrong elements)
    strides = tuple(2 * s for s in self.stride()) + (1,)
    return TensorMeta(tuple(self.shape) + (2,), self.dtype.to_real(), str(self.device),
                      strides=strides)


def _view_as_real_reference(z):
    parts = z.real        # a view: same strides (in bytes), real dtype
    return np.lib.stride_tricks.as_strided(parts, z.shape + (2,),
                                           parts.strides + (parts.itemsize,))


def _view_as_complex_meta(self):
    if self.dtype is dtypes.float16:
        raise DTypeError(NO_COMPLEX32)
    if self.dtype not in (dtypes.float32, dtypes.float64):
        raise MathArgumentError("view_as_complex is only supported for half, float and double "
                                f"tensors, but got a tensor of scalar type: "
                                f"{self.dtype.scalar_type_name}")
    if self.ndim == 0:
        raise MathArgumentError("Input tensor must have one or more dimensions")
    if self.shape[-1] != 2:
        raise MathArgumentError("Tensor must have a last dimension of size 2")
    strides = tuple(self.stride())
    if strides[-1] != 1:
        raise MathArgumentError("Tensor must have a last dimension with stride 1")
    if any(s % 2 for s in strides[:-1]):
        raise MathArgumentError("Tensor must have a stride divisible by 2 for all but last dimension")
    return TensorMeta(tuple(self.shape[:-1]), self.dtype.to_complex(), str(self.device),
                      strides=tuple(s // 2 for s in strides[:-1]))


def _view_as_complex_reference(x):
    """Each (re, im) pair of the contiguous last dim reread as one complex element."""
    cdt = np.complex64 if x.dtype == np.float32 else np.complex128
    return x.view(cdt)[..., 0]


def _view_samples(make, *, complex_input: bool):
    def gen(rng):
        def arr(*shape, dtype=np.float32):
            a = make(rng, *shape, dtype=dtype)
            if not complex_input:
                return a
            return np.asarray(a + 1j * make(rng, *shape, dtype=dtype),
                              np.complex64 if dtype == np.float32 else np.complex128)
        last = () if complex_input else (2,)
        # (no empty sample: torch.from_numpy gives empty arrays zero strides)
        return [_sample(arr(3, 4, *last)), _sample(arr(*last), grad=complex_input),
                _sample(arr(2, 3, *last, dtype=np.float64)),
                _sample(arr(4, 6, *last)[::2], grad=False)]
    return gen


view_as_real = defop(
    "view_as_real(Tensor self) -> Tensor",
    meta=_view_as_real_meta, reference=_view_as_real_reference,
    derivative=lambda g, self: view_as_complex(g.contiguous()), saves=(),
    tags={Tag.VIEW}, samples=_view_samples(S.randn, complex_input=True),
    torch_ref="torch.view_as_real",
)

view_as_complex = defop(
    "view_as_complex(Tensor self) -> Tensor",
    meta=_view_as_complex_meta, reference=_view_as_complex_reference,
    derivative=lambda g, self: view_as_real(g), saves=(),
    tags={Tag.VIEW}, samples=_view_samples(S.randn, complex_input=False),
    torch_ref="torch.view_as_complex",
)

# --- conj_physical, resolve_conj, resolve_neg ---------------------------------------------------


def _any_dtype_samples(rng):
    return [_sample(S.randn(rng, 3, 4)), _sample(S.randn(rng)),
            _sample((S.randn(rng, 2, 3) + 1j * S.randn(rng, 2, 3)).astype(np.complex64)),
            _sample(S.int_array(rng, 4)), _sample(S.bool_array(rng, 2, 2))]


conj_physical = defop(
    "conj_physical(Tensor self) -> Tensor",
    meta=same_meta, reference=lambda x: np.conj(x) if x.dtype.kind == "c" else x.copy(),
    derivative=lambda g, self: conj(g) if g.dtype.is_complex else g, saves=(),
    tags=UNARY, samples=_any_dtype_samples, torch_ref="torch.conj_physical", method=True,
    inplace_variant=True,
)


def _resolved(name: str):
    return defop(
        f"{name}(Tensor self) -> Tensor",
        meta=lambda self: aliasing_meta(self), reference=lambda x: x,
        derivative=lambda g, self: g, saves=(),
        tags={Tag.VIEW}, samples=_any_dtype_samples, torch_ref=f"torch.{name}", method=True,
        doc=f"See torch.{name}. ember keeps no lazy conjugate/negative bit, so this returns "
            "a view of the input unchanged.")


resolve_conj = _resolved("resolve_conj")
resolve_neg = _resolved("resolve_neg")
