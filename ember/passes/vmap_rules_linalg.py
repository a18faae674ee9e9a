"""vmap batching rules for products and linear algebra (matmul family, einsum,
tensordot, linalg_* ops that batch over leading dims)."""
from __future__ import annotations

import string
from ember.ir.ops import OPS_NS as ops
from ember.ir.registry import OPS

from .vmap import BatchContext, Batched, call, wrap_result
from .vmap_batchdim import first_tensor, front, materialize, pad_rank, shift, with_front_tensors
from .vmap_rules_nn import loop_rule
from .vmap_rules_shape import _dims_expand, pointwise_rule, reduction_rule


# --- linear algebra ----------------------------------------------------------------------
def matmul_rule(op, bound, ctx):
    """matmul/mm/bmm/mv/dot: vectors become matrices, ranks are padded after the batch dim
    so broadcasting keeps it first, and the added dims are squeezed at the end."""
    return batched_matmul(bound[0], bound[1], ctx)


def batched_matmul(a: Batched, b: Batched, ctx: BatchContext) -> Batched:
    if not (a.is_batched or b.is_batched):
        return Batched(ops.matmul(a.value, b.value), None)
    a_vec, b_vec = a.logical_ndim == 1, b.logical_ndim == 1
    av = _as_matrix(a, -2)
    bv = _as_matrix(b, -1)
    a_rank, b_rank = max(a.logical_ndim, 2), max(b.logical_ndim, 2)
    rank = max(a_rank, b_rank)
    # an unbatched operand broadcasts from the right; padding the batched one to the
    # common rank keeps the batch dim leading
    if a.is_batched:
        av = pad_rank(av, a_rank, rank)
    if b.is_batched:
        bv = pad_rank(bv, b_rank, rank)
    out = ops.matmul(av, bv)
    if b_vec:
        out = out.squeeze(-1)
    if a_vec:
        out = out.squeeze(-1 if b_vec else -2)
    return Batched(out, 0)


def _as_matrix(b: Batched, axis: int):
    value = front(b) if b.is_batched else b.value
    return value.unsqueeze(axis) if b.logical_ndim == 1 else value


def multi_dot_rule(op, bound, ctx):
    """linalg_multi_dot: a chain of batched matmuls (vector ends act as in matmul)."""
    tensors = list(bound[0])
    product = tensors[0]
    for t in tensors[1:]:
        product = batched_matmul(product, t, ctx)
    return product


def outer_rule(op, bound, ctx):
    """outer(a, b) = a[:, None] * b[None, :], through the pointwise rule."""
    a, b = bound
    return pointwise_rule(OPS["mul"], [logical_unsqueeze(a, 1), logical_unsqueeze(b, 0)], ctx)


def logical_unsqueeze(b: Batched, dim: int) -> Batched:
    if not b.is_batched:
        return Batched(b.value.unsqueeze(dim), None)
    return Batched(front(b).unsqueeze(dim + 1), 0)


def addmm_rule(op, bound, ctx):
    """addmm/baddbmm: beta * self + alpha * (m1 @ m2), each part through its rule."""
    self_, m1, m2, beta, alpha = bound
    product = batched_matmul(m1, m2, ctx)
    product = _scaled(product, alpha, ctx)
    if beta == 0:       # PyTorch ignores self (even nan) when beta is 0
        return product
    return pointwise_rule(OPS["add"], [_scaled(self_, beta, ctx), product, 1], ctx)


def _scaled(b: Batched, factor, ctx):
    if factor == 1:
        return b
    return pointwise_rule(OPS["mul"], [b, factor], ctx) if b.is_batched else \
        Batched(b.value * factor, None)


def linear_rule(op, bound, ctx):
    x, weight, bias = bound
    if not weight.is_batched:
        out = Batched(ops.linear(materialize(x, ctx.batch_size), weight.value), 0)
    else:
        w_t = Batched(front(weight).transpose(-1, -2), 0)
        out = batched_matmul(x, w_t, ctx)
    if bias is None:
        return out
    return pointwise_rule(OPS["add"], [out, bias, 1], ctx)


