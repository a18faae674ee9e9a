"""Tensor.storage(): torch's (deprecated) TypedStorage, the tensor's whole buffer seen as
elements of its dtype."""
from __future__ import annotations

import warnings

from .device import device as Device


class TypedStorage:
    """The buffer under a tensor and its views, in elements of `dtype`."""

    def __init__(self, storage, dtype) -> None:
        self._untyped_storage, self.dtype = storage, dtype

    @property
    def device(self) -> Device:
        return Device(self._untyped_storage.device)

    def untyped(self):
        return self._untyped_storage

    def size(self) -> int:
        return self._untyped_storage.data.size

    __len__ = size

    def element_size(self) -> int:
        return self._untyped_storage.data.itemsize

    def nbytes(self) -> int:
        return self._untyped_storage.nbytes()

    def data_ptr(self) -> int:
        return self._untyped_storage.data_ptr()

    def tolist(self) -> list:
        return self._untyped_storage.data.tolist()

    def __getitem__(self, index):
        return self._untyped_storage.data[index].tolist()

    def __iter__(self):
        return iter(self.tolist())

    def __repr__(self) -> str:
        values = "\n".join(f" {value}" for value in self.tolist())
        return f"{values}\n[torch.storage.TypedStorage(dtype={self.dtype}, device=" \
               f"{self.device}) of size {self.size()}]"


_warned = [False]


def typed_storage(tensor) -> TypedStorage:
    if not _warned[0]:      # the first call only, as torch warns
        _warned[0] = True
        _warn_removal()
    return TypedStorage(tensor.untyped_storage(), tensor.dtype)


def _warn_removal() -> None:
    warnings.warn("TypedStorage is deprecated. It will be removed in the future and "
                  "UntypedStorage will be the only storage class. This should only matter "
                  "to you if you are using storages directly.  To access UntypedStorage "
                  "directly, use tensor.untyped_storage() instead of tensor.storage()",
                  UserWarning, stacklevel=4)
