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
        from ..jit import trace
        gm = trace(f, args)
        _name_inputs_as_torch(gm, f)
        return gm
    return traced


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
