"""torch.distributed.rpc.functions: `async_execution`.

A function decorated with `@async_execution` returns a Future (often chained from
other RPCs with `.then`) instead of a value. Called through rpc_sync, rpc_async or
remote, the callee runs it, and its server thread returns as soon as the function
returns the Future; the result is sent back to the caller (or stored under the RRef)
when the Future completes, so thousands of calls can wait on other workers without
holding the callee's threads. Called locally, it simply returns the Future.

As in PyTorch: on a static or class method, put `@async_execution` below
`@staticmethod` / `@classmethod`. The Future must be completed by `set_result` or
chained from RPC futures (`rpc_async(...).then(...)`); a collective's Work future
completes only when waited, so return it only after waiting.
"""
from __future__ import annotations

import functools


def async_execution(fn):
    """Mark `fn` as returning a Future whose value is the RPC's result."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)

    wrapper._wrapped_async_rpc_function = fn
    return wrapper
