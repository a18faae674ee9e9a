"""PyTorch's other names for what ember already has: documented aliases (`arccos` for
`acos`, `clip` for `clamp`, `divide` for `div`, ...), top-level in-place forms
(`torch.relu_(x)`), Tensor methods that PyTorch also offers as linalg functions
(`x.det()`, `x.inverse()`), in-place methods built from their out-of-place op
(`x.cumsum_(0)`), predicates (`x.is_cpu`, `torch.is_nonzero`), and the legacy tensor
types (`torch.FloatTensor`, `x.type()` returning 'ember.FloatTensor').

Every alias resolves to the same op or function as its canonical name, so tracing,
autograd and compile see no difference. `install(namespace, tensor_classes)` adds only the
names that are missing: an existing definition always wins.
"""
from __future__ import annotations

import functools

import numpy as np

from ..ir import dtypes
from ..ir.errors import AutogradError, DTypeError, ShapeError
from ..ir.meta import sparse_bsc, sparse_bsr, sparse_csc, sparse_csr

# alias -> canonical name, for the top level, the Tensor method and the in-place method
ALIASES = {
    "absolute": "abs", "arccos": "acos", "arccosh": "acosh", "arcsin": "asin",
    "arcsinh": "asinh", "arctan": "atan", "arctan2": "atan2", "arctanh": "atanh",
    "clip": "clamp", "divide": "div", "multiply": "mul", "subtract": "sub",
    "greater": "gt", "greater_equal": "ge", "less": "lt", "less_equal": "le",
    "not_equal": "ne", "negative": "neg", "fix": "trunc", "moveaxis": "movedim",
    "concat": "cat", "concatenate": "cat", "row_stack": "vstack", "ger": "outer",
    "swapaxes": "transpose", "swapdims": "transpose",
}

# Tensor methods (and top-level names) PyTorch keeps beside torch.linalg
LINALG_METHODS = {
    "det": "det", "slogdet": "slogdet", "inverse": "inv", "matrix_power": "matrix_power",
    "orgqr": "householder_product",
}
TOP_LEVEL_AS_METHODS = ("cholesky", "cholesky_inverse", "cholesky_solve", "qr", "svd", "cross",
                        "lu", "lu_solve", "pinverse", "triangular_solve", "logdet",
                        "matrix_exp", "diagonal_scatter", "select_scatter", "slice_scatter",
                        "vstack")


def _method_alias(canonical: str):
    def method(self, *args, **kwargs):
        return getattr(self, canonical)(*args, **kwargs)
    method.__name__ = canonical
    return method


def _function_of_method(name: str):
    """torch.relu_(x, ...) is x.relu_(...)."""
    def function(input, *args, **kwargs):
        return getattr(input, name)(*args, **kwargs)
    function.__name__ = name
    return function


def _method_of_function(function):
    def method(self, *args, **kwargs):
        return function(self, *args, **kwargs)
    method.__name__ = getattr(function, "__name__", "method")
    return method


def _in_place_from(name: str):
    """x.cumsum_(0): the out-of-place result written back through copy_ (so autograd
    records the write, as PyTorch's in-place ops are recorded)."""
    def method(self, *args, **kwargs):
        result = getattr(self, name)(*args, **kwargs)
        if name == "float_power" and result.dtype != self.dtype:
            # float_power_ computes in double: PyTorch wants self to be that dtype already
            raise DTypeError(f"the base given to float_power_ has dtype "
                             f"{self.dtype.scalar_type_name} but the operation's result "
                             f"requires dtype {result.dtype.scalar_type_name}")
        if hasattr(result, "dtype") and not dtypes.can_cast(result.dtype, self.dtype):
            # torch's rule for every in-place op: no narrowing of the category
            raise DTypeError(f"{name}_: result type {result.dtype.scalar_type_name} can't be "
                             f"cast to the desired output type {self.dtype.scalar_type_name}")
        return self.copy_(result)
    method.__name__ = name + "_"
    return method


