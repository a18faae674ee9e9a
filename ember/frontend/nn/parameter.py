"""ember.nn.Parameter and Buffer: tensors a Module registers by attribute assignment.

A Parameter shares its data's storage (no copy), is a leaf, and requires grad by
default. Tensor has __slots__ plus __dict__, so a subclass adds nothing and is
built through `Tensor._make`, the one internal constructor.
"""
from __future__ import annotations

import numpy as np

from ..eager_fast import allow_type
from ..tensor import Tensor
from ..torch_function import _disabled_torch_function_impl


class Parameter(Tensor):
    """torch.nn.Parameter: `Parameter(data=None, requires_grad=True)`."""

    __torch_function__ = _disabled_torch_function_impl      # computes as a plain Tensor

    def __new__(cls, data: Tensor | None = None, requires_grad: bool = True):
        if data is None:
            from ..factories import empty
            data = empty(0)
        if not isinstance(data, Tensor):
            raise TypeError(f"Parameter expects a Tensor, got {type(data).__name__}")
        t = cls._make(data._array, data._storage, data._base)
        t._is_param = True
        if requires_grad:
            t.requires_grad_(True)
        return t

    def __init__(self, data=None, requires_grad: bool = True):
        pass  # all set up in __new__; Tensor.__init__ refuses direct construction

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __reduce_ex__(self, proto):
        if self._storage.device == "meta":      # no data: rebuilt from its geometry
            return (_rebuild_meta_parameter, (Tensor.__reduce_ex__(self, proto)[1],
                                              self.requires_grad))
        return (_rebuild_parameter, (np.array(self._array), self.requires_grad))


# a Parameter computes as a Tensor: binary operators take eager's fast path
allow_type(Parameter)


def _rebuild_parameter(array: np.ndarray, requires_grad: bool) -> Parameter:
    return Parameter(Tensor._from_array(array), requires_grad)


def _rebuild_meta_parameter(geometry: tuple, requires_grad: bool) -> Parameter:
    from ..meta_device import rebuild_meta
    return Parameter(rebuild_meta(*geometry), requires_grad)


class Buffer(Tensor):
    """torch.nn.Buffer: marks a tensor to be registered as a buffer on assignment."""

    __torch_function__ = _disabled_torch_function_impl

    def __new__(cls, data: Tensor | None = None, *, persistent: bool = True):
        if data is None:
            from ..factories import empty
            data = empty(0)
        t = cls._make(data._array, data._storage, data._base)
        t.persistent = persistent
        return t

    def __init__(self, data=None, *, persistent: bool = True):
        pass


def is_lazy(param) -> bool:
    return False
