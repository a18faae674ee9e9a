"""Linear algebra products: matmul, mm, bmm, addmm, baddbmm, dot, mv, outer, linear,
einsum, tensordot.

PyTorch's rules: operands of a product must share one dtype (no promotion, except
`outer`, which is pointwise); float16/bfloat16 are computed in float32. Shape errors
name both operands (`mat1 and mat2 shapes cannot be multiplied (2x3 and 4x5)`).
Derivatives are products again (einsum's are einsums), so they differentiate twice.
"""
from __future__ import annotations

import math
import string

import numpy as np

from .. import dtypes
from ..autodiff import take_input_mask
from ..errors import DTypeError, DTypeNotImplementedError, EmberError, ShapeError
from ..meta import TensorMeta
from ..registry import Promotion, Tag, defop
from . import samples as S
from .rules import broadcast_shapes, device_of, opmath_arrays, pointwise_meta, promote_dtypes

LIN = {Tag.LINALG}


def _c(x):
    return conj(x) if getattr(x, "dtype", None) is not None and x.dtype.is_complex else x


def _dims(shape) -> str:
    return "x".join(str(s) for s in shape)


def _same_dtype(*named) -> dtypes.DType:
    """All tensor operands share a dtype; returns it."""
    first_name, first = named[0]
    for name, t in named[1:]:
        if t is not None and t.dtype != first.dtype:
            raise DTypeError(f"expected {first_name} and {name} to have the same dtype, but got: "
                             f"{first.dtype.name} != {t.dtype.name}")
    return first.dtype


def _no_bool(dt, kernel: str) -> None:
    """torch's CPU products have no bool kernel (outer, kron and addr do: they multiply
    elementwise); the error names the kernel, as torch's does."""
    if dt == dtypes.bool_:
        raise DTypeNotImplementedError(f'"{kernel}" not implemented for \'Bool\'')


def _matmul_kernel(sa, sb) -> str:
    """The torch kernel a matmul of these ranks runs (named in its bool error)."""
    if len(sa) == 1 and len(sb) == 1:
        return "dot"
    if len(sa) > 2 or len(sb) > 2:
        return "bmm"
    return "addmv_impl_cpu" if len(sb) == 1 else "addmm_impl_cpu_"


def _require_ndim(t, n, name):
    if t.ndim != n:
        raise ShapeError(f"{name} must be a {n}-d tensor, got {name} {list(t.shape)}")


# --- matmul ----------------------------------------------------------------------------

def _matmul_shape(a, b) -> tuple:
    sa, sb = tuple(a.shape), tuple(b.shape)
    if not sa or not sb:
        raise ShapeError(f"both arguments to matmul need to be at least 1D, but they are "
                         f"{len(sa)}D and {len(sb)}D")
    if len(sa) == 1 and len(sb) == 1:
        if sa != sb:
            raise ShapeError(f"inconsistent tensor size, expected tensor [{sa[0]}] and src "
                             f"[{sb[0]}] to have the same number of elements, but got {sa[0]} "
                             f"and {sb[0]} elements respectively")
        return ()
    k_b = sb[-2] if len(sb) >= 2 else sb[0]
    if sa[-1] != k_b:
        if len(sb) == 1:
            raise ShapeError(f"size mismatch, got input ({sa[-2]}), mat ({_dims(sa)}), "
                             f"vec ({sb[0]})")
        raise ShapeError(f"mat1 and mat2 shapes cannot be multiplied ({_dims(sa)} and "
                         f"{_dims(sb)})")
    try:
        batch = broadcast_shapes(sa[:-2], sb[:-2])
    except ShapeError:
        raise ShapeError(f"batch dimensions of {list(sa)} and {list(sb)} cannot be "
                         f"broadcast") from None
    return batch + (sa[-2:-1] if len(sa) >= 2 else ()) + (sb[-1:] if len(sb) >= 2 else ())


def _matmul_meta(self, other):
    shape = _matmul_shape(self, other)
    dt = _same_dtype(("self", self), ("other", other))
    _no_bool(dt, _matmul_kernel(tuple(self.shape), tuple(other.shape)))
    return TensorMeta(shape, dt, device_of([self, other]))


def _matmul_ref(a, b):
    a, b = opmath_arrays(a, b)
    return np.asarray(np.matmul(a, b))