def einsum_rule(op, bound, ctx):
    """A fresh subscript letter for the batch dim of every batched operand and the output."""
    equation, operands = bound
    equation = equation.replace(" ", "")
    lhs, _, rhs = equation.partition("->")
    specs = lhs.split(",")
    if "->" not in equation:
        rhs = _implicit_output(specs)
    letter = next(c for c in string.ascii_letters if c not in equation)
    specs = [letter + s if t.is_batched else s for s, t in zip(specs, operands)]
    values = [front(t) if t.is_batched else t.value for t in operands]
    return Batched(ops.einsum(f"{','.join(specs)}->{letter}{rhs}", values), 0)


def _implicit_output(specs) -> str:
    letters = [c for s in specs for c in s if c.isalpha()]
    once = sorted(c for c in set(letters) if letters.count(c) == 1)
    return ("..." if any("..." in s for s in specs) else "") + "".join(once)


def tensordot_rule(op, bound, ctx):
    a, b, dims_a, dims_b = bound
    if a.is_batched and b.is_batched:
        return loop_rule(op, bound, ctx)
    if a.is_batched:
        out = ops.tensordot(front(a), b.value, shift(list(dims_a), a.logical_ndim),
                            list(dims_b))
        return Batched(out, 0)
    out = ops.tensordot(a.value, front(b), list(dims_a), shift(list(dims_b), b.logical_ndim))
    return Batched(out, a.logical_ndim - len(dims_a))


def matrix_batch_rule(op, bound, ctx):
    """torch.linalg ops act on (*, m, n) with any leading batch dims: every operand
    batched (unbatched ones expanded) puts vmap's batch among them."""
    names = [a.name for a in op.schema.args]
    if "dim" in names:
        return _linalg_dims(op, bound, ctx, names.index("dim"))
    out = with_front_tensors(op, bound, ctx, expand=True)
    if op.name in _CORE_RANKS:
        _align_example_batch_dims(op, bound, out)
    return wrap_result(call(op, out), 0)


# operands' core ranks (the rest of an example's dims are its own batch dims, which
# broadcast from the right among the operands)
_CORE_RANKS = {"linalg_ldl_solve": (2, 1, 2), "linalg_solve_triangular": (2, 2),
               "lu_unpack": (2, 1)}


def _align_example_batch_dims(op, bound, out) -> None:
    """An example's operands may have different numbers of batch dims (LD (2, n, n) with
    B (n, k)); with vmap's dim in front they would then broadcast against the wrong
    dims, so the shorter ones get size-1 dims after vmap's."""
    indices = op.schema.tensor_arg_indices
    ranks = [bound[i].logical_ndim - core for i, core in zip(indices, _CORE_RANKS[op.name])]
    for i, rank in zip(indices, ranks):
        ndim = bound[i].logical_ndim
        out[i] = pad_rank(out[i], ndim, ndim + max(ranks) - rank)


def _linalg_dims(op, bound, ctx, dim_index: int):
    """Norms and the like: dim=None means every example dim, which the op then treats
    as a vector or matrix by count, as it would unbatched."""
    b = first_tensor(op, bound)
    if b.logical_ndim == 0:
        return reduction_rule(op, bound, ctx)
    out = list(bound)
    if out[dim_index] is None:
        out[dim_index] = list(range(b.logical_ndim))
        if op.name == "linalg_norm" and b.logical_ndim > 2:
            # linalg.norm without ord or dim is the 2-norm of the flattened example; with
            # more than two dims named it refuses (as torch), so call vector_norm instead
            op, out[1] = OPS["linalg_vector_norm"], 2 if out[1] is None else out[1]
    return _dims_expand(op, out, ctx)