def _in_place_view(name: str):
    """x.unsqueeze_(0), x.t_(), ...: x itself becomes the view (its data, shape and strides,
    and the view's place in the autograd graph), as PyTorch's in-place view ops do."""
    def method(self, *args, **kwargs):
        from .autograd.grad_mode import is_grad_enabled
        if self.requires_grad and self.grad_fn is None and is_grad_enabled():
            raise AutogradError("a leaf Variable that requires grad is being used in an "
                                "in-place operation.")
        view = getattr(self, name)(*args, **kwargs)
        self._array = view._array
        if view.grad_fn is not None:
            self.grad_fn, self._output_nr = view.grad_fn, view._output_nr
        return self
    method.__name__ = name + "_"
    return method


IN_PLACE_VIEWS = ("unsqueeze", "squeeze", "t", "transpose", "swapaxes", "swapdims")


# --- Tensor predicates and small methods -------------------------------------------------
def _get_device(self) -> int:
    device = self.device
    return -1 if device.type == "cpu" else (device.index or 0)


def _is_nonzero(self) -> bool:
    if self.numel() == 0:
        raise ShapeError("Boolean value of Tensor with no values is ambiguous")
    if self.numel() > 1:
        raise ShapeError("Boolean value of Tensor with more than one value is ambiguous")
    return bool(self.item())


def _is_same_size(self, other) -> bool:
    return tuple(self.shape) == tuple(other.shape)


def _is_signed(self) -> bool:
    dt = self.dtype
    return dt.is_floating_point or dt.is_complex or dt in (dtypes.int8, dtypes.int16,
                                                            dtypes.int32, dtypes.int64)


def _fill_diagonal_(self, fill_value, wrap=False):
    """PyTorch's fill_diagonal_: 2-D (any aspect; `wrap` restarts the diagonal every
    columns+1 rows of a tall matrix) or n-D with every dimension equal."""
    shape = tuple(self.shape)
    if len(shape) < 2:
        raise ShapeError("fill_diagonal_(): dimensions must larger than 1")
    if len(shape) > 2 and len(set(shape)) != 1:
        raise ShapeError("fill_diagonal_(): all dimensions of input must be of equal length")
    mask = np.zeros(shape, dtype=bool)
    if len(shape) == 2:
        rows, cols = shape
        flat = mask.reshape(-1)
        step = cols + 1
        end = rows * cols if wrap else min(rows, cols) * cols
        flat[0:end:step] = True
    else:
        idx = np.arange(shape[0])
        mask[(idx,) * len(shape)] = True
    from .factories import tensor
    return self.copy_(self.masked_fill(tensor(mask, device=self.device), fill_value))


def _new(self, *args, **kwargs):
    """The legacy constructor: x.new() is empty, x.new(2, 3) uninitialized (zeros in
    ember), x.new([1, 2]) / x.new(tensor) from data; always x's dtype and device."""
    from .tensor import Size, Tensor
    device = kwargs.pop("device", self.device)
    if kwargs:
        raise TypeError(f"new() got unexpected keyword arguments {sorted(kwargs)}")
    if len(args) == 1 and not isinstance(args[0], int):
        data = args[0]
        if isinstance(data, Tensor):
            return data.to(dtype=self.dtype, device=device)
        # a Size (x.new(y.shape)) is a shape, as in torch; a list or tuple is data
        if isinstance(data, Size) or hasattr(data, "__len__") and not isinstance(
                data, (list, tuple)) and not hasattr(data, "shape"):
            return self.new_zeros(list(data), device=device)
        return self.new_tensor(data, device=device)
    return self.new_zeros(list(args) if args else [0], device=device)


# --- legacy tensor types ------------------------------------------------------------------
LEGACY_TYPE_NAMES = {
    "float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
    "bfloat16": "BFloat16Tensor", "int64": "LongTensor", "int32": "IntTensor",
    "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor", "bool": "BoolTensor",
    "complex64": "ComplexFloatTensor", "complex128": "ComplexDoubleTensor",
}


class _LegacyTensorType(type):
    """isinstance(x, ember.FloatTensor) is a dtype (and device) check, as in PyTorch."""

    def __instancecheck__(cls, value):
        from .tensor import Tensor
        return isinstance(value, Tensor) and value.dtype is cls.dtype and \
            value.is_cuda == cls.is_cuda

    def __repr__(cls):
        return f"<class '{cls.type_name}'>"