def _mT(x):
    return transpose(x, -1, -2)


def _matmul_grad(g, self, other):
    a1, b1 = self.ndim == 1, other.ndim == 1
    if a1 and b1:
        return g * _c(other), g * _c(self)
    a = unsqueeze(self, 0) if a1 else self
    b = unsqueeze(other, -1) if b1 else other
    if a1:
        g = unsqueeze(g, -2 if not b1 else 0)
    if b1:
        g = unsqueeze(g, -1)
    ga = matmul(g, _c(_mT(b)))
    gb = matmul(_c(_mT(a)), g)
    if a1:
        ga = squeeze(ga, [-2])
    if b1:
        gb = squeeze(gb, [-1])
    return ga, gb


def _matmul_samples(rng):
    r = S.randn
    return [S.Sample((r(rng, 3, 4), r(rng, 4, 5))),
            S.Sample((r(rng, 4), r(rng, 4))),
            S.Sample((r(rng, 4), r(rng, 4, 3))),
            S.Sample((r(rng, 3, 4), r(rng, 4))),
            S.Sample((r(rng, 2, 3, 4), r(rng, 4, 2))),
            S.Sample((r(rng, 4), r(rng, 2, 4, 3))),
            S.Sample((r(rng, 2, 1, 3, 4), r(rng, 3, 4, 2))),
            S.Sample((r(rng, 2, 3, 4), r(rng, 4))),
            S.Sample((S.int_array(rng, 2, 3), S.int_array(rng, 3, 2)))]


matmul = defop(
    "matmul(Tensor self, Tensor other) -> Tensor",
    meta=_matmul_meta, reference=_matmul_ref, derivative=_matmul_grad,
    tags=LIN, samples=_matmul_samples, torch_ref="torch.matmul", method=True,
    doc="torch.matmul: dot, matrix-vector, vector-matrix, and broadcast batched products.",
)


# --- mm, bmm, addmm, baddbmm ---------------------------------------------------------

def _mm_meta(self, mat2):
    _require_ndim(self, 2, "self")
    _require_ndim(mat2, 2, "mat2")
    if self.shape[1] != mat2.shape[0]:
        raise ShapeError(f"mat1 and mat2 shapes cannot be multiplied ({_dims(self.shape)} and "
                         f"{_dims(mat2.shape)})")
    dt = _same_dtype(("self", self), ("mat2", mat2))
    _no_bool(dt, "addmm_impl_cpu_")
    return TensorMeta((self.shape[0], mat2.shape[1]), dt, device_of([self]))


mm = defop(
    "mm(Tensor self, Tensor mat2) -> Tensor",
    meta=_mm_meta, reference=_matmul_ref,
    derivative=lambda g, self, mat2: (mm(g, _c(_mT(mat2))), mm(_c(_mT(self)), g)),
    tags=LIN, samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), S.randn(rng, 4, 2))),
                                   S.Sample((S.randn(rng, 1, 5), S.randn(rng, 5, 1)))],
    torch_ref="torch.mm", method=True,
)


def _bmm_meta(self, mat2):
    _require_ndim(self, 3, "batch1")
    _require_ndim(mat2, 3, "batch2")
    b, n, k = self.shape
    if tuple(mat2.shape[:2]) != (b, k):
        raise ShapeError(f"Expected size for first two dimensions of batch2 tensor to be: "
                         f"[{b}, {k}] but got: [{mat2.shape[0]}, {mat2.shape[1]}] "
                         f"(batch1 {list(self.shape)}, batch2 {list(mat2.shape)})")
    dt = _same_dtype(("batch1", self), ("batch2", mat2))
    _no_bool(dt, "bmm")
    return TensorMeta((b, n, mat2.shape[2]), dt, device_of([self]))


bmm = defop(
    "bmm(Tensor self, Tensor mat2) -> Tensor",
    meta=_bmm_meta, reference=_matmul_ref,
    derivative=lambda g, self, mat2: (bmm(g, _c(_mT(mat2))), bmm(_c(_mT(self)), g)),
    tags=LIN, samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4), S.randn(rng, 2, 4, 5)))],
    torch_ref="torch.bmm", method=True,
)


