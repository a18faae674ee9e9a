"""ember.save / ember.load: tensors, state dicts and nested containers of them, in a
pickle-free file (torch.save/torch.load's interface, not its pickle format).

The file is one safetensors blob: the tensors' data under the names "0", "1", ...,
and in its string metadata a JSON record of the saved object's structure:

    {"format": "ember.save", "version": 1,
     "object": {"dict": [[{"value": "weight"}, {"tensor": "0"}], ...]},
     "tensors": {"0": {"dtype": "float32", "device": "cpu", "requires_grad": false,
                       "parameter": false}}}

By default loading never runs code from the file, so a file from anyone is safe to
load (torch.load's weights_only=True default). The data format holds: Tensors (and
Parameters, kept as Parameters with their requires_grad), dicts (OrderedDict
and Counter too) with str/int/float/bool/None keys, lists, tuples, ember.Size, dtypes, devices, and
Python scalars/strings/None, and quantized tensors (the integer representation, with
their scale and zero point per tensor or per channel). Any other object (a whole
nn.Module, an argparse.Namespace inside a checkpoint) is pickled into the record;
ember.load refuses it unless called with weights_only=False, as torch.load does, or
unless every global it names is allowlisted with `add_safe_globals`/`safe_globals`
(torch.serialization's API; a restricted unpickler then finds only those). A CPU
tensor is saved as a view of its storage: each storage once (under "s0", "s1", ...),
each tensor's record holding its offset, shape and strides, so tensors that shared a
storage (views, slices, a tensor and its transpose) share it again after loading, with
their strides (torch.save's behaviour); other tensors (quantized, meta, other devices)
are stored contiguous under their own key. A tensor object saved twice is stored once
and loads as one object.
bfloat16 and complex128, which safetensors does not store, are stored as uint16
and as float64 pairs and restored exactly.

`f` is a path (str or os.PathLike) or a binary file object (`io.BytesIO()`, an open
file). `map_location` is accepted as torch.load accepts it: a device or device
string (every tensor goes there), a dict {saved device: device}, or a function
(storage, saved location) returning the storage where it goes (None: where it was
saved from); by default
tensors return to the device they were saved from.
"""
from __future__ import annotations

import collections
import importlib
import json
import os
import pickle
import struct

import numpy as np

from ..ir.dtypes import DType, dtype_from_name
from ..ir.errors import ArtifactError, EmberError
from ..ir.meta import sparse_coo

FORMAT = "ember.save"
VERSION = 2             # 2: CPU tensors are views of storages saved once (1 still loads)


class SaveError(EmberError, TypeError):
    """An object ember.save cannot store."""


class MixedViewError(EmberError, RuntimeError):
    """One storage viewed as two dtypes in one save (torch.save refuses it too: the
    views could not share their data again after loading)."""


# --- saving ------------------------------------------------------------------------------------
def save(obj, f, *args, **kwargs) -> None:
    """Save `obj` (tensors, state dicts, nested dicts/lists/tuples of them) to `f`."""
    from safetensors.numpy import save as to_bytes
    arrays, tensors = {}, {}
    record = {"format": FORMAT, "version": VERSION,
              "object": _encode(obj, arrays, tensors, {}), "tensors": tensors}
    data = to_bytes(arrays, metadata={"ember": json.dumps(record)})
    if _is_path(f):
        with open(f, "wb") as out:
            out.write(data)
    else:
        f.write(data)


