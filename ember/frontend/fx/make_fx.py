"""make_fx (torch.fx.experimental.proxy_tensor's): trace a function by running it.

`make_fx(f)(*example_args)` returns a GraphModule of the op calls one run of `f` makes
on the example arguments, with their metadata in `meta['val']`: torch records ATen ops,
ember records its registry ops (`sin`, `mul`, `sum`) as `ember.jit.trace` does, so
Python control flow follows the example's path. `decomposition_table` is accepted for
torch's sake and not read (the graph holds ember's ops, decomposed later by the
compiler's passes); `tracing_mode` "real" and "fake" trace the same way here ("fake"
still runs the function: ember has no fake tensors), "symbolic" is refused.
"""
from __future__ import annotations

import functools

from ...ir.errors import EmberError


def make_fx(f, decomposition_table=None, tracing_mode: str = "real",
            _allow_non_fake_inputs: bool = False, *, pre_dispatch: bool = False,
            record_module_stack: bool = False, _allow_fake_constant: bool = False,
            _error_on_data_dependent_ops: bool = True, **_unused):
    if tracing_mode not in ("real", "fake"):
        raise EmberError(f"make_fx: tracing_mode={tracing_mode!r} is not supported (ember "
                         "traces with the example values: 'real' or 'fake'); for dynamic "
                         "shapes use ember.export with dynamic_shapes")

    @functools.wraps(f)
    def traced(*args):
        if getattr(f, "_ember_functionalize", False):
            from .functionalize_graph import CannotFunctionalize
            try:
                return _functionalized(_trace_once(f, args))
            except CannotFunctionalize:
                pass             # the graph keeps its mutations (it computes the same)
        return _trace_once(f, args)
    return traced


def _trace_once(f, args):
    from ..jit import trace
    from ..func.pytree import flatten
    leaves, in_spec = flatten(args)
    if all(spec.kind == "leaf" for spec in in_spec.children):
        gm = trace(f, args)
        _name_inputs_as_torch(gm, f)
        return gm
    return _trace_pytree(f, leaves, in_spec, trace)


def _functionalized(gm):
    """`make_fx(func.functionalize(f))`: the trace with its mutations removed."""
    from .functionalize_graph import functionalize_graph
    functionalize_graph(gm.graph)
    gm.recompile()
    return gm


def _trace_pytree(f, leaves: list, in_spec, trace):
    """Dicts, lists or tuples among the arguments: trace `f` on their leaves (one
    placeholder each, `d_1`, `t_1`, `t_2`: the parameter's name and the leaf's number,
    as torch names them) and give the graph a `_PyTreeCodeGen`, so the GraphModule
    takes and returns the same structures."""
    import inspect
    from ..func.pytree import flatten, unflatten
    from .pytree_codegen import _PyTreeCodeGen, _PyTreeInfo
    out_spec = []

    def flat_f(*flat):
        out, spec = flatten(f(*unflatten(in_spec, flat)))
        out_spec.append(spec)
        return out
    gm = trace(flat_f, tuple(leaves))
    try:
        names = [p.name for p in inspect.signature(f).parameters.values()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        names = []
    names += [f"arg{i}" for i in range(len(names), len(in_spec.children))]
    wanted = [f"{name}_{i}" for name, spec in zip(names, in_spec.children)
              for i in range(1, spec.num_leaves + 1)]
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node in placeholders:               # free the names first: inputs may swap
        node._rename(f"_make_fx_input_{node.name}")
    for node, name in zip(placeholders, wanted):
        node._rename(name)
        node.target = node.name
    gm.graph._codegen = _PyTreeCodeGen(_PyTreeInfo(names[:len(in_spec.children)], in_spec,
                                                   out_spec[-1]))
    gm.recompile()
    return gm


def _name_inputs_as_torch(gm, f) -> None:
    """torch's make_fx names the inputs `<parameter>_1` (`a_1`), and those reached
    through `*args` `arg<i>_1`; passes written against it look nodes up by these."""
    import inspect
    try:
        params = [p for p in inspect.signature(f).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    for node in placeholders:               # free the names first: inputs may swap
        node._rename(f"_make_fx_input_{node.name}")
    for i, node in enumerate(placeholders):
        wanted = f"{params[i].name}_1" if i < len(params) else f"arg{i}_1"
        node._rename(wanted)
        node.target = node.name
    gm.recompile()