def _add_mm_meta(inner, self_name):
    def rule(self, a, b, beta, alpha):
        out = inner(a, b)
        try:
            broadcast_shapes(tuple(self.shape), out.shape)
            if broadcast_shapes(tuple(self.shape), out.shape) != out.shape:
                raise ShapeError("")
        except ShapeError:
            raise ShapeError(f"{self_name} {list(self.shape)} cannot be broadcast to the "
                             f"product's shape {list(out.shape)}") from None
        _same_dtype(("self", self), ("mat1", a))
        return out
    return rule


def _addmm_ref(x, a, b, beta, alpha):
    x, a, b = opmath_arrays(x, a, b)
    if a.dtype.kind in "iu":   # PyTorch casts the scalars to the integer type (0.6 -> 0)
        beta, alpha = int(beta), int(alpha)
    prod = np.matmul(a, b)
    if alpha != 1:
        prod = prod * alpha
    if beta == 0:
        return np.broadcast_to(prod, np.broadcast_shapes(x.shape, prod.shape)).copy()
    return prod + (x * beta if beta != 1 else x)


def _scale(t, s):
    return t if s == 1 else t * s


def _addmm_decomposition(self, mat1, mat2, beta=1, alpha=1):
    product = _scale(mm(mat1, mat2), alpha)
    return product if beta == 0 else _scale(self, beta) + product   # beta=0 ignores nan


addmm = defop(
    "addmm(Tensor self, Tensor mat1, Tensor mat2, *, Scalar beta=1, Scalar alpha=1) -> Tensor",
    decomposition=_addmm_decomposition,
    meta=_add_mm_meta(_mm_meta, "self"), reference=_addmm_ref,
    derivative=lambda g, self, mat1, mat2, beta, alpha: (
        _scale(g, beta), _scale(mm(g, _c(_mT(mat2))), alpha),
        _scale(mm(_c(_mT(mat1)), g), alpha)),
    tags=LIN,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 5), S.randn(rng, 3, 4), S.randn(rng, 4, 5))),
                         S.Sample((S.randn(rng, 5), S.randn(rng, 3, 4), S.randn(rng, 4, 5)),
                                  {"beta": 0.5, "alpha": 2.0}),
                         S.Sample((S.randn(rng, 3, 1), S.randn(rng, 3, 4), S.randn(rng, 4, 2)),
                                  {"beta": 0})],
    torch_ref="torch.addmm", method=True,
)

baddbmm = defop(
    "baddbmm(Tensor self, Tensor batch1, Tensor batch2, *, Scalar beta=1, Scalar alpha=1) "
    "-> Tensor",
    meta=_add_mm_meta(_bmm_meta, "self"), reference=_addmm_ref,
    derivative=lambda g, self, batch1, batch2, beta, alpha: (
        _scale(g, beta), _scale(bmm(g, _c(_mT(batch2))), alpha),
        _scale(bmm(_c(_mT(batch1)), g), alpha)),
    tags=LIN,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 5), S.randn(rng, 2, 3, 4),
                                   S.randn(rng, 2, 4, 5))),
                         S.Sample((S.randn(rng, 5), S.randn(rng, 2, 3, 4),
                                   S.randn(rng, 2, 4, 5)), {"beta": 0.5, "alpha": -1.5})],
    torch_ref="torch.baddbmm", method=True,
)


# --- vector products --------------------------------------------------------------------

def _dot_meta(self, tensor):
    if self.ndim != 1 or tensor.ndim != 1:
        raise ShapeError(f"1D tensors expected, but got {self.ndim}D and {tensor.ndim}D tensors")
    _matmul_shape(self, tensor)
    dt = _same_dtype(("self", self), ("tensor", tensor))
    _no_bool(dt, "dot")
    return TensorMeta((), dt, device_of([self]))


dot = defop(
    "dot(Tensor self, Tensor tensor) -> Tensor",
    meta=_dot_meta, reference=_matmul_ref,
    derivative=lambda g, self, tensor: (g * _c(tensor), g * _c(self)),
    tags=LIN, samples=lambda rng: [S.Sample((S.randn(rng, 5), S.randn(rng, 5)))],
    torch_ref="torch.dot", method=True,
)


def _mv_meta(self, vec):
    if self.ndim != 2 or vec.ndim != 1:
        raise ShapeError(f"vector + matrix @ vector expected, got self {list(self.shape)} and "
                         f"vec {list(vec.shape)}")
    shape = _matmul_shape(self, vec)
    dt = _same_dtype(("self", self), ("vec", vec))
    _no_bool(dt, "addmv_impl_cpu")
    return TensorMeta(shape, dt, device_of([self]))


