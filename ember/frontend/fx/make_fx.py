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
        return trace(f, args)
    return traced