def _legacy_new(cls, *args, device=None):
    """ember.FloatTensor(2, 3) (zeros: ember never hands out uninitialized memory),
    ember.FloatTensor([1, 2]) from data, ember.FloatTensor() empty."""
    from .factories import tensor, zeros
    from .tensor import Size
    device = device or ("cuda" if cls.is_cuda else None)
    if len(args) == 1 and isinstance(args[0], Size):       # FloatTensor(x.shape)
        return zeros(*args[0], dtype=cls.dtype, device=device)
    if len(args) == 1 and not isinstance(args[0], int):
        if isinstance(args[0], (float, complex, np.floating, np.complexfloating)):
            raise TypeError(f"new(): data must be a sequence (got {type(args[0]).__name__})")
        return tensor(args[0], dtype=cls.dtype, device=device)
    return zeros(*(args or (0,)), dtype=cls.dtype, device=device)


def legacy_tensor(*args, device=None):
    """torch.Tensor(...)'s value: the default float dtype's legacy constructor."""
    name = LEGACY_TYPE_NAMES[dtypes.get_default_dtype().name]
    return _legacy_new(LEGACY_TYPES[name], *args, device=device)


def _make_legacy_type(dtype, name: str, cuda: bool):
    prefix = "ember.cuda." if cuda else "ember."
    return _LegacyTensorType(name, (), {"dtype": dtype, "is_cuda": cuda,
                                        "type_name": prefix + name,
                                        "__new__": _legacy_new})


LEGACY_TYPES = {name: _make_legacy_type(dtypes.as_dtype(dt), name, False)
                for dt, name in LEGACY_TYPE_NAMES.items()}
LEGACY_CUDA_TYPES = {name: _make_legacy_type(dtypes.as_dtype(dt), name, True)
                     for dt, name in LEGACY_TYPE_NAMES.items()}


def legacy_type_name(t) -> str:
    name = LEGACY_TYPE_NAMES.get(t.dtype.name)
    if name is None:
        raise DTypeError(f"type(): no legacy tensor type for dtype {t.dtype}")
    return ("ember.cuda." if t.is_cuda else "ember.") + name


def _resolve_type(spec):
    """x.type(...)'s argument: a dtype, a legacy type, or its name ('torch.FloatTensor',
    'ember.cuda.LongTensor', 'FloatTensor')."""
    if isinstance(spec, _LegacyTensorType):
        return spec.dtype, ("cuda" if spec.is_cuda else "cpu")
    if isinstance(spec, str):
        parts = spec.split(".")
        table = LEGACY_CUDA_TYPES if "cuda" in parts[:-1] else LEGACY_TYPES
        if parts[-1] not in table:
            raise ValueError(f"invalid type: '{spec}'")
        return table[parts[-1]].dtype, ("cuda" if "cuda" in parts[:-1] else "cpu")
    return dtypes.as_dtype(spec), None


def tensor_type(self, dtype=None):
    """Tensor.type: the legacy name without an argument, else a conversion."""
    if dtype is None:
        return legacy_type_name(self)
    target, device = _resolve_type(dtype)
    if device is not None and device != self.device.type:
        return self.to(dtype=target, device=device)
    return self.to(target)


# --- top-level functions ------------------------------------------------------------------
def typename(obj) -> str:
    from .tensor import Tensor
    if isinstance(obj, Tensor):
        return legacy_type_name(obj)
    module = getattr(type(obj), "__module__", "")
    name = type(obj).__qualname__
    return name if module in ("builtins", "") else f"{module}.{name}"


def is_storage(obj) -> bool:
    from .tensor import Storage
    return isinstance(obj, Storage)


def chain_matmul(*matrices, out=None):
    """Deprecated in PyTorch for linalg.multi_dot, which it calls."""
    from .. import linalg
    if len(matrices) == 1:
        return matrices[0]
    result = linalg.multi_dot(list(matrices))
    return result if out is None else out.copy_(result)


def vander(x, N=None, increasing=False):
    """torch.vander: decreasing powers by default (linalg.vander's are increasing)."""
    from .. import linalg
    if x.ndim != 1:
        raise ShapeError("x must be a one-dimensional tensor.")
    n = x.shape[0] if N is None else N
    if n < 0:
        raise ShapeError("N must be non-negative.")
    if not (x.dtype.is_floating_point or x.dtype.is_complex):
        x = x.to(dtypes.int64)  # torch.vander computes integer and bool powers in int64
    if n <= 1:           # linalg.vander needs two columns; x^0 (or no column) here
        return linalg.vander(x, N=2)[..., :n]
    powers = linalg.vander(x, N=n)
    return powers if increasing else powers.flip(-1)