mv = defop(
    "mv(Tensor self, Tensor vec) -> Tensor",
    meta=_mv_meta, reference=_matmul_ref,
    derivative=lambda g, self, vec: (unsqueeze(g, 1) * _c(unsqueeze(vec, 0)),
                                     mv(_c(_mT(self)), g)),
    tags=LIN, samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), S.randn(rng, 4)))],
    torch_ref="torch.mv", method=True,
)


def _outer_meta(self, vec2):
    for name, t in (("self", self), ("vec2", vec2)):
        if t.ndim != 1:
            raise ShapeError(f"Expected 1-D argument {name}, but got {t.ndim}-D "
                             f"({name} {list(t.shape)})")
    _, dt = promote_dtypes(Promotion.DEFAULT, [self, vec2])
    return TensorMeta((self.shape[0], vec2.shape[0]), dt, device_of([self, vec2]))


outer = defop(
    "outer(Tensor self, Tensor vec2) -> Tensor",
    meta=_outer_meta, reference=lambda a, b: np.multiply.outer(a, b),
    derivative=lambda g, self, vec2: (sum(g * _c(unsqueeze(vec2, 0)), [1]),
                                      sum(g * _c(unsqueeze(self, 1)), [0])),
    tags=LIN, promotion=Promotion.DEFAULT,
    samples=lambda rng: [S.Sample((S.randn(rng, 3), S.randn(rng, 4))),
                         S.Sample((S.randn(rng, 2), S.randn(rng, 3, dtype=np.float64)))],
    torch_ref="torch.outer", method=True,
)


# --- linear --------------------------------------------------------------------------

def _linear_meta(input, weight, bias):
    if input.ndim == 0 or weight.ndim not in (1, 2):
        raise ShapeError(f"expected input of at least 1 dim and a 1-d or 2-d weight, got "
                         f"input {list(input.shape)} and weight {list(weight.shape)}")
    k = input.shape[-1]
    if weight.shape[-1] != k:
        rows = math.prod(input.shape[:-1])
        w_t = (weight.shape[-1],) + tuple(weight.shape[:-1])
        raise ShapeError(f"mat1 and mat2 shapes cannot be multiplied ({rows}x{k} and "
                         f"{_dims(w_t)}) (input {list(input.shape)}, weight "
                         f"{list(weight.shape)})")
    shape = tuple(input.shape[:-1]) + tuple(weight.shape[:-1])
    if bias is not None:
        try:
            if broadcast_shapes(tuple(bias.shape), shape) != shape:
                raise ShapeError("")
        except ShapeError:
            raise ShapeError(f"bias {list(bias.shape)} cannot be broadcast to the output "
                             f"{list(shape)} (weight {list(weight.shape)})") from None
    dt = _same_dtype(("input", input), ("weight", weight), ("bias", bias))
    return TensorMeta(shape, dt, device_of([input]))


def _linear_ref(x, w, b):
    x, w, b = opmath_arrays(x, w, b)
    out = np.matmul(x, w.T) if w.ndim == 2 else np.matmul(x, w)
    return out if b is None else out + b


def _linear_grad(g, input, weight, bias):
    # the eager tape says which inputs need a gradient: a network's first layer needs
    # none for its input batch (a whole GEMM saved)
    mask = take_input_mask() or (True, True)
    gi = gw = None
    if mask[0]:
        gi = matmul(g, _c(weight)) if weight.ndim == 2 else unsqueeze(g, -1) * _c(weight)
    if mask[1]:
        g2 = g if weight.ndim == 2 and g.ndim == 2 else \
            reshape(g, [-1, weight.shape[0]] if weight.ndim == 2 else [-1, 1])
        x2 = input if input.ndim == 2 else reshape(input, [-1, input.shape[-1]])
        gw = mm(_mT(g2), _c(x2))            # 2-D rows x features: already weight's shape
        if weight.ndim != 2:
            gw = reshape(gw, list(weight.shape))
    return gi, gw, (g if bias is not None else None)


def _linear_decomposition(input, weight, bias=None):
    out = matmul(input, transpose(weight, 0, 1) if weight.ndim == 2 else weight)
    return out if bias is None else out + bias


