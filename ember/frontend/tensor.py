"""ember.Tensor: a strided view over a numpy-backed storage, plus autograd state.

Invariants:
- on the CPU, `_storage.data` is a 1-D numpy array; `_array` is a numpy view into it
  whose shape/strides are the tensor's (strides never negative, as in PyTorch);
- on CUDA, `_storage` is a `devices.DeviceStorage` (an allocator block) and `_array`
  a `devices.DeviceArray`: the same geometry attributes, no host values (`_values()`
  copies them to the host);
- every view of a storage shares its `Storage`, and so its version counter;
- `_base` is the tensor a view was taken from (None for non-views).

Ops are not methods here: `install_op_methods` attaches one method per registry
op marked `method=True`, so every Tensor method passes through `ir.dispatch`.
"""
from __future__ import annotations

import numbers
import warnings

import numpy as np

from ..ir import dtypes
from ..ir.dtypes import DType
from ..ir.errors import DTypeError, ShapeError, AutogradError
from ..ir.ops.shape import flat_storage
from .grad_state import STATE as _GRAD_STATE
from ..ir.meta import strided
from ..ir.meta import (MemoryFormat, contiguous_format, channels_last, preserve_format,
                       channels_last_3d,
                       is_contiguous_for, suggest_memory_format, strides_for)


# Counts reads of tensor *values* on the host (`_values`, `numpy`, `__array__`): eager
# dispatch caches a meta rule's result only when the rule read no values.
VALUE_READS = [0]


class Size(tuple):
    """torch.Size: a tuple of ints that prints as `ember.Size([2, 3])`."""

    def numel(self) -> int:
        n = 1
        for s in self:
            n *= s
        return n

    def __repr__(self) -> str:
        return f"ember.Size({list(self)})"

    def __getitem__(self, item):
        out = tuple.__getitem__(self, item)
        return Size(out) if isinstance(item, slice) else out

    # concatenation and repetition stay Sizes, as torch.Size's
    def __add__(self, other):
        out = tuple.__add__(self, other)
        return out if out is NotImplemented else Size(out)

    def __radd__(self, other):
        if not isinstance(other, tuple):
            return NotImplemented
        return Size(other + tuple(self))

    def __mul__(self, n):
        out = tuple.__mul__(self, n)
        return out if out is NotImplemented else Size(out)

    __rmul__ = __mul__


class Storage:
    """A flat buffer and its version counter (bumped by every in-place write).
    `inference`: allocated inside inference_mode, which makes every tensor over it (views
    included) an inference tensor, as in torch."""
    __slots__ = ("data", "version", "device", "inference")

    def __init__(self, data: np.ndarray, device: str = "cpu"):
        self.data = data
        self.version = 0
        self.device = device
        self.inference = _GRAD_STATE.inference

    def nbytes(self) -> int:
        return self.data.nbytes

    # torch.UntypedStorage's view of it: bytes
    def size(self) -> int:
        return self.data.nbytes

    __len__ = size

    def element_size(self) -> int:
        return 1

    def data_ptr(self) -> int:
        return self.data.__array_interface__["data"][0]

    def tolist(self) -> list:
        return np.ascontiguousarray(self.data).view(np.uint8).tolist()


def _layout_array(arr: np.ndarray, memory_format: MemoryFormat) -> np.ndarray:
    """A fresh, owned array equal to `arr`, laid out in `memory_format`."""
    if (memory_format is channels_last and arr.ndim == 4) or \
            (memory_format is channels_last_3d and arr.ndim == 5):
        order = (0,) + tuple(range(2, arr.ndim)) + (1,)        # NHWC / NDHWC
        last = np.empty(tuple(arr.shape[d] for d in order), arr.dtype)
        np.copyto(last, arr.transpose(order))
        # PyTorch's strides exactly, size-1 dims included
        strides = tuple(s * arr.itemsize for s in strides_for(arr.shape, memory_format))
        return np.lib.stride_tricks.as_strided(last, arr.shape, strides)
    out = np.empty(arr.shape, arr.dtype)
    np.copyto(out, arr)
    return out


