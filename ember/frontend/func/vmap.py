"""ember.func.vmap: torch.func.vmap on top of the `batch_graph` pass.

vmap(f)(*args) traces f once over per-example symbolic inputs, batches the graph
(passes/vmap.py) and runs it on the given values, so it nests inside any other
transform and any transform nests inside it.
"""
from __future__ import annotations

import functools
from typing import Callable

from ember.ir.errors import ShapeError
from ember.ir.meta import TensorMeta
from ember.passes.vmap import batch_graph

from . import pytree
from .tracing import is_tensor_like, tensor_meta, trace


def vmap(func: Callable, in_dims=0, out_dims=0, randomness: str = "error", *,
         chunk_size: int | None = None) -> Callable:
    """Vectorize `func` over dim `in_dims` of its inputs (torch.func.vmap's semantics).

    in_dims/out_dims are ints, None (not batched), or pytrees matching the positional
    arguments / the outputs. Keyword arguments are passed unbatched.
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"vmap: chunk_size must be None or a positive int, got {chunk_size}")

    @functools.wraps(func)
    def batched(*args, **kwargs):
        return _vmap_call(func, in_dims, out_dims, randomness, chunk_size, args, kwargs)
    return batched


def _vmap_call(func, in_dims, out_dims, randomness, chunk_size, args, kwargs):
    name = getattr(func, "__name__", "func")
    if not isinstance(in_dims, (int, tuple)) and in_dims is not None:
        raise ValueError(f"vmap({name}, in_dims={in_dims!r}): in_dims must be an int, None "
                         "or a tuple with one entry per positional argument")
    if isinstance(in_dims, tuple) and len(in_dims) != len(args):
        raise ValueError(f"vmap({name}, in_dims={in_dims!r}, ...)(<inputs>): in_dims is "
                         f"not compatible with the structure of inputs: expected "
                         f"{len(args)} entries, got {len(in_dims)}")
    leaves, spec = pytree.flatten(list(args))
    dims = pytree.broadcast_prefix(list(in_dims) if isinstance(in_dims, tuple) else in_dims,
                                   list(args))
    inputs = _check_inputs(name, leaves, dims)
    batch_size = _batch_size(name, leaves, inputs)
    if chunk_size is not None and chunk_size < batch_size:
        return _chunked(func, in_dims, out_dims, randomness, chunk_size, args, kwargs,
                        inputs, batch_size)
    return _run_batched(func, out_dims, randomness, leaves, spec, inputs, batch_size, kwargs)


def _check_inputs(name: str, leaves: list, dims: list) -> list[tuple[int, int | None]]:
    """(leaf index, normalized in_dim) for every tensor leaf; errors for bad dims."""
    inputs = []
    for i, (leaf, dim) in enumerate(zip(leaves, dims)):
        if dim is not None and not isinstance(dim, int):
            raise ValueError(f"vmap({name}, ...): in_dims must hold ints or None, got {dim!r}")
        if not is_tensor_like(leaf):
            if dim is not None:
                raise ValueError(f"vmap({name}, in_dims=..., ...)(<inputs>): Got in_dim={dim} "
                                 f"for an input but the input is of type {type(leaf).__name__}."
                                 " We cannot vmap over non-Tensor arguments, please use None "
                                 "as the respective in_dim")
            continue
        if dim is not None:
            ndim = len(leaf.shape)
            if not -ndim <= dim < ndim:
                raise ShapeError(f"vmap({name}, in_dims=..., ...)(<inputs>): Got in_dim={dim} "
                                 f"for some input, but that input is a Tensor of "
                                 f"dimensionality {ndim} so expected in_dim to satisfy "
                                 f"-{ndim} <= in_dim < {ndim}.")
            dim %= ndim
        inputs.append((i, dim))
    return inputs


def _batch_size(name: str, leaves: list, inputs) -> int:
    sizes = [leaves[i].shape[d] for i, d in inputs if d is not None]
    if not sizes:
        raise ValueError(f"vmap({name}, in_dims=..., ...)(<inputs>): at least one input "
                         "must be a Tensor mapped over a dim (in_dims all None or no Tensor "
                         "inputs)")
    if len(set(sizes)) > 1:
        raise ShapeError(f"vmap({name}, in_dims=..., ...)(<inputs>): Expected all tensors "
                         f"to have the same size in the mapped dimension, got sizes {sizes} "
                         "for the mapped dimension")
    return sizes[0]


def _run_batched(func, out_dims, randomness, leaves, spec, inputs, batch_size, kwargs):
    """Trace func per example, batch the graph, run it on the tensor leaves."""
    metas = [_example_meta(leaves[i], d) for i, d in inputs]
    positions = [i for i, _ in inputs]

    def per_example(*tensors):
        full = list(leaves)
        for i, t in zip(positions, tensors):
            full[i] = t
        return func(*pytree.unflatten(spec, full), **kwargs)

    traced = trace(per_example, metas)
    flat_out_dims = _flat_out_dims(out_dims, traced.out_spec)
    in_dims = [d for _, d in inputs] + [None] * len(traced.captured)
    graph = batch_graph(traced.graph, in_dims, batch_size, out_dims=flat_out_dims,
                        randomness=randomness)
    outputs = traced.run(graph, [leaves[i] for i in positions])
    return pytree.unflatten(traced.out_spec, outputs)


def _example_meta(value, dim) -> TensorMeta:
    meta = tensor_meta(value)
    shape = list(meta.shape)
    if dim is not None:
        del shape[dim]
    return TensorMeta(tuple(shape), meta.dtype, meta.device)


def _flat_out_dims(out_dims, out_spec) -> list:
    if isinstance(out_dims, int) or out_dims is None:
        return [out_dims] * out_spec.num_leaves
    structure = pytree.unflatten(out_spec, [0] * out_spec.num_leaves)
    if out_spec.kind == "leaf" and isinstance(out_dims, tuple) and len(out_dims) == 1:
        out_dims = out_dims[0]
    return pytree.broadcast_prefix(out_dims, structure, "out_dims")


def _chunked(func, in_dims, out_dims, randomness, chunk_size, args, kwargs, inputs,
             batch_size):
    """chunk_size: run vmap on slices of the batch and concatenate along out_dims."""
    leaves, spec = pytree.flatten(list(args))
    results = []
    for start in range(0, batch_size, chunk_size):
        length = min(chunk_size, batch_size - start)
        chunk = list(leaves)
        for i, d in inputs:
            if d is not None:
                chunk[i] = leaves[i].narrow(d, start, length)
        chunk_args = pytree.unflatten(spec, chunk)
        results.append(_vmap_call(func, in_dims, out_dims, randomness, None, chunk_args,
                                  kwargs))
    out_leaves, out_spec = pytree.flatten(results[0])
    dims = _flat_out_dims(out_dims, out_spec)
    columns = zip(*(pytree.flatten(r)[0] for r in results))
    joined = [col[0] if d is None else _cat(list(col), d) for col, d in zip(columns, dims)]
    return pytree.unflatten(out_spec, joined)


def _cat(parts, dim):
    from ember.ir.ops import OPS_NS
    return OPS_NS.cat(parts, dim)
