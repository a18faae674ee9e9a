"""ember.func.grad / grad_and_value / vjp / jvp: torch.func's signatures on graph passes.

Each call traces the function over symbolic inputs, builds the joint forward+backward
graph (`passes.autograd.joint_graph`) or the tangent graph (`passes.forward_ad.jvp_graph`)
and runs it with `call_graph` on the given values: eagerly for Tensors, inlined for an
enclosing transform's symbolic values. So grad(grad(f)), vmap(grad(f)) and
jacrev(jacfwd(f)) are just nested calls.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from ember.ir.errors import AutogradError
from ember.ir.symbolic import call_graph
from ember.passes.autograd import is_differentiable_meta, joint_graph

from . import pytree
from .tracing import Traced, is_tensor_like, lift_input_mutations, tensor_meta, trace


@dataclass
class _Call:
    """A function traced at some arguments: which placeholders are differentiated."""
    traced: Traced
    leaves: list            # every tensor leaf of the arguments, in placeholder order
    wrt: list[int]          # placeholder indices of the differentiated leaves
    wrt_spec: pytree.TreeSpec   # structure of the differentiated arguments
    has_aux: bool

    @property
    def n_outputs(self) -> int:
        """Outputs that are differentiated (aux outputs come after them)."""
        return self.traced.out_spec.children[0].num_leaves if self.has_aux else \
            self.traced.out_spec.num_leaves

    def output_metas(self) -> list:
        from .tracing import output_leaves
        return [n.meta["val"] for n in output_leaves(self.traced.graph)]


def _trace_call(func, args: tuple, kwargs: dict, argnums, has_aux: bool, what: str) -> _Call:
    """Trace func(*args) with every tensor leaf a placeholder; mark argnums' leaves."""
    nums = _check_argnums(argnums, len(args), what)
    leaves, spec = pytree.flatten(list(args))
    owner = [a for a, arg in enumerate(args) for _ in pytree.flatten(arg)[0]]
    positions = [i for i, leaf in enumerate(leaves) if is_tensor_like(leaf)]

    def run(*tensors):
        full = list(leaves)
        for i, t in zip(positions, tensors):
            full[i] = t
        out = func(*pytree.unflatten(spec, full), **kwargs)
        if has_aux and not (isinstance(out, tuple) and len(out) == 2):
            raise AutogradError(f"{what}(f, has_aux=True): f must return a (output, aux) "
                                f"tuple, got {type(out).__name__}")
        return out

    traced = trace(run, [tensor_meta(leaves[i]) for i in positions], grad_enabled=True,
                   stop_at_no_grad=what != "jvp")
    lift_input_mutations(traced)
    # in argnums' order: grad(f, argnums=(1, 0)) returns (d/dy, d/dx), as torch's does
    wrt = [k for n in nums for k, i in enumerate(positions) if owner[i] == n]
    for k in wrt:
        if not is_differentiable_meta(traced.graph.placeholders[k].meta["val"]):
            raise AutogradError(f"{what}: argument {owner[positions[k]]} has dtype "
                                f"{traced.graph.placeholders[k].meta['val'].dtype}; only "
                                "floating point and complex inputs can be differentiated")
    diff_args = args[nums[0]] if isinstance(argnums, int) else tuple(args[n] for n in nums)
    return _Call(traced, [leaves[i] for i in positions], wrt, pytree.flatten(diff_args)[1],
                 has_aux)


def _check_argnums(argnums, n_args: int, what: str) -> tuple:
    if not isinstance(argnums, (int, tuple)):
        raise ValueError(f"{what}: argnums must be an int or a tuple of ints, got "
                         f"{type(argnums).__name__} ({argnums!r})")
    nums = (argnums,) if isinstance(argnums, int) else argnums
    if not nums or not all(isinstance(n, int) for n in nums):
        raise ValueError(f"{what}: argnums must be an int or a non-empty tuple of ints, "
                         f"got {argnums!r}")
    for n in nums:
        if not -n_args <= n < n_args:
            raise ValueError(f"{what}: Got argnums={argnums!r}, but only {n_args} positional "
                             "inputs were given")
    return tuple(n % n_args for n in nums)


