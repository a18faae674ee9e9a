"""jacrev, jacfwd, hessian: vmap over vjp / jvp with one basis vector per row (column).

jacrev(f)(x) = vmap(vjp_fn)(I): one batched backward pass for every output element
instead of a Python loop over rows; jacfwd pushes the columns of I through jvp the same
way; hessian = jacfwd(jacrev(f)). Results follow torch.func's layout: for output leaf o
and input leaf i, a tensor of shape o.shape + i.shape, nested as outputs then argnums.
"""
from __future__ import annotations

import functools
from typing import Callable

from ember.ir.ops import OPS_NS as ops

from . import pytree
from .autodiff import _check_argnums, jvp, vjp
from .tracing import is_tensor_like
from .vmap import vmap


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _basis(shapes: list, dtype) -> list:
    """For leaves of `shapes`: one-hot tensors (N, *shape_k), N = the total numel."""
    total = sum(_numel(s) for s in shapes)
    eye = _eye(total, dtype)
    parts, start = [], 0
    for shape in shapes:
        n = _numel(shape)
        parts.append(eye.narrow(1, start, n).reshape([total] + list(shape)))
        start += n
    return parts


def _eye(n: int, dtype):
    """The identity from registry ops, so it is recorded when built inside a transform."""
    index = ops.arange(0, n)
    return ops.convert_element_type(ops.eq(index.unsqueeze(1), index.unsqueeze(0)), dtype)


def _split_rows(stacked, shapes: list, in_shape) -> list:
    """(N, *in_shape) rows -> one block per output leaf, shaped out_shape + in_shape."""
    blocks, start = [], 0
    for shape in shapes:
        n = _numel(shape)
        blocks.append(stacked.narrow(0, start, n).reshape(list(shape) + list(in_shape)))
        start += n
    return blocks


def _diff_args(args: tuple, argnums):
    nums = _check_argnums(argnums, len(args), "jacobian")
    return nums, (args[nums[0]] if isinstance(argnums, int) else tuple(args[n] for n in nums))


def _with_args(args: tuple, nums: tuple, argnums, new):
    out = list(args)
    values = (new,) if isinstance(argnums, int) else new
    for n, v in zip(nums, values):
        out[n] = v
    return out


def jacrev(func: Callable, argnums=0, *, has_aux: bool = False,
           chunk_size: int | None = None) -> Callable:
    """torch.func.jacrev: reverse-mode Jacobian, one vmapped vjp over the output basis."""
    @functools.wraps(func)
    def wrapper(*args):
        nums, diff = _diff_args(args, argnums)

        def f(*d):
            return func(*_with_args(args, nums, argnums, d[0] if isinstance(argnums, int)
                                    else d))
        primals = (diff,) if isinstance(argnums, int) else diff
        result = vjp(f, *primals, has_aux=has_aux)
        out, vjp_fn = result[0], result[1]
        out_leaves, out_spec = pytree.flatten(out)
        shapes = [tuple(o.shape) for o in out_leaves]
        basis = _basis(shapes, out_leaves[0].dtype)
        grads = vmap(lambda *cots: vjp_fn(pytree.unflatten(out_spec, list(cots))),
                     chunk_size=chunk_size)(*basis)
        in_leaves, in_spec = pytree.flatten(grads[0] if isinstance(argnums, int) else grads)
        per_input = [_split_rows(g, shapes, g.shape[1:]) for g in in_leaves]
        jac = pytree.unflatten(out_spec, [
            pytree.unflatten(in_spec, [per_input[i][k] for i in range(len(in_leaves))])
            for k in range(len(out_leaves))])
        return (jac, result[2]) if has_aux else jac
    return wrapper


def jacfwd(func: Callable, argnums=0, has_aux: bool = False, *,
           randomness: str = "error") -> Callable:
    """torch.func.jacfwd: forward-mode Jacobian, one vmapped jvp over the input basis."""
    @functools.wraps(func)
    def wrapper(*args):
        nums, diff = _diff_args(args, argnums)
        primals = (diff,) if isinstance(argnums, int) else diff
        in_leaves, in_spec = pytree.flatten(primals)
        shapes = [tuple(x.shape) for x in in_leaves if is_tensor_like(x)]
        basis = _basis(shapes, in_leaves[0].dtype)

        def f(*d):
            return func(*_with_args(args, nums, argnums, d[0] if isinstance(argnums, int)
                                    else d))

        def push(*tangent_leaves):
            tangents = pytree.unflatten(in_spec, list(tangent_leaves))
            result = jvp(f, primals, tangents, has_aux=has_aux)
            return (result[1], result[2]) if has_aux else result[1]

        pushed = vmap(push, randomness=randomness, out_dims=0)(*basis)
        tangents_out = pushed[0] if has_aux else pushed
        out_leaves, out_spec = pytree.flatten(tangents_out)
        columns = [_split_rows(t, shapes, t.shape[1:]) for t in out_leaves]
        jac = pytree.unflatten(out_spec, [
            _leaf_blocks(columns[k], shapes, in_spec, argnums, len(shapes))
            for k in range(len(out_leaves))])
        return (jac, _first_example(pushed[1])) if has_aux else jac
    return wrapper


def _leaf_blocks(blocks: list, in_shapes: list, in_spec, argnums, n_inputs: int):
    """Blocks (in_shape + out_shape) -> out_shape + in_shape, nested like argnums."""
    moved = []
    for block, shape in zip(blocks, in_shapes):
        k = len(shape)
        order = list(range(k, block.ndim)) + list(range(k))
        moved.append(block.permute(order))
    nested = pytree.unflatten(in_spec, moved)
    return nested[0] if isinstance(argnums, int) else nested


def _first_example(aux):
    leaves, spec = pytree.flatten(aux)
    return pytree.unflatten(spec, [leaf.select(0, 0) for leaf in leaves])


def hessian(func: Callable, argnums=0) -> Callable:
    """torch.func.hessian: jacfwd(jacrev(func)) (forward-over-reverse)."""
    return jacfwd(jacrev(func, argnums), argnums)