def range_(start=0, end=None, step=1, *, dtype=None, device=None, requires_grad=False):
    """torch.range (deprecated): like arange but the end is included."""
    import warnings
    from .factories import tensor
    warnings.warn("ember.range is deprecated and will be removed; use ember.arange, which "
                  "produces values in [start, end).", UserWarning, stacklevel=2)
    if end is None:
        start, end = 0, start
    count = int(np.floor((end - start) / step)) + 1
    values = start + step * np.arange(max(count, 0), dtype=np.float64)
    dt = dtypes.as_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    return tensor(values.astype(dt.np_dtype), device=device, requires_grad=requires_grad)


def binomial(count, prob, generator=None):
    from .factories import tensor
    from .random import numpy_rng
    values = numpy_rng(generator).binomial(count.detach().cpu().numpy().astype(np.int64),
                                           prob.detach().cpu().numpy())
    return tensor(values.astype(prob.dtype.np_dtype), device=prob.device)


def poisson(input, generator=None):
    from .factories import tensor
    from .random import numpy_rng
    values = numpy_rng(generator).poisson(input.detach().cpu().numpy())
    return tensor(values.astype(input.dtype.np_dtype), device=input.device)


def frombuffer(buffer, *, dtype, count=-1, offset=0, requires_grad=False):
    """A tensor sharing `buffer`'s memory (PyTorch's semantics: writes show through)."""
    from .factories import from_numpy
    array = np.frombuffer(buffer, dtype=dtypes.as_dtype(dtype).np_dtype, count=count,
                          offset=offset)
    t = from_numpy(array)
    return t.requires_grad_(True) if requires_grad else t


def asarray(obj, *, dtype=None, device=None, copy=None, requires_grad=False):
    """Shares memory with tensors and NumPy arrays where dtype and device allow (copy=None),
    copies where asked or needed; copy=False that would need a copy raises, as PyTorch's."""
    from .factories import from_numpy, tensor
    from .tensor import Tensor
    if isinstance(obj, Tensor):
        result = obj if dtype is None and device is None else obj.to(dtype=dtype, device=device)
        if copy and result is obj:
            result = obj.clone()
        elif copy is False and result is not obj:
            raise ValueError("asarray(): can't alias the input without a copy "
                             "(dtype or device differ) and copy=False was given")
    elif isinstance(obj, np.ndarray) and not copy and \
            (dtype is None or dtypes.as_dtype(dtype).np_dtype == obj.dtype) and device is None:
        result = from_numpy(obj)
    else:
        if copy is False:
            raise ValueError("asarray(): can't alias a Python sequence; copy=False was given")
        result = tensor(obj, dtype=dtype, device=device)
    return result.requires_grad_(True) if requires_grad else result


def from_dlpack(ext_tensor):
    """A CPU tensor sharing memory with any object that speaks DLPack (NumPy arrays,
    PyTorch/CuPy CPU tensors, ember tensors) or with a DLPack capsule (to_dlpack's):
    writes through either side are seen by the other, as in PyTorch."""
    from .dlpack_capsule import array_of_capsule, is_legacy_capsule
    from .factories import from_numpy
    from .tensor import Tensor
    if isinstance(ext_tensor, Tensor):      # NumPy would import it read-only: alias it
        return ext_tensor.detach()
    if is_legacy_capsule(ext_tensor):
        return from_numpy(array_of_capsule(ext_tensor))
    if not hasattr(ext_tensor, "__dlpack__"):
        raise TypeError(f"from_dlpack: expected an object with __dlpack__ or a DLPack "
                        f"capsule, got {type(ext_tensor).__name__}")
    array = np.from_dlpack(ext_tensor)
    if not array.flags.writeable:           # a producer that only speaks legacy DLPack
        array = _writable_legacy_import(ext_tensor, array)
    return from_numpy(array)