def _run_joint(call: _Call, cotangents: list):
    """Run the joint graph with one cotangent per differentiable output (Nones skipped)."""
    joint = joint_graph(call.traced.graph, call.wrt)
    inputs = list(call.leaves) + list(call.traced.captured)
    result = call_graph(joint, inputs + [c for c in cotangents if c is not None],
                        call.traced.constants)
    outputs, grads = result
    return list(outputs), list(grads)


def _write_back(call: _Call, outputs: list) -> None:
    """Copy the final values of inputs the function updated in place into them (the last
    outputs, see tracing.lift_input_mutations); vjp_fn/jvp later reread the originals."""
    mutated = call.traced.mutated_inputs
    if not mutated:
        return
    from ..autograd.grad_mode import no_grad
    constants = call.traced.constants
    for k, value in zip(mutated, outputs[len(outputs) - len(mutated):]):
        table = constants if isinstance(k, str) else call.leaves
        original = table[k]
        table[k] = original.detach().clone()        # what a later vjp_fn reads
        with no_grad():
            original.copy_(value)


def _unflatten_out(call: _Call, outputs: list):
    return pytree.unflatten(call.traced.out_spec, outputs)


# --- grad ----------------------------------------------------------------------------------
def grad_and_value(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """grad_and_value(f)(*args) -> (gradient, value), or ((gradient), (value, aux))."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        call = _trace_call(func, args, kwargs, argnums, has_aux, "grad_and_value")
        metas = call.output_metas()
        main = call.traced.out_spec.children[0] if has_aux else call.traced.out_spec
        if main.kind != "leaf":
            raise AutogradError(f"grad_and_value(f)(*args): Expected f(*args) to return a "
                                f"scalar Tensor, got a {main.kind} of outputs")
        out = metas[0]
        if out.dtype.is_complex:
            raise AutogradError(f"grad_and_value(f)(*args): grad can be implicitly created "
                                f"only for real scalar outputs but got {out.dtype}")
        if out.numel() != 1 or out.ndim != 0:
            raise AutogradError(f"grad_and_value(f)(*args): Expected f(*args) to return a "
                                f"scalar Tensor, got tensor with {out.ndim} dims "
                                f"(shape {list(out.shape)})")
        from ember.ir.ops import OPS_NS as ops
        cotangents = [ops.ones_like(_zero_meta_value(out)) if k == 0 else
                      (ops.zeros_like(_zero_meta_value(m)) if is_differentiable_meta(m) else None)
                      for k, m in enumerate(metas)]
        outputs, grads = _run_joint(call, cotangents)
        _write_back(call, outputs)
        value = _unflatten_out(call, outputs)
        gradient = pytree.unflatten(call.wrt_spec, grads)
        return gradient, value
    return wrapper


def _zero_meta_value(meta):
    """A zero tensor of `meta` made by a factory op (recorded when inside a transform)."""
    from ember.ir.ops import OPS_NS as ops
    return ops.full(list(meta.shape), 0, dtype=meta.dtype)


def grad(func: Callable, argnums=0, has_aux: bool = False) -> Callable:
    """torch.func.grad: the gradient of a scalar-valued func w.r.t. args[argnums]."""
    inner = grad_and_value(func, argnums, has_aux)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        gradient, value = inner(*args, **kwargs)
        return (gradient, value[1]) if has_aux else gradient
    return wrapper


# --- vjp -----------------------------------------------------------------------------------
def vjp(func: Callable, *primals, has_aux: bool = False):
    """torch.func.vjp: (func(*primals), vjp_fn[, aux]); vjp_fn(cotangents) returns one
    gradient per primal (a tuple)."""
    call = _trace_call(func, primals, {}, tuple(range(len(primals))), has_aux, "vjp")
    outputs = call.traced.run(call.traced.graph, call.leaves)
    _write_back(call, outputs)
    value = _unflatten_out(call, outputs)
    metas = call.output_metas()
    n_main = call.n_outputs

    def vjp_fn(*cotangents):
        flat = _flatten_cotangents(cotangents, value[0] if has_aux else value, metas[:n_main])
        extra = [_zero_meta_value(m) if is_differentiable_meta(m) else None
                 for m in metas[n_main:]]
        _, grads = _run_joint(call, flat + extra)
        return _split_like(grads, primals)

    if has_aux:
        return value[0], vjp_fn, value[1]
    return value, vjp_fn


def _split_like(flat: list, primals: tuple) -> tuple:
    """Flat per-leaf values regrouped with the structure of each primal."""
    out, start = [], 0
    for p in primals:
        spec = pytree.flatten(p)[1]
        out.append(pytree.unflatten(spec, flat[start:start + spec.num_leaves]))
        start += spec.num_leaves
    return tuple(out)


def _flatten_cotangents(cotangents: tuple, output, metas: list) -> list:
    given = cotangents[0] if len(cotangents) == 1 else cotangents
    leaves, spec = pytree.flatten(given)
    out_leaves, out_spec = pytree.flatten(output)
    if len(leaves) != len(out_leaves):
        raise AutogradError(f"vjp_fn: expected cotangents with the structure of the output "
                            f"({len(out_leaves)} tensors), got {len(leaves)}")
    flat = []
    for k, (cot, meta) in enumerate(zip(leaves, metas)):
        if tuple(cot.shape) != tuple(meta.shape):
            raise AutogradError(f"vjp_fn: cotangent {k} has shape {list(cot.shape)} but the "
                                f"output has shape {list(meta.shape)}")
        flat.append(cot if is_differentiable_meta(meta) else None)
    return flat


# --- jvp -----------------------------------------------------------------------------------
def jvp(func: Callable, primals, tangents, *, has_aux: bool = False):
    """torch.func.jvp: (func(*primals), J @ tangents[, aux]) via the forward-mode pass."""
    if not isinstance(primals, tuple) or not isinstance(tangents, tuple):
        raise ValueError("jvp(f, primals, tangents): primals and tangents must be tuples")
    if len(primals) != len(tangents):
        raise ValueError(f"jvp: {len(primals)} primals but {len(tangents)} tangents")
    call = _trace_call(func, primals, {}, tuple(range(len(primals))), has_aux, "jvp")
    tangent_leaves = pytree.flatten(list(tangents))[0]
    for k, (p, t) in enumerate(zip(call.leaves, tangent_leaves)):
        if tuple(p.shape) != tuple(t.shape):
            raise ValueError(f"jvp: tangent {k} has shape {list(t.shape)} but its primal "
                             f"has shape {list(p.shape)}")
    # a tangent is taken in its primal's dtype (torch.func.jvp casts it the same way)
    tangent_leaves = [t.to(p.dtype) if t.dtype != p.dtype else t
                      for p, t in zip(call.leaves, tangent_leaves)]
    outputs, tangent_out = _run_jvp(call, tangent_leaves)
    _write_back(call, outputs)
    value = _unflatten_out(call, outputs)
    main_spec = call.traced.out_spec.children[0] if has_aux else call.traced.out_spec
    tangent_value = pytree.unflatten(main_spec, tangent_out[:main_spec.num_leaves])
    if has_aux:
        return value[0], tangent_value, value[1]
    return value, tangent_value


def _run_jvp(call: _Call, tangents: list):
    from ember.passes.forward_ad import jvp_graph
    graph = jvp_graph(call.traced.graph, call.wrt)
    inputs = list(call.leaves) + list(call.traced.captured)
    outputs, tangent_out = call_graph(graph, inputs + list(tangents), call.traced.constants)
    return list(outputs), list(tangent_out)