linear = defop(
    "linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor",
    decomposition=_linear_decomposition,
    meta=_linear_meta, reference=_linear_ref, derivative=_linear_grad,
    tags=LIN,
    samples=lambda rng: [S.Sample((S.randn(rng, 3, 4), S.randn(rng, 5, 4), S.randn(rng, 5))),
                         S.Sample((S.randn(rng, 2, 3, 4), S.randn(rng, 5, 4))),
                         S.Sample((S.randn(rng, 4), S.randn(rng, 2, 4), S.randn(rng, 2))),
                         S.Sample((S.randn(rng, 3, 4), S.randn(rng, 4)))],
    torch_ref="torch.nn.functional.linear",
)


# --- einsum ---------------------------------------------------------------------------

def parse_einsum(equation: str, shapes) -> tuple[list[str], str, dict]:
    """Explicit form of an einsum equation: (one subscript string per operand, output
    subscripts, {label: size}); ellipses become fresh letters, right-aligned."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ShapeError(f"einsum(): {'more' if len(shapes) > len(terms) else 'fewer'} "
                         f"operands were provided than specified in the equation "
                         f"'{equation}' (operands {[list(s) for s in shapes]})")
    for ch in eq:
        if not (ch.isalpha() or ch in ",.->"):
            raise ShapeError(f"einsum(): invalid subscript given at index {eq.index(ch)} in "
                             f"the equation string, subscripts must be in [a-zA-Z]")
    free = [c for c in string.ascii_letters if c not in eq]
    n_ell = 0
    for i, (t, s) in enumerate(zip(terms, shapes)):
        labels = len(t.replace("...", ""))
        if "..." in t:
            if len(s) < labels:
                raise ShapeError(f"einsum(): the number of subscripts in the equation ({labels})"
                                 f" is more than the number of dimensions ({len(s)}) for "
                                 f"operand {i} {list(s)}")
            n_ell = max(n_ell, len(s) - labels)
        elif labels != len(s):
            raise ShapeError(f"einsum(): the number of subscripts in the equation ({labels}) "
                             f"does not match the number of dimensions ({len(s)}) for operand "
                             f"{i} {list(s)} and no ellipsis was given")
    ell = "".join(free[:n_ell])
    terms = [t.replace("...", ell[n_ell - (len(s) - len(t) + 3):] if len(s) - len(t) + 3 else "")
             if "..." in t else t for t, s in zip(terms, shapes)]
    if arrow:
        if "..." in rhs and not ell and not any("..." in t for t in lhs.split(",")):
            raise ShapeError("einsum(): ellipsis in the output but not in any input")
        rhs = rhs.replace("...", ell)
        for c in rhs:
            if rhs.count(c) > 1:
                raise ShapeError(f"einsum(): output subscript {c} appears more than once in "
                                 f"the output")
            if not any(c in t for t in terms):
                raise ShapeError(f"einsum(): output subscript {c} does not appear in the "
                                 f"equation for any input operand")
    else:
        joined = "".join(terms)
        rhs = ell + "".join(sorted(c for c in set(joined) if joined.count(c) == 1
                                   and c not in ell))
    sizes: dict = {}
    for i, (t, s) in enumerate(zip(terms, shapes)):
        for c, n in zip(t, s):
            have = sizes.get(c, 1)
            if n != 1 and have != 1 and n != have:
                raise ShapeError(f"einsum(): subscript {c} has size {n} for operand {i} which "
                                 f"does not broadcast with previously seen size {have} "
                                 f"(operands {[list(x) for x in shapes]}, equation "
                                 f"'{equation}')")
            sizes[c] = max(have, n) if n != 1 else have
    return terms, rhs, sizes


def _einsum_meta(equation, tensors):
    if not tensors:
        raise ShapeError("einsum(): must provide at least one operand")
    _, rhs, sizes = parse_einsum(equation, [tuple(t.shape) for t in tensors])
    dt = _same_dtype(*((f"operand {i}", t) for i, t in enumerate(tensors)))
    if dt == dtypes.bool_ and _einsum_contracts(equation, [tuple(t.shape) for t in tensors]):
        _no_bool(dt, "bmm")          # torch contracts two operands with bmm: no bool kernel
    if _einsum_sums_alone(equation, [tuple(t.shape) for t in tensors], dt):
        dt = dtypes.int64
    return TensorMeta(tuple(sizes[c] for c in rhs), dt, device_of(tensors))


def _einsum_contracts(equation, shapes) -> bool:
    """Whether a subscript found in two or more operands is summed out (a product that
    torch computes with bmm, as opposed to elementwise products and single-operand sums)."""
    terms, rhs, _ = parse_einsum(equation, shapes)
    return any(c not in rhs and len([u for u in terms if c in u]) > 1
               for t in terms for c in t)


def _einsum_sums_alone(equation, shapes, dt) -> bool:
    """Whether PyTorch's einsum sums a subscript out of one operand on its own (one found
    in no other operand nor the output): that step is a `sum`, which widens integer and
    bool operands to int64, so the result is int64 ('i->', 'ij,k->ik'; 'i,i->' stays)."""
    if dt.is_floating_point or dt.is_complex:
        return False
    terms, rhs, _ = parse_einsum(equation, shapes)
    for i, t in enumerate(terms):
        elsewhere = rhs + "".join(u for j, u in enumerate(terms) if j != i)
        if any(c not in elsewhere for c in t):
            return True
    return False


def _einsum_ref(equation, arrays):
    arrays = opmath_arrays(*arrays)
    if arrays and _einsum_sums_alone(equation, [a.shape for a in arrays],
                                     dtypes.from_numpy_dtype(arrays[0].dtype)):
        arrays = [a.astype(np.int64) for a in arrays]
    terms, rhs, sizes = parse_einsum(equation, [a.shape for a in arrays])
    full = []
    for t, a in zip(terms, arrays):
        want = tuple(sizes[c] for c in t)
        full.append(a if a.shape == want else np.broadcast_to(a, want))
    eq = ",".join(terms) + "->" + rhs
    out = np.einsum(eq, *full, optimize=len(full) > 2) if full else np.asarray(0)
    return np.asarray(out)


def _einsum_grad(g, equation, tensors):
    terms, rhs, _ = parse_einsum(equation, [tuple(t.shape) for t in tensors])
    return ([_einsum_operand_grad(g, terms, rhs, tensors, i) for i in range(len(terms))],)


def _einsum_operand_grad(g, terms, rhs, tensors, i):
    """The gradient of operand i: an einsum of g with the other operands onto i's distinct
    subscripts; a repeated subscript (a diagonal, 'ii') then puts it back on that diagonal."""
    t, x = terms[i], tensors[i]
    distinct = "".join(dict.fromkeys(t))
    shape = [x.shape[t.index(c)] for c in distinct]
    others = [terms[j] for j in range(len(terms)) if j != i]
    seen = rhs + "".join(others)
    kept = "".join(c for c in distinct if c in seen)
    grad = einsum(",".join([rhs] + others) + "->" + kept,
                  [g] + [_c(tensors[j]) for j in range(len(terms)) if j != i])
    for pos, c in enumerate(distinct):
        if c not in seen:
            grad = unsqueeze(grad, pos)
    if tuple(grad.shape) != tuple(shape):      # size-1 broadcasting either way
        grad = expand(grad, [max(a, b) for a, b in zip(grad.shape, shape)])
    if distinct == t:
        return grad
    return _onto_diagonal(grad, distinct, t, shape, "".join(terms) + rhs)


def _onto_diagonal(grad, distinct: str, term: str, shape, used: str):
    """grad over `distinct` placed where `term` repeats a subscript: each repeat gets a
    fresh subscript tied to the first by an identity matrix."""
    fresh = iter(c for c in string.ascii_letters if c not in used)
    seen, out, ties, eyes = set(), "", [], []
    for c in term:
        if c not in seen:
            seen.add(c)
            out += c
            continue
        f = next(fresh)
        out += f
        n = shape[distinct.index(c)]
        ties.append(c + f)
        eyes.append(convert_element_type(eq(unsqueeze(arange(0, n), 1), unsqueeze(arange(0, n), 0)),
                                         grad.dtype))
    return einsum(",".join([distinct] + ties) + "->" + out, [grad] + eyes)


einsum = defop(
    "einsum(str equation, Tensor[] tensors) -> Tensor",
    meta=_einsum_meta, reference=_einsum_ref, derivative=_einsum_grad,
    tags=LIN,
    samples=lambda rng: [
        S.Sample(("ij,jk->ik", [S.randn(rng, 3, 4), S.randn(rng, 4, 5)])),
        S.Sample(("bij,bjk", [S.randn(rng, 2, 3, 4), S.randn(rng, 2, 4, 2)])),
        S.Sample(("i,i->", [S.randn(rng, 4), S.randn(rng, 4)])),
        S.Sample(("ij->j", [S.randn(rng, 3, 4)])),
        S.Sample(("ij->ji", [S.randn(rng, 3, 4)])),
        S.Sample(("...ij,...jk->...ik", [S.randn(rng, 2, 3, 4), S.randn(rng, 4, 2)])),
        S.Sample(("i,j,k->ijk", [S.randn(rng, 2), S.randn(rng, 3), S.randn(rng, 2)])),
        S.Sample(("ij,ij->i", [S.randn(rng, 3, 1), S.randn(rng, 3, 4)])),
        S.Sample(("ii->i", [S.randn(rng, 3, 3)])),
        S.Sample(("iji,j->j", [S.randn(rng, 2, 3, 2), S.randn(rng, 3)])),
    ],
    torch_ref="torch.einsum",
    doc="torch.einsum(equation, [tensors]); ellipsis and size-1 broadcasting as in PyTorch.",
)


# --- tensordot --------------------------------------------------------------------------

def _tensordot_equation(nd_a, nd_b, dims_a, dims_b) -> str:
    letters = string.ascii_letters
    a = list(letters[:nd_a])
    b = list(letters[nd_a:nd_a + nd_b])
    for da, db in zip(dims_a, dims_b):
        b[db % max(nd_b, 1)] = a[da % max(nd_a, 1)]
    contracted = {a[d % max(nd_a, 1)] for d in dims_a}
    out = [c for c in a if c not in contracted] + [c for c in b if c not in contracted]
    return "".join(a) + "," + "".join(b) + "->" + "".join(out)


def _tensordot_check(self, other, dims_self, dims_other):
    if len(dims_self) != len(dims_other):
        raise ShapeError(f"both dimension lists should have same length, got dims_self "
                         f"{list(dims_self)} and dims_other {list(dims_other)}")
    for da, db in zip(dims_self, dims_other):
        if self.shape[da] != other.shape[db] and 1 not in (self.shape[da], other.shape[db]):
            raise ShapeError(f"contracted dimensions need to match, but first has size "
                             f"{self.shape[da]} in dim {da} and second has size "
                             f"{other.shape[db]} in dim {db} (self {list(self.shape)}, other "
                             f"{list(other.shape)})")
    return _tensordot_equation(self.ndim, other.ndim, dims_self, dims_other)


def _tensordot_meta(self, other, dims_self, dims_other):
    eq = _tensordot_check(self, other, dims_self, dims_other)
    return _einsum_meta(eq, [self, other])


tensordot = defop(
    "tensordot(Tensor self, Tensor other, int[] dims_self, int[] dims_other) -> Tensor",
    meta=_tensordot_meta,
    reference=lambda a, b, dims_self, dims_other: _einsum_ref(      # size 1 broadcasts
        _tensordot_equation(a.ndim, b.ndim, dims_self, dims_other), [a, b]),
    derivative=lambda g, self, other, dims_self, dims_other: tuple(_einsum_grad(
        g, _tensordot_check(self, other, dims_self, dims_other), [self, other])[0]),
    tags=LIN,
    samples=lambda rng: [S.Sample((S.randn(rng, 2, 3, 4), S.randn(rng, 4, 3, 5), [1, 2], [1, 0])),
                         S.Sample((S.randn(rng, 3, 4), S.randn(rng, 2, 5), [], [])),
                         S.Sample((S.randn(rng, 1, 1, 3), S.randn(rng, 2, 1, 2), [0, 1], [2, 0]))],
    torch_ref=lambda torch: lambda a, b, dims_self, dims_other: torch.tensordot(
        a, b, dims=(list(dims_self), list(dims_other))),
    doc="aten's form; torch.tensordot(a, b, dims=...) maps onto it.",
)


from .creation import arange  # noqa: E402 - derivative rules use these
from .pointwise import conj, convert_element_type, eq  # noqa: E402
from .reduction import sum  # noqa: E402,A001
from .shape import expand, reshape, squeeze, transpose, unsqueeze  # noqa: E402
