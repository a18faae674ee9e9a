"""TensorMeta: what the IR knows about a value without its data.

Shape rules in the registry take objects with `.shape`, `.dtype`, `.ndim`,
`.device` and `.memory_format` (a TensorMeta, or a live Tensor, which has the same
attributes) and return TensorMeta. ShapeProp, the verifier and eager dispatch all
run the same rules.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field

from .dtypes import DType
from .symdim import SymDim, TracedSize


class MemoryFormat(enum.Enum):
    contiguous_format = "contiguous_format"
    channels_last = "channels_last"
    channels_last_3d = "channels_last_3d"
    preserve_format = "preserve_format"

    def __repr__(self) -> str:
        return f"ember.{self.value}"

    __str__ = __repr__      # str(torch.channels_last) is "torch.channels_last"

    def __reduce__(self):
        return (MemoryFormat, (self.value,))


contiguous_format = MemoryFormat.contiguous_format
channels_last = MemoryFormat.channels_last
channels_last_3d = MemoryFormat.channels_last_3d
preserve_format = MemoryFormat.preserve_format


class Layout(enum.Enum):
    """torch.layout: how a tensor's elements are stored. ember stores every tensor strided;
    the sparse layouts exist so that code naming them (or comparing `t.layout`) runs, and
    factories asked for one of them refuse with PyTorch's wording."""
    strided = "strided"
    sparse_coo = "sparse_coo"
    sparse_csr = "sparse_csr"
    sparse_csc = "sparse_csc"
    sparse_bsr = "sparse_bsr"
    sparse_bsc = "sparse_bsc"
    jagged = "jagged"

    def __repr__(self) -> str:
        return f"ember.{self.value}"

    __str__ = __repr__

    def __reduce__(self):
        return (Layout, (self.value,))


strided = Layout.strided
sparse_coo = Layout.sparse_coo
sparse_csr = Layout.sparse_csr
sparse_csc = Layout.sparse_csc
sparse_bsr = Layout.sparse_bsr
sparse_bsc = Layout.sparse_bsc
jagged = Layout.jagged


def check_layout(op_name: str, layout) -> None:
    """Factories take `layout=` as PyTorch's do; only the strided layout is supported."""
    if layout is None or layout is Layout.strided:
        return
    if not isinstance(layout, Layout):
        raise TypeError(f"{op_name}(): argument 'layout' must be ember.layout, not "
                        f"{type(layout).__name__}")
    raise LayoutError(f"{op_name}(): ember supports only strided tensors, got layout={layout!r}")


class LayoutError(ValueError, RuntimeError):
    """A layout a factory cannot make: torch raises RuntimeError ("full(...) is not
    implemented for sparse layout"), ember ValueError before; both are caught."""


def contiguous_strides(shape) -> tuple[int, ...]:
    strides, acc = [], 1
    for size in reversed(shape):
        strides.append(acc)
        acc = acc * (size if isinstance(size, SymDim) else max(size, 1))
    return tuple(reversed(strides))


def channels_last_strides(shape) -> tuple[int, ...]:
    """NCHW logical shape stored as NHWC (NCDHW as NDHWC for 5-d)."""
    if len(shape) == 4:
        n, c, h, w = shape
        return (h * w * c, 1, w * c, c)
    if len(shape) == 5:
        n, c, d, h, w = shape
        return (d * h * w * c, 1, h * w * c, w * c, c)
    raise ValueError(f"channels_last needs a 4-d (or 5-d) shape, got {list(shape)}")


#: the rank each channels-last format is defined for (PyTorch refuses any other rank)
_FORMAT_RANK = {channels_last: 4, channels_last_3d: 5}


def check_memory_format_rank(shape, memory_format) -> None:
    """PyTorch's error for asking a tensor of another rank for a channels-last layout
    (`x.contiguous(memory_format=channels_last)` on a 5-d tensor, `Module.to(
    memory_format=channels_last)` over a Conv3d's weight)."""
    rank = _FORMAT_RANK.get(memory_format)
    if rank is not None and len(shape) != rank:
        raise RuntimeError(f"required rank {rank} tensor to use {memory_format.value} format")