def _writable_legacy_import(ext_tensor, read_only: np.ndarray) -> np.ndarray:
    """The memory writable through a legacy capsule, unless the producer refuses to export
    it so (NumPy's read-only arrays): then from_numpy copies the read-only import."""
    from .dlpack_capsule import array_of_capsule, is_legacy_capsule
    try:
        capsule = ext_tensor.__dlpack__()
    except BufferError:
        return read_only
    return array_of_capsule(capsule) if is_legacy_capsule(capsule) else read_only


def _as_subclass(self, cls):
    """`self` as an instance of Tensor subclass `cls`: the same memory, and still on the
    autograd graph (an alias, as torch's as_subclass)."""
    from .tensor import Tensor
    from ..ir import torch_function
    if not (isinstance(cls, type) and issubclass(cls, Tensor)):
        raise TypeError(f"as_subclass(): expected a subclass of Tensor, got {cls!r}")
    with torch_function.level(torch_function.SUBCLASSES_DISABLED):   # no nested dispatch
        alias = self.view_as(self) if self.requires_grad else self.detach()
    out = cls._make(alias._array, alias._storage, alias._base)
    out.requires_grad, out.grad_fn = alias.requires_grad, alias.grad_fn
    out._output_nr = alias._output_nr
    return out


def _storage(self):
    from .storage import typed_storage
    return typed_storage(self)


def _sparse():
    from . import sparse_coo
    return sparse_coo


def _compressed():
    from . import sparse_compressed
    return sparse_compressed


def _is_inference(self) -> bool:
    """Made inside inference_mode (its storage was), as torch's Tensor.is_inference."""
    storage = getattr(self, "_storage", None)
    return bool(getattr(storage, "inference", False))


def _apply_(self, callable):
    """Replaces each element x by callable(x), a Python function (CPU tensors only)."""
    _check_python_map(self, "apply_")
    values = np.vectorize(callable, otypes=[self._array.dtype])(self._array)
    self._array[...] = values
    self._bump_version()
    return self


def _map_(self, tensor, callable):
    """Replaces each element x by callable(x, y), y from `tensor` broadcast to self."""
    _check_python_map(self, "map_")
    other = np.broadcast_to(tensor._array, self._array.shape)
    values = np.vectorize(callable, otypes=[self._array.dtype])(self._array, other)
    self._array[...] = values
    self._bump_version()
    return self


def _check_python_map(self, name: str) -> None:
    if self.requires_grad:
        raise RuntimeError(f"Can't call {name}() on Variable that requires grad. Use "
                           f"var.detach().{name}() instead.")
    if self.device.type != "cpu":
        raise TypeError(f"{name} is only implemented on CPU tensors")


def _dlpack(self, *, stream=None, max_version=None, dl_device=None, copy=None):
    """DLPack export of a CPU tensor: the consumer shares its memory (a versioned capsule
    when the consumer asks with max_version, so it imports the memory writable)."""
    if self.device.type != "cpu":
        raise BufferError(f"__dlpack__: ember exports CPU tensors only, not {self.device}")
    if self.requires_grad:
        raise BufferError("Can't export tensors that require gradient, use tensor.detach()")
    array = self._array
    if self.dtype.name == "bfloat16":     # NumPy (which exports for ember) has no bfloat16
        from .dlpack_capsule import mark_bfloat16
        return mark_bfloat16(_numpy_dlpack(array.view(np.uint16), max_version, dl_device, copy))
    return _numpy_dlpack(array, max_version, dl_device, copy)


def _dlpack_device(self):
    from .dlpack_capsule import DLDeviceType
    return (DLDeviceType.kDLCPU, 0)


def _numpy_dlpack(array: np.ndarray, max_version, dl_device, copy):
    if max_version is None:
        return array.__dlpack__()
    return array.__dlpack__(max_version=max_version, dl_device=dl_device, copy=copy)


def is_nonzero(input) -> bool:
    return _is_nonzero(input)


def is_same_size(input, other) -> bool:
    return _is_same_size(input, other)


def is_signed(input) -> bool:
    return _is_signed(input)