def _rebuild_subclass(cls, plain: tuple, state: dict):
    """Unpickling a Tensor subclass instance (torch's _rebuild_from_type_v2)."""
    rebuild, args = plain
    t = rebuild(*args)
    out = Tensor._make_subclass(cls, t, t.requires_grad)
    out.__dict__.update(state)
    return out


_ENGINE: list = []                   # autograd.engine, once loaded (it imports this module)


def _engine():
    from .autograd import engine
    _ENGINE.append(engine)
    return engine


_WARNED_FLOAT_OF_GRAD: list = []     # torch says it once per process (TORCH_WARN_ONCE)

class Tensor:
    __slots__ = ("_array", "_storage", "_base", "requires_grad", "_grad", "grad_fn",
                 "_output_nr", "_grad_accumulator", "_hooks", "_retains_grad",
                 "_is_param", "__weakref__", "__dict__")

    # fx's Proxy overrides these; tracing code checks it
    _ember_is_tensor = True
    # NumPy's scalars and arrays defer their operators to ours (torch's value), so
    # `np.float64(2) * t` is a tensor
    __array_priority__ = 1000

    def __new__(cls, *args, **kwargs):
        """torch.Tensor's legacy constructor: `Tensor([1, 2])` (data, default float dtype),
        `Tensor(2, 3)` (sizes), `Tensor()`; a Tensor argument is aliased, which is what a
        subclass's `super().__new__(cls, data)` relies on. The result is a `cls`."""
        if len(args) == 1 and isinstance(args[0], Tensor) and not kwargs:
            data = args[0]
        else:
            from .aliases import legacy_tensor
            data = legacy_tensor(*args, **kwargs)
        return Tensor._make_subclass(cls, data)

    def __init__(self, *args, **kwargs):
        pass                               # everything happens in __new__ (a subclass's too)

    @staticmethod
    def _make_subclass(cls, data: "Tensor", require_grad: bool = False, *_args, **_kwargs):
        """torch.Tensor._make_subclass: a `cls` over `data`'s memory, detached, a leaf
        (what a subclass's __new__ calls)."""
        if not (isinstance(cls, type) and issubclass(cls, Tensor)):
            raise TypeError(f"_make_subclass(): expected a subclass of Tensor, got {cls!r}")
        out = cls._make(data._array, data._storage, data._base)
        if require_grad:
            out.requires_grad = True
        return out

    # --- construction (internal) ---------------------------------------------------
    @classmethod
    def _make(cls, array: np.ndarray, storage: Storage, base: "Tensor | None" = None):
        t = object.__new__(cls)
        t._array = array
        t._storage = storage
        t._base = base
        t.requires_grad = False
        t._grad = None
        t.grad_fn = None
        t._output_nr = 0
        t._grad_accumulator = None
        t._hooks = None
        t._retains_grad = False
        t._is_param = False
        return t

    @classmethod
    def _from_array(cls, arr: np.ndarray, memory_format: MemoryFormat = contiguous_format,
                    copy: bool = True) -> "Tensor":
        """A new tensor owning a copy of `arr` (or `arr` itself when copy=False and dense)."""
        arr = np.asarray(arr)
        if copy or not _is_dense_owned(arr):
            arr = _layout_array(arr, memory_format)
        return cls._make(arr, Storage(flat_storage(arr)))

    @classmethod
    def _adopt(cls, arr: np.ndarray) -> "Tensor":
        """A tensor over `arr` itself, never a copy: arrays a compiled plan produced."""
        return cls._make(arr, Storage(flat_storage(arr)))

    def _view_of_self(self, arr: np.ndarray) -> "Tensor":
        """A tensor sharing this tensor's storage, with `arr` (a numpy view) as its geometry."""
        base = self._base if self._base is not None else self
        return Tensor._make(arr, self._storage, base)

    # --- metadata ------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return Size(self._array.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return Size(self._array.shape)
        return self._array.shape[_wrap_dim(dim, self.ndim, "size")]

    @property
    def dtype(self) -> DType:
        return dtypes.from_numpy_dtype(self._array.dtype)

    @property
    def device(self):
        from .device import device
        return device(self._storage.device)

    @property
    def is_cuda(self) -> bool:
        return self._storage.device.startswith("cuda")

    @property
    def ndim(self) -> int:
        return self._array.ndim

    def dim(self) -> int:
        return self._array.ndim

    def numel(self) -> int:
        return int(self._array.size)

    nelement = numel

    def element_size(self) -> int:
        return self._array.itemsize

    @property
    def itemsize(self) -> int:
        return self._array.itemsize

    @property
    def nbytes(self) -> int:
        return self._array.nbytes

    def stride(self, dim: int | None = None):
        item = self._array.itemsize
        if self._array.size == 0:      # numpy reports 0 strides for empty arrays
            from ..ir.meta import contiguous_strides
            strides = contiguous_strides(self._array.shape)
        else:
            strides = tuple(s // item for s in self._array.strides)
        if dim is None:
            return strides
        return strides[_wrap_dim(dim, self.ndim, "stride")]

    def storage_offset(self) -> int:
        if self._storage.device != "cpu":
            return self._array.offset
        if self._array.size == 0:
            return 0
        return (self._array.ctypes.data - self._storage.data.ctypes.data) // self._array.itemsize

    def data_ptr(self) -> int:
        if self.is_cuda:
            from .devices import data_ptr
            return data_ptr(self)
        if self._storage.device == "meta":    # no memory: PyTorch says 0
            return 0
        if self._storage.device != "cpu":     # a registered device: the handle's identity
            return id(self._storage.handle) + self._array.offset * self._array.itemsize
        return self._array.ctypes.data

    def _values(self) -> np.ndarray:
        """The values as a numpy array: `_array` itself on the CPU, a host copy on CUDA."""
        VALUE_READS[0] += 1
        if self._storage.device != "cpu":
            from .devices import host_values
            return host_values(self)
        return self._array

    def untyped_storage(self) -> Storage:
        return self._storage

    def is_contiguous(self, memory_format: MemoryFormat = contiguous_format) -> bool:
        if memory_format is contiguous_format and self._array.size == 0:
            return True                                 # torch: an empty tensor always is
        if memory_format is not contiguous_format and len(self._array.shape) != \
                {channels_last: 4, channels_last_3d: 5}.get(memory_format, self.dim()):
            return False             # PyTorch: a channels-last format of another rank
        return is_contiguous_for(self._array.shape, self.stride(), memory_format)

    @property
    def memory_format(self) -> MemoryFormat:
        """ember extension: the format PyTorch's suggest_memory_format would report."""
        return suggest_memory_format(self._array.shape, self.stride())

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def is_complex(self) -> bool:
        return self.dtype.is_complex

    @property
    def is_quantized(self) -> bool:      # frontend/quantized.py's QuantizedTensor says True
        return False

    @property
    def layout(self):
        return strided

    @property
    def is_sparse(self) -> bool:
        return False

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def grad(self):
        """The accumulated gradient; reading it on a non-leaf that does not retain its
        gradient warns, as torch (the value is always None there)."""
        g = self._grad
        if g is None and self.grad_fn is not None and not self._retains_grad:
            import warnings
            warnings.warn("The .grad attribute of a Tensor that is not a leaf Tensor is being "
                          "accessed. Its .grad attribute won't be populated during "
                          "autograd.backward(). If you indeed want the .grad field to be "
                          "populated for a non-leaf Tensor, use .retain_grad() on the non-leaf "
                          "Tensor.", UserWarning, stacklevel=2)
        return g

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            _check_assigned_grad(self, value)
        self._grad = value

    @grad.deleter
    def grad(self) -> None:
        self._grad = None

    @property
    def _version(self) -> int:
        return self._storage.version

    def _bump_version(self) -> None:
        if getattr(self._storage, "inference", False) and not _GRAD_STATE.inference:
            raise AutogradError("Inplace update to inference tensor outside InferenceMode is "
                                "not allowed. You can make a clone to get a normal tensor "
                                "before doing inplace update.")
        self._storage.version += 1

    def _is_view(self) -> bool:
        return self._base is not None

    # --- conversion ----------------------------------------------------------------
    def numpy(self, *, force: bool = False) -> np.ndarray:
        VALUE_READS[0] += 1
        # torch refuses only while grad mode is on (inside no_grad, e.g. an
        # autograd.Function's forward, a tensor that requires grad converts)
        if self.requires_grad and not force and _GRAD_STATE.enabled:
            raise AutogradError("Can't call numpy() on Tensor that requires grad. "
                                "Use tensor.detach().numpy() instead.")
        if self._storage.device != "cpu":
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use "
                            "Tensor.cpu() to copy the tensor to host memory first.")
        return self._array

    def item(self):
        if self._array.size != 1:
            raise ShapeError(f"a Tensor with {self._array.size} elements cannot be converted "
                             "to Scalar")
        if self._storage.device == "meta":
            raise RuntimeError("Tensor.item() cannot be called on meta tensors")
        return self._values().reshape(()).item()

    def tolist(self):
        return self._values().tolist()

    def __array__(self, dtype=None, copy=None):
        VALUE_READS[0] += 1
        if self._storage.device != "cpu":
            self.numpy(force=True)              # raises PyTorch's "use .cpu()" error
        arr = self.detach()._array
        return arr.astype(dtype) if dtype is not None else arr

    def _python_scalar(self):
        if self._array.size != 1:
            raise ShapeError("only one element tensors can be converted to Python scalars")
        return self.item()

    def __float__(self):
        if self.requires_grad and _GRAD_STATE.enabled and not _WARNED_FLOAT_OF_GRAD:
            # torch warns once per process (float(loss) where loss.item() was meant)
            _WARNED_FLOAT_OF_GRAD.append(True)
            warnings.warn("Converting a tensor with requires_grad=True to a scalar may lead "
                          "to unexpected behavior.\nConsider using tensor.detach() first.",
                          UserWarning, stacklevel=2)
        return float(self._python_scalar())

    def __int__(self):
        return int(self._python_scalar())

    def __bool__(self):
        if self._array.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with {self._array.size} elements "
                               "is ambiguous")
        if self._storage.device == "meta":
            raise RuntimeError("Tensor.item() cannot be called on meta tensors")
        return bool(self._values().reshape(()).item())

    def __index__(self):
        if self.dtype.category > dtypes.Category.INT or self._array.size != 1:
            raise TypeError("only integer tensors of a single element can be converted "
                            "to an index")
        return int(self.item())

    def __complex__(self):
        return complex(self._python_scalar())

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._array.shape[0]))

    def __contains__(self, element) -> bool:
        """`x in t`: whether any element equals x (a number or a tensor broadcast against
        t), torch's meaning; Python's fallback would compare rows."""
        if not isinstance(element, (Tensor, numbers.Number, np.generic)):
            raise DTypeError("Tensor.__contains__ only supports Tensor or scalar, but you "
                             f"passed in a {type(element)}.")
        return bool((self == element).any().item())

    def __hash__(self):
        return id(self)

    def __repr__(self) -> str:
        from .printing import tensor_repr
        return tensor_repr(self)

    def __format__(self, spec):
        if self.ndim == 0:
            return format(self.item(), spec)
        return object.__format__(self, spec)

    def __reduce_ex__(self, proto):
        if self._storage.device == "meta":      # no data: the geometry is the tensor
            from .meta_device import rebuild_meta
            plain = (rebuild_meta, (tuple(self.shape), self.stride(), self.dtype.name,
                                    self.requires_grad))
        else:
            from .factories import _rebuild_tensor
            plain = (_rebuild_tensor, (np.array(self._values()), self.requires_grad,
                                       self.memory_format))
        if type(self) is not Tensor and type(self).__reduce_ex__ is Tensor.__reduce_ex__:
            # a user's subclass: rebuilt as its class, with its attributes
            return (_rebuild_subclass, (type(self), plain, dict(self.__dict__)))
        return plain

    def __deepcopy__(self, memo):
        if not self.is_leaf:
            raise AutogradError("Only Tensors created explicitly by the user (graph leaves) "
                                "support the deepcopy protocol")
        new = self._copy_sharing_storage(memo)
        if new is None:
            new = self.detach().clone(memory_format=preserve_format)
        new.requires_grad = self.requires_grad
        new._is_param = self._is_param
        if self._grad is not None:
            new.grad = self._grad.__deepcopy__(memo)
        if type(self) is not Tensor:
            new.__class__ = type(self)
            new.__dict__.update(self.__dict__)
        memo[id(self)] = new
        return new

    def _copy_sharing_storage(self, memo) -> "Tensor | None":
        """deepcopy's copy over a copied storage, one per storage in `memo`: tensors that
        shared memory (views, a tensor and its slices) still share it afterwards, with
        the same offset and strides, as torch's deepcopy. None where the storage is not a
        plain host buffer of this tensor's dtype (then a clone is the copy)."""
        data = getattr(self._storage, "data", None)
        if self._storage.device != "cpu" or type(data) is not np.ndarray or \
                type(self._array) is not np.ndarray or data.dtype != self._array.dtype or \
                self._array.size == 0:
            return None
        storage = memo.get(id(self._storage))
        if storage is None:
            storage = Storage(data.copy())
            memo[id(self._storage)] = storage
            memo.setdefault(id(memo), []).append(self._storage)   # keeps the id unique
        offset = (self._array.ctypes.data - data.ctypes.data) // data.itemsize
        arr = np.lib.stride_tricks.as_strided(storage.data[offset:], self._array.shape,
                                              self._array.strides)
        return Tensor._make(arr, storage)

    # --- autograd ------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        engine = _ENGINE[0] if _ENGINE else _engine()
        engine.backward([self], [gradient], retain_graph, create_graph, inputs)

    def detach(self) -> "Tensor":
        """Shares the storage (and its version counter); not a view (`_base` None), as
        torch's."""
        return Tensor._make(self._array, self._storage)

    def detach_(self) -> "Tensor":
        self.grad_fn = None
        self.requires_grad = False
        return self

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if not self.is_leaf:
            if requires_grad:       # a computed tensor already requires grad: as torch, a no-op
                return self
            raise AutogradError("you can only change requires_grad flags of leaf variables. "
                                "If you want to use a computed variable in a subgraph that "
                                "doesn't require differentiation use var_no_grad = var.detach().")
        if requires_grad and not (self.dtype.is_floating_point or self.dtype.is_complex):
            raise AutogradError(f"only Tensors of floating point and complex dtype can require "
                                f"gradients, got {self.dtype}")
        if requires_grad and getattr(self._storage, "inference", False) and \
                not _GRAD_STATE.inference:
            raise AutogradError("Setting requires_grad=True on inference tensor outside "
                                "InferenceMode is not allowed.")
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook):
        """hook(grad) -> Tensor or None, called with this tensor's gradient.

        A leaf's hooks run before accumulation into `.grad`; a non-leaf's hooks sit on
        its grad_fn, keyed by output number, and run before that node does.
        """
        if not self.requires_grad:
            raise AutogradError("cannot register a hook on a tensor that doesn't require "
                                "gradient")
        if self.grad_fn is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            hooks = self.grad_fn.pre_hooks.setdefault(self._output_nr, [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """hook(tensor), called on a leaf after its gradient is accumulated into .grad
        (e.g. to run the optimizer step for that parameter inside backward)."""
        if not self.requires_grad:
            raise AutogradError("cannot register a hook on a tensor that doesn't require "
                                "gradient")
        if self.grad_fn is not None:
            raise AutogradError("post accumulate grad hooks cannot be registered on "
                                "non-leaf tensors")
        from .autograd.engine import edge_of
        accumulator, _ = edge_of(self)
        hooks = accumulator.__dict__.setdefault("post_accumulate_hooks", [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self) -> None:
        if not self.requires_grad:
            raise AutogradError("can't retain_grad on Tensor that has requires_grad=False")
        if self.grad_fn is None or self._retains_grad:
            return
        self._retains_grad = True

        def store(grad):
            # a copy: the same gradient flows on to the inputs, whose .grad may take it
            self.grad = grad.detach().clone() if self.grad is None \
                else (self.grad + grad).detach()
        store.stores_retained_grad = True
        self.grad_fn.pre_hooks.setdefault(self._output_nr, []).append(store)
        self.__dict__["_retain_store"] = store

    def _move_retained_grad(self, old_fn, old_nr: int) -> None:
        """After an in-place op gave this tensor a new grad_fn: .grad keeps tracking the
        gradient of the tensor's latest version, as torch's retain_grad."""
        store = self.__dict__.get("_retain_store")
        if store is None or old_fn is None or self.grad_fn is old_fn:
            return
        hooks = old_fn.pre_hooks.get(old_nr)
        if hooks and store in hooks:
            hooks.remove(store)
        self.grad_fn.pre_hooks.setdefault(self._output_nr, []).append(store)

    @property
    def retains_grad(self) -> bool:
        return self._retains_grad

    @property
    def data(self) -> "Tensor":
        return self.detach()

    @data.setter
    def data(self, value: "Tensor") -> None:
        self._array = value._array
        self._storage = value._storage
        self._base = value._base

    # --- device/dtype movement ------------------------------------------------------
    def to(self, *args, **kwargs) -> "Tensor":
        from .conversions import tensor_to
        return tensor_to(self, *args, **kwargs)

    def cpu(self, memory_format=preserve_format) -> "Tensor":
        return self.to("cpu", memory_format=memory_format)

    def cuda(self, device=None, non_blocking: bool = False,
             memory_format=preserve_format) -> "Tensor":
        return self.to("cuda" if device is None else device, non_blocking=non_blocking,
                       memory_format=memory_format)

    def type(self, dtype=None, non_blocking=False, **kwargs):
        """No argument: the legacy type name ('ember.FloatTensor'); else a conversion to a
        dtype, a legacy type or its name (frontend/aliases.py)."""
        from .aliases import tensor_type
        return tensor_type(self, dtype)

    def float(self, memory_format=preserve_format):
        return self.to(dtypes.float32, memory_format=memory_format)

    def double(self, memory_format=preserve_format):
        return self.to(dtypes.float64, memory_format=memory_format)

    def half(self, memory_format=preserve_format):
        return self.to(dtypes.float16, memory_format=memory_format)

    def bfloat16(self, memory_format=preserve_format):
        return self.to(dtypes.bfloat16, memory_format=memory_format)

    def int(self, memory_format=preserve_format):
        return self.to(dtypes.int32, memory_format=memory_format)

    def long(self, memory_format=preserve_format):
        return self.to(dtypes.int64, memory_format=memory_format)

    def short(self, memory_format=preserve_format):
        return self.to(dtypes.int16, memory_format=memory_format)

    def char(self, memory_format=preserve_format):
        return self.to(dtypes.int8, memory_format=memory_format)

    def byte(self, memory_format=preserve_format):
        return self.to(dtypes.uint8, memory_format=memory_format)

    def bool(self, memory_format=preserve_format):
        return self.to(dtypes.bool_, memory_format=memory_format)

    def cfloat(self, memory_format=preserve_format):
        return self.to(dtypes.complex64, memory_format=memory_format)

    def cdouble(self, memory_format=preserve_format):
        return self.to(dtypes.complex128, memory_format=memory_format)

    def type_as(self, other):
        return self.to(other.dtype)

    # new_*: self's dtype and device unless given (PyTorch's defaults)
    def new_tensor(self, data, dtype=None, device=None, requires_grad=False, layout=None,
                   pin_memory=False):
        from .factories import tensor, warn_copy_construct
        if isinstance(data, Tensor):
            warn_copy_construct("tensor.new_tensor", stacklevel=3)
            data = data.detach()
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "To copy construct")
            return tensor(data, dtype=dtype or self.dtype, device=device or self.device,
                          requires_grad=requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False, layout=None,
                  pin_memory=False):
        from .factories import zeros
        return zeros(*size, dtype=dtype or self.dtype, device=device or self.device,
                     requires_grad=requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False, layout=None,
                 pin_memory=False):
        from .factories import ones
        return ones(*size, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False,
                 layout=None, pin_memory=False):
        from .factories import full
        return full(size, fill_value, dtype=dtype or self.dtype, device=device or self.device,
                    requires_grad=requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False, layout=None,
                  pin_memory=False):
        from .factories import empty
        return empty(*size, dtype=dtype or self.dtype, device=device or self.device,
                     requires_grad=requires_grad)

    # --- indexing ------------------------------------------------------------------
    def __getitem__(self, index):
        if FAST_GETITEM:                 # eager_fast.basic_getitem: ints and slices, no graph
            out = FAST_GETITEM[0](self, index)
            if out is not NotImplemented:
                return out
        from .indexing import getitem
        return getitem(self, index)

    def __setitem__(self, index, value):
        from .indexing import setitem
        setitem(self, index, value)


def _check_assigned_grad(t: "Tensor", grad) -> None:
    """torch's checks on `t.grad = grad`: a tensor of t's size, dtype and device type."""
    if not hasattr(grad, "shape") or not hasattr(grad, "dtype"):
        raise TypeError(f"assigned grad expected to be a Tensor or None but got grad of type "
                        f"{type(grad).__name__}")
    if tuple(grad.shape) != tuple(t.shape):
        raise AutogradError(f"attempting to assign a gradient of size '{list(grad.shape)}' to a "
                            f"tensor of size '{list(t.shape)}'. Please ensure that the gradient "
                            f"and the tensor are the same size")
    if grad.dtype != t.dtype:
        raise AutogradError(f"attempting to assign a gradient with dtype '{grad.dtype}' to a "
                            f"tensor with dtype '{t.dtype}'. Please ensure that the gradient "
                            f"and the tensor have the same dtype")
    gdev, tdev = getattr(grad, "device", None), getattr(t, "device", None)
    if gdev is not None and tdev is not None and \
            getattr(gdev, "type", gdev) != getattr(tdev, "type", tdev):
        raise AutogradError(f"attempting to assign a gradient with device type "
                            f"'{getattr(gdev, 'type', gdev)}' to a tensor with device type "
                            f"'{getattr(tdev, 'type', tdev)}'. Please ensure that the gradient "
                            f"and the tensor are on the same device")


class _HookHandle:
    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


# [fn(tensor, index) -> view, or NotImplemented for indexing.getitem]: set by eager_fast
FAST_GETITEM: list = []


def _is_dense_owned(arr: np.ndarray) -> bool:
    if arr.ndim == 0 or arr.size == 0:
        return arr.flags.c_contiguous and arr.flags.writeable
    return (arr.flags.c_contiguous or arr.flags.f_contiguous) and arr.flags.writeable \
        and min(arr.strides) >= 0


def _wrap_dim(dim: int, ndim: int, op: str) -> int:
    n = max(ndim, 1)
    if not -n <= dim < n:
        from ..ir.errors import EmberIndexError
        raise EmberIndexError(f"{op}: Dimension out of range (expected to be in range of "
                              f"[{-n}, {n - 1}], but got {dim})")
    return dim % n


def is_tensor(obj) -> bool:
    """True for a tensor, a traced one inside a compiled function included."""
    from ..ir.symbolic import SymbolicTensor
    # sparse tensors and MaskedTensor are tensors to torch.is_tensor, though not
    # ember.Tensor subclasses
    return isinstance(obj, Tensor) or type(obj) is SymbolicTensor or \
        getattr(type(obj), "_ember_tensor_like", False)
