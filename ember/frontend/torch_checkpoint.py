"""ember.load of a file torch.save wrote: a user's PyTorch checkpoint (`model.pt` with
a state_dict, a training checkpoint of state_dicts and numbers) loads into ember
without torch.

torch.save's format is a zip: `<archive>/data.pkl`, a pickle whose tensors refer to
storages by key (pickle persistent ids), each storage's bytes in `<archive>/data/<key>`,
and `<archive>/byteorder`. The unpickler here runs no code from the file: it finds only
the globals a checkpoint of tensors needs (torch's tensor / parameter rebuild
functions, the storage types, dtypes, devices), as torch.load's weights-only unpickler
allows them; other globals follow ember.load's weights-only rules (safe builtins, the
`add_safe_globals` allowlist, everything with weights_only=False). Any other torch
global (a whole pickled torch nn.Module, a quantized tensor) is refused, naming it.
Each storage is read once and tensors are views of it, so tensors that shared a
storage share it again (ember.save's rule).
"""
from __future__ import annotations

import collections
import io
import pickle
import zipfile

import numpy as np

from ..ir.dtypes import dtype_from_name
from ..ir.errors import ArtifactError

ZIP_MAGIC = b"PK\x03\x04"

# torch's typed storage classes, by the dtype their bytes hold
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "DoubleStorage": "float64", "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "ComplexFloatStorage": "complex64",
    "ComplexDoubleStorage": "complex128"}

_DTYPES = {"float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8",
           "uint8", "bool", "complex64", "complex128", "float", "double", "half", "long",
           "int", "short"}


class _StorageType:
    def __init__(self, dtype_name: str):
        self.dtype = dtype_from_name(dtype_name)


def is_torch_zip(data: bytes) -> bool:
    return data[:4] == ZIP_MAGIC


def load_torch_zip(data: bytes, name: str, place, unpickle: bool = False):
    """The object a torch.save zip holds; `place(saved_device, storage)` gives each
    storage's device (ember.load's map_location). Globals other than torch's are
    imported only with `unpickle` (weights_only=False) or when allowlisted."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        pickle_name = next((n for n in sorted(names) if n.endswith("data.pkl")), None)
        if pickle_name is None:
            raise ArtifactError(f"{name}: a zip file without data.pkl: not written by "
                                "torch.save or ember.save")
        prefix = pickle_name[:-len("data.pkl")]
        byteorder = archive.read(prefix + "byteorder").decode() \
            if prefix + "byteorder" in names else "little"
        reader = _CheckpointUnpickler(archive.read(pickle_name), archive, prefix, byteorder,
                                      place, name, unpickle)
        return reader.load()


class _CheckpointUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive, prefix: str, byteorder: str, place, name: str,
                 unpickle: bool):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.place, self.name = archive, prefix, place, name
        self.unpickle = unpickle
        self.order = "<" if byteorder == "little" else ">"
        self.storages: dict = {}

    def find_class(self, module: str, qualname: str):
        found = self._allowed(module, qualname)
        if found is not None:
            return found
        if module.split(".")[0] != "torch":      # the user's own classes, numpy scalars
            if self.unpickle:
                return super().find_class(module, qualname)
            from .serialization import weights_only_global
            return weights_only_global(module, qualname, self.name)
        from .serialization import WeightsOnlyError
        raise WeightsOnlyError(
            f"{self.name}: ember.load reads the tensors, state dicts and containers of a "
            f"file torch.save wrote; this one holds {module}.{qualname}, which only torch "
            "can rebuild (a whole pickled model or another torch object): save its "
            "state_dict() with torch and load that")

    def _allowed(self, module: str, qualname: str):
        from .device import device
        from .nn.parameter import Parameter
        from .tensor import Size, Tensor
        table = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("collections", "Counter"): collections.Counter,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor,
            ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
            ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
            ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
            ("torch", "Tensor"): Tensor, ("torch.nn.parameter", "Parameter"): Parameter,
            ("torch", "device"): device, ("torch", "Size"): Size,
        }
        if (module, qualname) in table:
            return table[module, qualname]
        if module == "torch" and qualname in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[qualname])
        if module == "torch" and qualname in _DTYPES:
            return dtype_from_name(qualname)
        return None

    def persistent_load(self, pid):
        kind, storage_type, key, location, numel = pid
        if kind != "storage":
            raise ArtifactError(f"{self.name}: unknown persistent record {kind!r}")
        if key not in self.storages:
            from .tensor import Storage
            dtype = storage_type.dtype.np_dtype.newbyteorder(self.order)
            raw = self.archive.read(f"{self.prefix}data/{key}")
            data = np.frombuffer(raw, dtype=dtype, count=numel).astype(
                storage_type.dtype.np_dtype)
            self.storages[key] = (Storage(data), str(location))
        return self.storages[key]

    def _rebuild_tensor(self, storage, offset, size, stride, requires_grad=False,
                        backward_hooks=None, metadata=None):
        from .tensor import Tensor
        storage, location = storage
        itemsize = storage.data.itemsize
        array = np.lib.stride_tricks.as_strided(storage.data[offset:], tuple(size),
                                                tuple(s * itemsize for s in stride))
        tensor = Tensor._make(array, storage)
        device = self.place(location, storage)
        if device != "cpu":
            tensor = tensor.to(device)
        if requires_grad:
            tensor.requires_grad_(True)
        return tensor


def _rebuild_parameter(data, requires_grad, backward_hooks, state=None):
    from .nn.parameter import Parameter
    return Parameter(data, requires_grad=requires_grad)


def _rebuild_from_type(func, new_type, args, state):
    """torch's rebuild of a Tensor subclass: only Tensor and Parameter reach here."""
    return func(*args)