def strides_for(shape, memory_format: MemoryFormat) -> tuple[int, ...]:
    if memory_format in (channels_last, channels_last_3d) and len(shape) in (4, 5):
        return channels_last_strides(shape)
    return contiguous_strides(shape)


def is_contiguous_for(shape, strides, memory_format: MemoryFormat) -> bool:
    """PyTorch's is_contiguous: strides of size-1 dims do not matter."""
    if memory_format in (channels_last, channels_last_3d):
        if len(shape) not in (4, 5):
            return False
        order = (1,) + tuple(range(len(shape) - 1, 1, -1)) + (0,)
    else:
        order = tuple(range(len(shape) - 1, -1, -1))
    expected = 1
    for d in order:
        if shape[d] == 1:
            continue
        if strides[d] != expected:
            return False
        expected *= shape[d]
    return True


def suggest_memory_format(shape, strides) -> MemoryFormat:
    """channels_last (4-d) / channels_last_3d (5-d) only when the strides say so and
    plain contiguity does not."""
    fmt = {4: channels_last, 5: channels_last_3d}.get(len(shape))
    if fmt is not None and is_contiguous_for(shape, strides, fmt) and \
            not is_contiguous_for(shape, strides, contiguous_format):
        return fmt
    return contiguous_format


@dataclass(frozen=True)
class TensorMeta:
    shape: tuple[int, ...]
    dtype: DType
    device: str = "cpu"
    memory_format: MemoryFormat = contiguous_format
    strides: tuple[int, ...] | None = field(default=None, compare=False)

    def __post_init__(self):
        # symbolic sizes (SymDim) and probe sizes (TracedSize) stay what they are
        object.__setattr__(self, "shape", tuple(s if isinstance(s, (SymDim, TracedSize))
                                                else int(s) for s in self.shape))
        if self.strides is None:
            object.__setattr__(self, "strides", strides_for(self.shape, self.memory_format))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def dim(self) -> int:
        return len(self.shape)

    def numel(self) -> int:
        return math.prod(self.shape)

    def size(self, d: int | None = None):
        return self.shape if d is None else self.shape[d]

    def stride(self, d: int | None = None):
        return self.strides if d is None else self.strides[d]

    @property
    def nbytes(self) -> int:
        return self.numel() * self.dtype.itemsize

    def is_contiguous(self, memory_format: MemoryFormat = contiguous_format) -> bool:
        return is_contiguous_for(self.shape, self.strides, memory_format)

    def with_(self, **changes) -> "TensorMeta":
        fields = dict(shape=self.shape, dtype=self.dtype, device=self.device,
                      memory_format=self.memory_format)
        fields.update(changes)
        return TensorMeta(**fields)


class HasMeta:
    """Tensor metadata methods for stand-ins that hold a TensorMeta in `self.meta`
    (fx's MetaTensor, the graph builder's SymbolicTensor): what shape rules and user
    code read from a tensor that has no data."""
    __slots__ = ()
    requires_grad = False
    _shape_type = tuple            # MetaTensor uses ember.Size

    shape = property(lambda self: self._shape_type(self.meta.shape))
    dtype = property(lambda self: self.meta.dtype)
    ndim = property(lambda self: self.meta.ndim)
    device = property(lambda self: self.meta.device)
    memory_format = property(lambda self: self.meta.memory_format)

    def size(self, d=None):
        return self.shape if d is None else self.meta.shape[d]

    def dim(self) -> int:
        return self.meta.ndim

    def numel(self) -> int:
        return self.meta.numel()

    def stride(self, d=None):
        return self.meta.stride(d)

    def is_contiguous(self, memory_format=None):
        return self.meta.is_contiguous(*(() if memory_format is None else (memory_format,)))

    def is_floating_point(self) -> bool:
        return self.meta.dtype.is_floating_point

    def is_complex(self) -> bool:
        return self.meta.dtype.is_complex


def meta_of(value) -> TensorMeta:
    """TensorMeta of a Tensor-like (anything with shape, dtype, stride())."""
    if isinstance(value, TensorMeta):
        return value
    strides = tuple(value.stride())
    return TensorMeta(tuple(value.shape), value.dtype, str(value.device),
                      suggest_memory_format(tuple(value.shape), strides), strides)