def cond(pred, true_fn, false_fn, operands=()):
    """torch.cond: the branch `pred` selects (a bool or a one-element tensor). While a
    function is traced (ember.compile, ember.export) a tensor predicate has no value yet:
    both branches are traced and each output is chosen with `where`, which is what
    torch.cond's contract allows (branches free of side effects, returning tensors of
    the same shapes and dtypes)."""
    from ..ir.symbolic import SymbolicTensor
    from ..ir.symdim import SizeCondition
    if isinstance(pred, SizeCondition) and pred.withdraw():   # chosen at run time
        pred = _size_condition_tensor(pred)
    if isinstance(pred, SymbolicTensor):
        return _select_outputs(pred, true_fn(*operands), false_fn(*operands))
    chosen = true_fn if bool(pred) else false_fn
    return chosen(*operands)


def _size_condition_tensor(condition):
    """`x.shape[0] > 2` as a traced bool tensor: the sizes become 0-d int64 tensors whose
    values the dynamic-shape trace keeps symbolic (s0), compared by the same op."""
    from ..ir.registry import OPS
    from ..ir.symdim import TracedSize
    from .factories import full

    def operand(value):
        return full((), value, dtype=dtypes.int64) if isinstance(value, TracedSize) else value
    return OPS[condition.op](operand(condition.left), operand(condition.right))


def _select_outputs(pred, when_true, when_false):
    """cond's outputs while traced: `where(pred, a, b)` for each pair of tensors of
    the two branches' results (tuples and lists of them, as torch.cond allows)."""
    from ..ir.registry import OPS
    if isinstance(when_true, (tuple, list)) and isinstance(when_false, (tuple, list)) \
            and len(when_true) == len(when_false):
        return type(when_true)(_select_outputs(pred, a, b)
                               for a, b in zip(when_true, when_false))
    same = hasattr(when_true, "shape") and hasattr(when_false, "shape") and \
        tuple(when_true.shape) == tuple(when_false.shape) and \
        when_true.dtype == when_false.dtype
    if not same:
        def describe(v):
            return f"{v.dtype.name}{list(v.shape)}" if hasattr(v, "shape") else type(v).__name__
        raise ShapeError("cond(): true_fn and false_fn must return tensors of the same "
                         f"shape and dtype, got {describe(when_true)} and "
                         f"{describe(when_false)}")
    return OPS["where"](pred.reshape(()) if pred.ndim else pred, when_true, when_false)


def while_loop(cond_fn, body_fn, carried_inputs):
    """torch.while_loop: body_fn(*carried) returns the next carried values while
    cond_fn(*carried) is true."""
    carried = tuple(carried_inputs)
    while bool(cond_fn(*carried)):
        step = body_fn(*carried)
        carried = tuple(step) if isinstance(step, (tuple, list)) else (step,)
        if len(carried) != len(carried_inputs):
            raise ShapeError(f"while_loop(): body_fn returned {len(carried)} values for "
                             f"{len(carried_inputs)} carried inputs")
    return carried


_interop_threads = [1]


def get_num_interop_threads() -> int:
    return _interop_threads[0]