def _encode(obj, arrays: dict, tensors: dict, seen: dict):
    from .device import device as Device
    from .nn.parameter import Parameter
    from .tensor import Size, Tensor
    if isinstance(obj, Tensor) and _users_subclass(obj):
        return {"pickle": _pickled(obj)}    # its class and attributes (as torch.save keeps)
    if isinstance(obj, Tensor):
        key = seen.get(id(obj))
        if key is None:
            _check_one_dtype_per_storage(obj, seen)
            key = seen[id(obj)] = str(len(tensors))
            view = None if obj.is_quantized or obj.is_meta else _storage_view(obj, arrays, seen)
            if obj.is_quantized:
                arrays[key], stored = _storable(obj.int_repr().numpy())
            elif obj.is_meta:                   # no data: the record keeps its shape
                arrays[key], stored = np.zeros(0, np.uint8), "meta"
            elif view is not None:
                stored = view.pop("stored")
            else:
                arrays[key], stored = _storable(obj.detach().cpu().numpy())
            tensors[key] = {"dtype": obj.dtype.name, "stored": stored,
                            "device": str(obj.device), "requires_grad": obj.requires_grad,
                            "parameter": isinstance(obj, Parameter), **(view or {})}
            if obj.is_meta:
                tensors[key]["shape"] = list(obj.shape)
            if obj.is_quantized:
                tensors[key]["qparams"] = _encode_qparams(obj, key, arrays)
        return {"tensor": key}
    if isinstance(obj, DType):
        return {"dtype": obj.name}
    if isinstance(obj, Device):         # a torch.device in a checkpoint loads weights-only
        return {"device": str(obj)}
    if isinstance(obj, Size):
        return {"size": list(obj)}
    if getattr(obj, "layout", None) is sparse_coo and not isinstance(obj, Tensor):
        # a sparse COO tensor: its parts are tensors, so it loads weights-only, as torch's
        return {"sparse_coo": [_encode(part, arrays, tensors, seen) for part in (
            obj._indices(), obj._values(), list(obj.shape), obj.is_coalesced())]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return {"value": _scalar(obj)}
    if isinstance(obj, dict):
        items = [[_encode(k, arrays, tensors, seen), _encode(v, arrays, tensors, seen)]
                 for k, v in obj.items()]
        return {_mapping_kind(obj): items}
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        kind = "list" if isinstance(obj, list) else "tuple"
        return {kind: [_encode(v, arrays, tensors, seen) for v in obj]}
    return {"pickle": _pickled(obj)}


def _check_one_dtype_per_storage(obj, seen: dict) -> None:
    storage = getattr(obj, "_storage", None)
    if storage is None or obj.is_quantized or obj.is_meta:
        return
    first = seen.setdefault(("dtype", id(storage)), obj.dtype)
    if first != obj.dtype:
        raise MixedViewError("Cannot save multiple tensors or storages that view the same "
                             f"data as different types (ember.save: {first} and "
                             f"{obj.dtype} views of one storage)")


# the mappings the data format keeps by kind (a Counter is what MultiStepLR's state_dict
# holds; torch's weights-only load rebuilds it as a Counter too); other dict subclasses
# load as dicts
_MAPPING_KINDS = {"dict": dict, "ordered_dict": collections.OrderedDict,
                  "counter": lambda pairs: collections.Counter(dict(pairs))}


def _mapping_kind(obj: dict) -> str:
    if isinstance(obj, collections.OrderedDict):
        return "ordered_dict"
    return "counter" if isinstance(obj, collections.Counter) else "dict"


def _storage_view(obj, arrays: dict, seen: dict) -> dict | None:
    """A CPU tensor as a view of its storage, stored once per file under "s<n>": its
    record says where in the storage it lies (offset, shape, strides in elements), so
    tensors that shared a storage (views, slices) share it again after loading, with
    their strides, as torch.save keeps them. None: saved on its own (another device, a
    storage of another dtype, no elements)."""
    arr, storage = obj._array, obj._storage
    data = getattr(storage, "data", None)
    if storage.device != "cpu" or type(arr) is not np.ndarray or type(data) is not np.ndarray \
            or data.dtype != arr.dtype or data.ndim != 1 or arr.size == 0 or \
            not data.flags.c_contiguous:
        return None
    skey = seen.get(("storage", id(storage)))
    if skey is None:
        count = sum(1 for k in seen if type(k) is tuple and k[0] == "storage")
        skey = seen[("storage", id(storage))] = f"s{count}"
        arrays[skey], _ = _storable(data)
    offset = (arr.ctypes.data - data.ctypes.data) // arr.itemsize
    return {"storage": skey, "offset": int(offset), "shape": list(arr.shape),
            "stride": [st // arr.itemsize for st in arr.strides],
            "stored": _storable(data[:1])[1]}


def _users_subclass(obj) -> bool:
    """A user's Tensor subclass (not Parameter, Buffer or a quantized tensor), which
    pickles as its class (Tensor.__reduce_ex__)."""
    from .tensor import Tensor
    cls = type(obj)
    return cls is not Tensor and cls.__module__.split(".")[0] != "ember" and \
        cls.__reduce_ex__ is Tensor.__reduce_ex__ and not obj.is_quantized


def _pickled(obj) -> str:
    """An object outside the data format (a whole nn.Module, an argparse.Namespace in a
    checkpoint) as base64 pickle bytes; ember.load unpickles it only when called with
    weights_only=False, as torch.load does."""
    import base64
    import pickle
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as err:
        raise SaveError(f"ember.save: cannot save an object of type {type(obj).__name__}: "
                        f"it is not tensors, containers, numbers or strings, and it cannot "
                        f"be pickled ({err})") from None
    return base64.b64encode(data).decode("ascii")


class EmptyFileError(ArtifactError, EOFError):
    """ember.load of an empty file or stream (torch.load raises EOFError)."""


class WeightsOnlyError(ArtifactError, pickle.UnpicklingError):
    """ember.load met a pickled object while loading weights only."""


def _encode_qparams(qtensor, key: str, arrays: dict) -> dict:
    """A quantized tensor's scale and zero point: numbers per tensor (JSON keeps a
    float's repr exactly), arrays "<key>.scales"/"<key>.zero_points" per channel."""
    if qtensor._qaxis is None:
        return {"scale": float(qtensor._qscale), "zero_point": int(qtensor._qzero_point)}
    arrays[f"{key}.scales"] = np.ascontiguousarray(qtensor._qscale, dtype=np.float64)
    arrays[f"{key}.zero_points"] = np.ascontiguousarray(qtensor._qzero_point, dtype=np.int64)
    return {"axis": int(qtensor._qaxis)}


def _scalar(value):
    """JSON has no inf/nan: floats that are not finite go as strings."""
    if isinstance(value, float) and not np.isfinite(value):
        return {"float": repr(value)}
    return value


def _storable(array: np.ndarray) -> tuple[np.ndarray, str]:
    """The array as safetensors can store it, and the stored dtype's name."""
    array = np.array(array, order="C")         # a 0-d array stays 0-d
    if array.dtype == np.complex128:
        array = array.view(np.float64).reshape(*array.shape, 2)
    elif array.dtype.name == "bfloat16":
        array = array.view(np.uint16)
    return array, array.dtype.name


# --- loading -----------------------------------------------------------------------------------
def load(f, map_location=None, *, weights_only=None, mmap=None, **kwargs):
    """Load what `save` wrote. Pickled objects in it load only with weights_only=False
    (None means True, torch.load's default); `mmap` is accepted: the file is read whole."""
    from safetensors.numpy import load as from_bytes
    name = os.fspath(f) if _is_path(f) else getattr(f, "name", "<file object>")
    data = _read(f, name)
    if not data:
        raise EmptyFileError(f"{name}: ember.load found nothing to read (an empty file, or a "
                             "stream already read to its end)")
    from .torch_checkpoint import is_torch_zip, load_torch_zip
    if is_torch_zip(data):          # a checkpoint torch.save wrote
        return load_torch_zip(data, name, _placement(map_location), weights_only is False)
    try:
        record = json.loads(_metadata(data)["ember"])
        arrays = from_bytes(data)
    except (ArtifactError, KeyError, ValueError, TypeError) as err:
        raise ArtifactError(f"{name}: not a file written by ember.save ({err})") from None
    except Exception as err:  # noqa: BLE001 - safetensors' SafetensorError is a bare Exception
        raise ArtifactError(f"{name}: not a valid ember.save file ({err})") from None
    if record.get("format") != FORMAT or record.get("version", 0) > VERSION:
        raise ArtifactError(f"{name}: written by an unknown format or a newer version "
                            f"({record.get('format')!r} version {record.get('version')!r})")
    place = _placement(map_location)
    storages: dict = {}
    tensors = {key: _quantized_tensor(arrays, key, info) if "qparams" in info
               else _view_tensor(arrays, storages, info, place) if "storage" in info
               else _tensor(arrays[key], info, place)
               for key, info in record["tensors"].items()}
    return _decode(record["object"], tensors, name, weights_only is False)


def _read(f, name: str) -> bytes:
    if _is_path(f):             # a missing file raises FileNotFoundError, as in torch
        with open(f, "rb") as src:
            return src.read()
    try:
        return _read_one_blob(f)
    except OSError as err:
        raise ArtifactError(f"{name}: cannot read: {err.strerror or err}") from None


def _read_one_blob(f) -> bytes:
    """One saved object from a file object's current position, and no further: the
    header says how long the blob is, so whatever follows it (another save, a pickle
    written after it) is left for the next read, as torch.load leaves it."""
    prefix = f.read(8)
    if len(prefix) < 8:
        return prefix
    (length,) = struct.unpack("<Q", prefix)
    header = f.read(length)
    try:
        entries = json.loads(header)
        size = max((entry["data_offsets"][1] for key, entry in entries.items()
                    if key != "__metadata__"), default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError):
        return prefix + header + f.read()      # not ember's: the parser says why
    return prefix + header + f.read(size)


def _metadata(data: bytes) -> dict:
    """The safetensors header's __metadata__ (the header is 8 bytes of length + JSON)."""
    if len(data) < 8:
        raise ArtifactError("the file is too short to hold a header")
    (length,) = struct.unpack("<Q", data[:8])
    if length > len(data) - 8:
        raise ArtifactError("the header is longer than the file")
    return json.loads(data[8:8 + length]).get("__metadata__") or {}


def _tensor(array: np.ndarray, info: dict, place):
    dtype = dtype_from_name(info["dtype"])
    if info["stored"] == "meta":                     # a meta tensor: shape and dtype only
        from .factories import empty
        tensor = empty(info["shape"], dtype=dtype, device=place(info["device"]))
        return _finish_loaded(tensor, info)
    tensor = _as_tensor(_restored(array, info, dtype), dtype)
    device = place(info["device"], tensor.untyped_storage())
    if device != "cpu":
        tensor = tensor.to(device)
    return _finish_loaded(tensor, info)


def _restored(array: np.ndarray, info: dict, dtype: DType) -> np.ndarray:
    """A stored array back in its dtype (complex128 pairs, bfloat16 bits)."""
    if info["stored"] != dtype.np_dtype.name:
        array = np.ascontiguousarray(array).view(dtype.np_dtype)
        if dtype.is_complex:
            array = array.reshape(array.shape[:-1])
    return array


def _view_tensor(arrays: dict, storages: dict, info: dict, place):
    """A tensor saved as a view of a storage (`_storage_view`): one Storage per saved
    storage, each tensor over it with its offset and strides."""
    from .tensor import Storage, Tensor
    dtype = dtype_from_name(info["dtype"])
    storage = storages.get(info["storage"])
    if storage is None:
        data = np.array(_restored(arrays[info["storage"]], info, dtype)).reshape(-1)
        storage = storages[info["storage"]] = Storage(data)
    itemsize = storage.data.itemsize
    arr = np.lib.stride_tricks.as_strided(storage.data[info["offset"]:], tuple(info["shape"]),
                                          tuple(st * itemsize for st in info["stride"]))
    tensor = Tensor._make(arr, storage)
    device = place(info["device"], storage)
    if device != "cpu":
        tensor = tensor.to(device)
    return _finish_loaded(tensor, info)


def _finish_loaded(tensor, info: dict):
    from .nn.parameter import Parameter
    if info["parameter"]:
        return Parameter(tensor, requires_grad=info["requires_grad"])
    return tensor.requires_grad_(info["requires_grad"]) if info["requires_grad"] else tensor


def _quantized_tensor(arrays: dict, key: str, info: dict):
    from ..ir.quantized import QuantizedArray
    from .quantized import QuantizedTensor
    dtype, qparams = dtype_from_name(info["dtype"]), info["qparams"]
    if "axis" in qparams:
        scale, zero_point = arrays[f"{key}.scales"], arrays[f"{key}.zero_points"]
    else:
        scale, zero_point = qparams["scale"], qparams["zero_point"]
    return QuantizedTensor._wrap(QuantizedArray(np.array(arrays[key]), dtype, scale,
                                                zero_point, qparams.get("axis")))


def _as_tensor(array: np.ndarray, dtype: DType):
    from .factories import tensor
    return tensor(np.array(array), dtype=dtype)


def _placement(map_location):
    """(saved device string, the loaded CPU storage) -> device string to load onto."""
    if map_location is None:
        return lambda saved, storage=None: saved
    if isinstance(map_location, dict):
        mapping = {str(k): str(v) for k, v in map_location.items()}
        return lambda saved, storage=None: mapping.get(saved, saved)
    if isinstance(map_location, str) or type(map_location).__name__ == "device":
        return lambda saved, storage=None: str(map_location)
    if callable(map_location):
        return lambda saved, storage=None: _called_placement(map_location, saved, storage)
    raise TypeError(f"ember.load: map_location must be a device, a device string, a dict "
                    f"of them or a function (storage, location), not "
                    f"{type(map_location).__name__}")


def _called_placement(map_location, saved: str, storage) -> str:
    """torch.load's function form: map_location(storage, location) returns the storage
    where it should live (`lambda storage, loc: storage` keeps it on the CPU), or None
    for the saved device."""
    placed = map_location(storage, saved)
    return saved if placed is None else str(getattr(placed, "device", "cpu"))


def _decode(node: dict, tensors: dict, name: str = "<file>", unpickle: bool = False):
    from .tensor import Size
    (kind, value), = node.items()
    if kind == "tensor":
        return tensors[value]
    if kind == "pickle":
        return _unpickled(value, name, unpickle)
    if kind == "value":
        return float(value["float"]) if isinstance(value, dict) else value
    if kind == "dtype":
        return dtype_from_name(value)
    if kind == "device":
        from .device import device
        return device(value)
    if kind == "size":
        return Size(value)
    if kind == "sparse_coo":
        from .sparse_coo import SparseCOOTensor
        indices, values, size, coalesced = (_decode(v, tensors, name, unpickle)
                                            for v in value)
        return SparseCOOTensor(indices, values, size, coalesced)
    if kind in _MAPPING_KINDS:
        pairs = ((_decode(k, tensors, name, unpickle), _decode(v, tensors, name, unpickle))
                 for k, v in value)
        return _MAPPING_KINDS[kind](pairs)
    if kind in ("list", "tuple"):
        items = [_decode(v, tensors, name, unpickle) for v in value]
        return items if kind == "list" else tuple(items)
    raise ArtifactError(f"ember.load: unknown entry {kind!r} in the file's structure record")


# torch.serialization's allowlist: globals a weights-only load may unpickle (classes a
# checkpoint holds beside its tensors, e.g. an argparse.Namespace or a dataclass of settings)
_SAFE_GLOBALS: list = []
# builtins whose reconstruction runs no user code; torch's weights-only unpickler allows them too
_BUILTIN_SAFE = {("collections", "OrderedDict"), ("builtins", "set"),
                 ("builtins", "complex"), ("builtins", "bytearray"), ("builtins", "tuple"),
                 ("builtins", "list"),
                 ("builtins", "dict"), ("builtins", "int"), ("builtins", "float"),
                 ("builtins", "bool"), ("builtins", "str"), ("builtins", "bytes"),
                 ("copyreg", "_reconstructor"), ("builtins", "object")}


def _global_name(obj) -> tuple[str, str]:
    if isinstance(obj, tuple):          # (object, "module.qualname"), torch's explicit form
        obj, full = obj
        module, _, name = full.rpartition(".")
        return module, name
    return obj.__module__, obj.__qualname__


def add_safe_globals(safe_globals: list) -> None:
    """Allow these classes/functions (or (object, "module.name") pairs) in weights-only
    loads, for this process (torch.serialization.add_safe_globals)."""
    _SAFE_GLOBALS.extend(safe_globals)


def get_safe_globals() -> list:
    return list(_SAFE_GLOBALS)


def clear_safe_globals() -> None:
    _SAFE_GLOBALS.clear()


class safe_globals:  # noqa: N801 - torch.serialization.safe_globals is a lower-case context manager
    """Within the block, weights-only loads also allow these globals."""

    def __init__(self, safe_globals: list):
        self.safe_globals = list(safe_globals)

    def __enter__(self):
        self._saved = get_safe_globals()
        add_safe_globals(self.safe_globals)

    def __exit__(self, *exc):
        _SAFE_GLOBALS[:] = self._saved


def get_unsafe_globals_in_checkpoint(f) -> list[str]:
    """The "module.name" globals a checkpoint's pickled objects need that a weights-only
    load would refuse (those not allowlisted), read without unpickling anything."""
    import base64
    import pickletools
    name = os.fspath(f) if _is_path(f) else getattr(f, "name", "<file object>")
    record = json.loads(_metadata(_read(f, name))["ember"])
    allowed = {_global_name(g) for g in _SAFE_GLOBALS} | _BUILTIN_SAFE
    found: list[str] = []
    for data in _pickled_entries(record["object"]):
        strings: list[str] = []
        for opcode, arg, _ in pickletools.genops(base64.b64decode(data)):
            if opcode.name == "GLOBAL":
                module, _, qualname = arg.partition(" ")
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                module, qualname = strings[-2], strings[-1]
            else:
                if isinstance(arg, str):
                    strings.append(arg)
                continue
            full = f"{module}.{qualname}"
            if (module, qualname) not in allowed and full not in found:
                found.append(full)
    return found


def _pickled_entries(node):
    (kind, value), = node.items()
    if kind == "pickle":
        yield value
    elif kind in _MAPPING_KINDS:
        for k, v in value:
            yield from _pickled_entries(k)
            yield from _pickled_entries(v)
    elif kind in ("list", "tuple"):
        for v in value:
            yield from _pickled_entries(v)


class _WeightsOnlyUnpickler(pickle.Unpickler):
    """Finds only allowlisted globals: unpickling can then call no other code."""

    def __init__(self, file, name: str):
        super().__init__(file)
        self.name = name

    def find_class(self, module: str, name: str):
        return weights_only_global(module, name, self.name)


def weights_only_global(module: str, name: str, file_name: str):
    """The global a weights-only load may use (allowlisted, or a safe builtin); any
    other is refused with torch's message."""
    allowed = {_global_name(g): (g[0] if isinstance(g, tuple) else g) for g in _SAFE_GLOBALS}
    if (module, name) in allowed:
        return allowed[(module, name)]
    if (module, name) in _BUILTIN_SAFE:
        return getattr(importlib.import_module(module), name)
    raise WeightsOnlyError(
            f"{file_name}: Weights only load failed: Unsupported global: GLOBAL {module}.{name} "
            f"was not an allowed global by default. If you trust the file's source, allow it "
            f"with `ember.serialization.add_safe_globals([{name}])` or the "
            f"`ember.serialization.safe_globals([{name}])` context manager, or load with "
            f"ember.load(f, weights_only=False) (unpickling then runs code from the file)")


def _unpickled(data: str, name: str, allowed: bool):
    import base64
    import io
    raw = base64.b64decode(data)
    if allowed:
        return pickle.loads(raw)
    return _WeightsOnlyUnpickler(io.BytesIO(raw), name).load()


def _is_path(f) -> bool:
    return isinstance(f, (str, bytes, os.PathLike))

