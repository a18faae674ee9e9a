"""ember._higher_order_ops: torch._higher_order_ops' control flow (`cond`, `map`,
`while_loop`), the names `functorch.experimental.control_flow` also exports, and
`associative_scan` (associative_scan.py).

`cond` and `while_loop` are ember.cond / ember.while_loop; `map(f, xs, *args)` runs
`f` on each slice of `xs` along its first dimension and stacks the results
(ember/frontend/control_flow.py). `ember._higher_order_ops.cond` and `.while_loop` are
also modules holding them, for `from torch._higher_order_ops.while_loop import while_loop`.
"""
# the submodules give torch's import paths; importing them here leaves the package's
# `cond` / `while_loop` attributes the functions, as in torch
from .associative_scan import associative_scan  # noqa: F401
from .cond import cond  # noqa: F401
from .while_loop import while_loop  # noqa: F401
from ..frontend.control_flow import map  # noqa: F401, A004 - torch's name

__all__ = ["associative_scan", "cond", "map", "while_loop"]