def set_num_interop_threads(n: int) -> None:
    """ember runs independent ops in order on one thread; the count is kept for code that
    reads it back."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"Expected a positive number of threads, got {n!r}")
    _interop_threads[0] = n


def set_default_tensor_type(t) -> None:
    """Legacy: ember.set_default_tensor_type(ember.DoubleTensor) sets the default dtype."""
    target, device = _resolve_type(t)
    if device == "cuda":
        raise ValueError("set_default_tensor_type(): ember keeps the default device on the "
                         "CPU; use ember.set_default_device('cuda')")
    dtypes.set_default_dtype(target)


# torch.<name> forms of nn.functional whose signatures agree with F's
NN_TOP_LEVEL = ("bilinear", "prelu", "rrelu", "threshold", "alpha_dropout",
                "feature_alpha_dropout", "hardshrink", "relu_", "selu_", "celu_", "rrelu_",
                "threshold_", "gumbel_softmax")


def _feature_dropout(input, p, train):
    from ..nn import functional
    return functional.dropout1d(input, p, train) if input.ndim <= 3 else \
        functional.dropout2d(input, p, train) if input.ndim == 4 else \
        functional.dropout3d(input, p, train)


def _torch_batch_norm(input, weight, bias, running_mean, running_var, training, momentum, eps,
                      cudnn_enabled=True):
    from ..nn import functional
    return functional.batch_norm(input, running_mean, running_var, weight, bias, training,
                                 momentum, eps)


def _torch_group_norm(input, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    from ..nn import functional
    return functional.group_norm(input, num_groups, weight, bias, eps)


def _torch_instance_norm(input, weight, bias, running_mean, running_var, use_input_stats,
                         momentum, eps, cudnn_enabled=True):
    from ..nn import functional
    return functional.instance_norm(input, running_mean, running_var, weight, bias,
                                    use_input_stats, momentum, eps)


def _dropout_(input, p=0.5, train=True):
    from ..nn import functional
    return functional.dropout(input, p, train, inplace=True)


TOP_LEVEL_FUNCTIONS = {
    "typename": typename, "is_storage": is_storage, "chain_matmul": chain_matmul,
    "vander": vander, "range": range_, "binomial": binomial, "poisson": poisson,
    "frombuffer": frombuffer, "asarray": asarray, "from_dlpack": from_dlpack,
    "is_nonzero": is_nonzero, "is_same_size": is_same_size, "is_signed": is_signed,
    "is_conj": lambda input: False, "is_neg": lambda input: False,
    "is_inference": lambda input: input.is_inference(),
    "cond": cond, "while_loop": while_loop,
    "get_num_interop_threads": get_num_interop_threads,
    "set_num_interop_threads": set_num_interop_threads,
    "set_default_tensor_type": set_default_tensor_type,
    "batch_norm": _torch_batch_norm, "group_norm": _torch_group_norm,
    "instance_norm": _torch_instance_norm, "feature_dropout": _feature_dropout,
    "dropout_": _dropout_,
    "is_anomaly_enabled": lambda: _anomaly().is_anomaly_enabled(),
    "is_anomaly_check_nan_enabled": lambda: _anomaly().is_anomaly_check_nan_enabled(),
    "set_anomaly_enabled": lambda enabled, check_nan=True: _anomaly().set_detect_anomaly(
        enabled, check_nan) and None,
}


def _is_pinned(self, device=None):
    from .pinned import is_pinned
    return is_pinned(self, device)


def _pin_memory(self, device=None):
    from .pinned import pin_memory
    return pin_memory(self, device)


def _anomaly():
    from .autograd import anomaly
    return anomaly

TENSOR_METHODS = {
    "get_device": _get_device, "is_nonzero": _is_nonzero, "is_same_size": _is_same_size,
    "is_signed": _is_signed, "ndimension": lambda self: self.ndim,
    "is_conj": lambda self: False, "is_neg": lambda self: False,
    "is_inference": _is_inference, "is_pinned": _is_pinned,
    "pin_memory": _pin_memory, "share_memory_": lambda self: self,
    "is_shared": lambda self: False, "fill_diagonal_": _fill_diagonal_, "new": _new,
    "apply_": _apply_, "map_": _map_, "__dlpack__": _dlpack, "storage": _storage,
    "as_subclass": _as_subclass,
    "const_data_ptr": lambda self: self.data_ptr(),
    "dim_order": lambda self, *, ambiguity_check=False: tuple(
        sorted(range(self.dim()), key=lambda d: -self.stride(d))),
    "to_sparse": lambda self, *args, **kwargs: _sparse().to_sparse(self, *args, **kwargs),
    "to_sparse_coo": lambda self: _sparse().to_sparse(self),
    "sparse_mask": lambda self, mask: _sparse().sparse_ops.sparse_mask(self, mask),
    "to_sparse_csr": lambda self, dense_dim=None: _compressed().from_dense(self, sparse_csr),
    "to_sparse_csc": lambda self, dense_dim=None: _compressed().from_dense(self, sparse_csc),
    "to_sparse_bsr": lambda self, blocksize, dense_dim=None:
        _compressed().from_dense(self, sparse_bsr, blocksize),
    "to_sparse_bsc": lambda self, blocksize, dense_dim=None:
        _compressed().from_dense(self, sparse_bsc, blocksize),
    "to_dense": lambda self, dtype=None, *, masked_grad=None:
        self if dtype is None else self.to(dtype),
    "__dlpack_device__": _dlpack_device,
}
TENSOR_PROPERTIES = {
    "output_nr": lambda self: self._output_nr,
    "is_cpu": lambda self: self.device.type == "cpu", "is_meta": lambda self: self._storage.device == "meta",
    "is_mkldnn": lambda self: False, "is_sparse_csr": lambda self: False,
    "is_nested": lambda self: False, "is_xpu": lambda self: False,
    "is_mps": lambda self: False,
}
# in-place methods PyTorch has and ember builds from the out-of-place op
IN_PLACE_FROM_OUT_OF_PLACE = ("cumsum", "cumprod", "clamp", "float_power", "polygamma",
                              "addmm", "baddbmm", "addmv", "addbmm", "addr")


def _named_alias(alias: str, canonical: str, function):
    """ember.arcsin: a function of its own name that computes what ember.asin does. In
    torch the alias is a distinct function, so torch.fx records and prints it under its
    own name (`arcsin = torch.arcsin(x)`) and `node.target == torch.arcsin` holds."""
    @functools.wraps(function)
    def alias_function(*args, **kwargs):
        return function(*args, **kwargs)
    alias_function.__name__ = alias_function.__qualname__ = alias
    alias_function.__module__ = "ember"
    alias_function.__doc__ = f"Alias for ember.{canonical}."
    return alias_function


def install(namespace: dict, tensor_classes) -> None:
    """Add every missing alias to the ember namespace and the Tensor classes."""
    from .. import linalg
    from ..nn import functional
    for cls in tensor_classes:
        _install_methods(cls, linalg, functional)
    from .tensor import Tensor
    for name in IN_PLACE_VIEWS:       # eager tensors only: a traced value has no storage
        if not hasattr(Tensor, name + "_"):
            setattr(Tensor, name + "_", _in_place_view(name))
    for alias, canonical in ALIASES.items():
        if alias not in namespace and canonical in namespace:
            namespace[alias] = _named_alias(alias, canonical, namespace[canonical])
        if alias + "_" not in namespace and canonical + "_" in namespace:
            namespace[alias + "_"] = namespace[canonical + "_"]
    for name, canonical in LINALG_METHODS.items():
        namespace.setdefault(name, getattr(linalg, canonical))
    for name, function in TOP_LEVEL_FUNCTIONS.items():
        namespace.setdefault(name, function)
    for name in NN_TOP_LEVEL:
        if hasattr(functional, name):
            namespace.setdefault(name, getattr(functional, name))
    for name, legacy in {**LEGACY_TYPES}.items():
        namespace.setdefault(name, legacy)
    _install_top_level_in_place(namespace, tensor_classes[0])


def _install_methods(cls, linalg, functional) -> None:
    for alias, canonical in ALIASES.items():
        for suffix in ("", "_"):
            if not hasattr(cls, alias + suffix) and hasattr(cls, canonical + suffix):
                setattr(cls, alias + suffix, _method_alias(canonical + suffix))
    for name, canonical in LINALG_METHODS.items():
        if not hasattr(cls, name):
            setattr(cls, name, _method_of_function(getattr(linalg, canonical)))
    import ember
    for name in TOP_LEVEL_AS_METHODS:
        if not hasattr(cls, name) and hasattr(ember, name):
            setattr(cls, name, _method_of_function(getattr(ember, name)))
    for name in ("hardshrink", "prelu"):
        if not hasattr(cls, name):
            setattr(cls, name, _method_of_function(getattr(functional, name)))
    for name in IN_PLACE_FROM_OUT_OF_PLACE:
        if not hasattr(cls, name + "_") and hasattr(cls, name):
            setattr(cls, name + "_", _in_place_from(name))
    for name, method in TENSOR_METHODS.items():
        if not hasattr(cls, name):
            setattr(cls, name, method)
    for name, getter in TENSOR_PROPERTIES.items():
        if not hasattr(cls, name):
            setattr(cls, name, property(getter))


def _install_top_level_in_place(namespace: dict, tensor_cls) -> None:
    """torch.abs_(x) for every in-place method torch also exposes at the top level."""
    for name in dir(tensor_cls):
        if name.endswith("_") and not name.startswith("_") and name not in namespace \
                and name[:-1] in namespace and callable(namespace[name[:-1]]):
            namespace[name] = _function_of_method(name)
