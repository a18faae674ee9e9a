"""torch._dynamo._trace_wrapped_higher_order_op's mode that libraries import.

`TransformGetItemToIndex` makes `A[i]` with a 0-d integer tensor `i` index with the
tensor instead of turning it into a Python int: under `vmap` the index is a batched
tensor whose `.item()` has no single value (attention mask builders vmap a function that
indexes a padding mask by query position).
"""
from __future__ import annotations

from ..frontend.overrides import TorchFunctionMode


class TransformGetItemToIndex(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        import ember
        kwargs = kwargs or {}
        if func is ember.Tensor.__getitem__:
            tensor, index = args[0], args[1]
            items = index if isinstance(index, tuple) else (index,)
            if all(isinstance(item, (ember.Tensor, int)) and not isinstance(item, bool)
                   for item in items):
                items = tuple(ember.tensor(item, dtype=ember.int64, device=tensor.device)
                              if isinstance(item, int) else item for item in items)
                return func(tensor, items, **kwargs)
        return func(*args, **kwargs)
