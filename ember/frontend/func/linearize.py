"""torch.func.linearize, functionalize and replace_all_batch_norm_modules_.

linearize(func, *primals) returns func(*primals) and a function computing J @ tangents at
those primals (forward mode, via jvp). functionalize's result computes what `func` does,
input mutations included: torch.func.functionalize only changes how a trace records
mutations, so run eagerly it calls `func`; traced by make_fx, the graph records the
out-of-place ops, views written back with scatters and mutated inputs copied back at the
end (frontend/fx/functionalize_graph.py).
"""
from __future__ import annotations

import functools
from typing import Callable

from .autodiff import jvp


def linearize(func: Callable, *primals):
    """(func(*primals), jvp_fn) with jvp_fn(*tangents) == jvp(func, primals, tangents)[1]."""
    output = func(*primals)

    def jvp_fn(*tangents):
        return jvp(func, primals, tangents)[1]
    return output, jvp_fn


def functionalize(func: Callable, *, remove: str = "mutations") -> Callable:
    if remove not in ("mutations", "mutations_and_views"):
        raise RuntimeError(f"functionalize(f, remove='mutations'): received invalid argument "
                           f"for remove={remove}. Valid options are:\n     remove='mutations': "
                           "all inplace and out= operators will be removed from the program, "
                           "and replaced with their out-of-place equivalents.\n     "
                           "remove='mutations_and_views': In addition to the above, all "
                           "aliasing operators {view} will be replaced with their non-aliasing "
                           "counterparts, {view}_copy.\n")

    @functools.wraps(func)
    def functionalized(*args, **kwargs):
        return func(*args, **kwargs)
    # read by make_fx, which records the out-of-place program (frontend/fx/
    # functionalize_graph.py); run eagerly, the function computes what func computes
    functionalized._ember_functionalize = remove
    return functionalized


def replace_all_batch_norm_modules_(root):
    """In place: every batch norm module under `root` stops tracking running statistics
    (running_mean/var None, track_running_stats False), so it normalizes with batch
    statistics, as vmap over a batch of models needs. Returns `root`."""
    from ..nn.modules.normalization import _BatchNorm
    for module in root.modules():
        if isinstance(module, _BatchNorm):
            module.running_mean = None
            module.running_var = None
            module.num_batches_tracked = None
            module.track_running_stats = False
    return root
