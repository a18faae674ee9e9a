"""Sparse COO tensors (torch.sparse_coo_tensor) for the code that builds an adjacency
or a feature matrix sparse and multiplies it with dense tensors (graph convolutions,
bag-of-words layers).

A SparseCOOTensor holds `indices` (sparse_dim x nnz, int64) and `values` (nnz x the
dense dimensions) of a tensor of `size`. Its products with dense tensors are written
with ember's dense ops (index_select, multiply, index_add), so they run eagerly and
differentiate: a gradient reaches the dense operand and the values (`A.grad` is then
the sparse gradient over A's pattern, as in torch). A dispatch handler of its own lets
torch.mm / torch.matmul / `@` / torch.addmm take a sparse operand; any other op given
one, and any method a sparse tensor lacks, raises and names `.to_dense()`: ember never
silently densifies.
"""
from __future__ import annotations

from ..ir import dispatch, dtypes
from ..ir.errors import EmberError
from ..ir.meta import sparse_bsc, sparse_bsr, sparse_coo, sparse_csc, sparse_csr
from ..ir.registry import OPS
from .factories import as_tensor, zeros
from .tensor import Size, Tensor


_COMPRESSED = (sparse_csr, sparse_csc, sparse_bsr, sparse_bsc)


class SparseUnsupportedError(EmberError, NotImplementedError, TypeError):
    """An op ember's sparse tensors do not take: torch's NotImplementedError ("Could not
    run 'aten::x' with arguments from the 'SparseCPU' backend"), and a TypeError as
    ember's earlier refusals were."""


class SparseAttributeError(SparseUnsupportedError, AttributeError):
    """A method sparse tensors lack: NotImplementedError as torch's call would raise,
    and an AttributeError, so that hasattr() answers False."""


class SparseMetadata:
    """The metadata every sparse layout reads the same way, from its `_size` and its stored
    values `_values_` (COO here; CSR/CSC/BSR/BSC in sparse_compressed.py)."""

    @property
    def shape(self) -> Size:
        return self._size

    def size(self, dim: int | None = None):
        return self._size if dim is None else self._size[dim]

    def dim(self) -> int:
        return len(self._size)

    ndim = property(dim)
    ndimension = dim

    def __len__(self) -> int:
        if not self._size:
            raise TypeError("len() of a 0-d tensor")
        return self._size[0]

    @property
    def dtype(self):
        return self._values_.dtype

    @property
    def device(self):
        return self._values_.device

    @property
    def is_cuda(self) -> bool:
        return self._values_.is_cuda

    @property
    def is_cpu(self) -> bool:
        return not self._values_.is_cuda

    def is_floating_point(self) -> bool:
        return self._values_.is_floating_point()

    def is_complex(self) -> bool:
        return self._values_.is_complex()

    def element_size(self) -> int:
        return self._values_.element_size()

    def numel(self) -> int:
        return self._size.numel()

    nelement = numel


class SparseCOOTensor(SparseMetadata):
    """What sparse_coo_tensor returns (`is_sparse` True, layout sparse_coo).

    Its state (indices, values, size, coalesced flag) is replaced wholesale by in-place
    ops (`mul_`, `zero_`, `sparse_resize_`, ...); the values tensor carries autograd."""
    _ember_tensor_like = True       # ember.is_tensor says True, as torch.is_tensor
    is_sparse = True
    is_sparse_csr = False
    is_mkldnn = False
    is_nested = False
    is_quantized = False
    is_meta = False
    layout = sparse_coo

    def __init__(self, indices: Tensor, values: Tensor, size, coalesced: bool = False):
        self._indices_, self._values_ = indices, values
        self._size = Size(size)
        self._coalesced = coalesced

    def _assign(self, other: "SparseCOOTensor") -> "SparseCOOTensor":
        """In-place ops: take `other`'s state (this object stays the user's tensor)."""
        self._indices_, self._values_ = other._indices_, other._values_
        self._size, self._coalesced = other._size, other._coalesced
        return self

    def _with_values(self, values: Tensor, coalesced=None) -> "SparseCOOTensor":
        return SparseCOOTensor(self._indices_, values, self._size,
                               self._coalesced if coalesced is None else coalesced)

    def type(self, dtype=None):
        if dtype is None:
            return "torch.sparse." + _type_name(self.dtype)
        return self.to(dtype)

    def sparse_dim(self) -> int:
        return self._indices_.shape[0]

    def dense_dim(self) -> int:
        return self._values_.dim() - 1

    def _nnz(self) -> int:
        return self._values_.shape[0]

    # --- autograd ------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._values_.requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        self._values_.requires_grad_(value)

    def requires_grad_(self, requires_grad: bool = True) -> "SparseCOOTensor":
        self._values_.requires_grad_(requires_grad)
        return self

    @property
    def grad(self):
        """The gradient with respect to this tensor (not to each stored entry): over
        the coalesced pattern, one value per position, as torch reports it."""
        grad = self._values_.grad
        if grad is None:
            return None
        if self._coalesced:
            return SparseCOOTensor(self._indices_, grad, self._size, True)
        unique, inverse = self._unique_positions()
        # repeated entries of one position all received that position's gradient
        per_position = zeros((unique.shape[0],) + tuple(grad.shape[1:]), dtype=grad.dtype)
        per_position = per_position.index_copy(0, inverse, grad)
        return SparseCOOTensor(self._unravel(unique), per_position, self._size, True)

    @grad.setter
    def grad(self, value) -> None:
        if value is not None:
            raise SparseUnsupportedError("sparse tensors: assigning .grad is not supported "
                                         "by ember")
        self._values_.grad = None

    @property
    def grad_fn(self):
        return self._values_.grad_fn

    def _unique_positions(self):
        return OPS["unique"](self._linear_indices(), sorted=True, return_inverse=True)[:2]

    @property
    def is_leaf(self) -> bool:
        return self._values_.is_leaf

    def detach(self) -> "SparseCOOTensor":
        return self._with_values(self._values_.detach())

    def detach_(self) -> "SparseCOOTensor":
        return self._assign(self.detach())

    @property
    def data(self) -> "SparseCOOTensor":
        return self.detach()

    # --- the parts -----------------------------------------------------------------
    def _indices(self) -> Tensor:
        return self._indices_

    def _values(self) -> Tensor:
        return self._values_

    def indices(self) -> Tensor:
        self._require_coalesced("indices")
        return self._indices_

    def values(self) -> Tensor:
        self._require_coalesced("values")
        return self._values_

    def _require_coalesced(self, what: str) -> None:
        if not self._coalesced:
            raise RuntimeError(f"Cannot get {what} on an uncoalesced tensor, please call "
                               ".coalesce() first")

    def is_coalesced(self) -> bool:
        return self._coalesced

    def _coalesced_(self, coalesced: bool) -> "SparseCOOTensor":
        self._coalesced = coalesced
        return self

    def coalesce(self) -> "SparseCOOTensor":
        """Indices sorted and unique, the values of repeated indices summed."""
        if self._coalesced:
            return self
        if self.sparse_dim() == 0:     # every entry is the one position: sum them
            return SparseCOOTensor(self._indices_[:, :1], self._values_.sum(0, keepdim=True),
                                   self._size, coalesced=True) if self._nnz() else \
                SparseCOOTensor(self._indices_, self._values_, self._size, coalesced=True)
        unique, inverse = self._unique_positions()
        values = zeros((unique.shape[0],) + tuple(self._values_.shape[1:]), dtype=self.dtype)
        values = values.index_add(0, inverse, self._values_)
        return SparseCOOTensor(self._unravel(unique), values, self._size, coalesced=True)

    def _linear_indices(self) -> Tensor:
        linear = zeros((self._nnz(),), dtype=dtypes.int64)
        for row, extent in enumerate(self._size[:self.sparse_dim()]):
            linear = linear * extent + self._indices_[row]
        return linear

    def _unravel(self, linear: Tensor) -> Tensor:
        rows = []
        for extent in reversed(self._size[:self.sparse_dim()]):
            rows.append(linear % extent)
            linear = linear.div(extent, rounding_mode="floor")
        if not rows:
            return zeros((0, linear.shape[0]), dtype=dtypes.int64)
        return OPS["stack"](rows[::-1], 0)

    # --- conversions ---------------------------------------------------------------
    def to_dense(self, dtype=None, *, masked_grad=None) -> Tensor:
        if dtype is not None:
            raise RuntimeError("dtype argument is not supported by sparse_to_dense")
        dense = zeros(tuple(self._size), dtype=self.dtype)
        if self.sparse_dim() == 0:
            return dense + self._values_.sum(0) if self._nnz() else dense
        positions = tuple(self._indices_[row] for row in range(self.sparse_dim()))
        return dense.index_put(positions, self._values_, accumulate=True)

    def to(self, *args, **kwargs) -> "SparseCOOTensor":
        return SparseCOOTensor(self._indices_.to(*[a for a in args if not _is_dtype(a)],
                                                 **{k: v for k, v in kwargs.items()
                                                    if k != "dtype"}),
                               self._values_.to(*args, **kwargs), self._size, self._coalesced)

    def cpu(self) -> "SparseCOOTensor":
        return self.to("cpu")

    def cuda(self, device=None) -> "SparseCOOTensor":
        return self.to("cuda" if device is None else device)

    def float(self) -> "SparseCOOTensor":
        return self.to(dtypes.float32)

    def double(self) -> "SparseCOOTensor":
        return self.to(dtypes.float64)

    def half(self) -> "SparseCOOTensor":
        return self.to(dtypes.float16)

    def long(self) -> "SparseCOOTensor":
        return self.to(dtypes.int64)

    def int(self) -> "SparseCOOTensor":
        return self.to(dtypes.int32)

    def bool(self) -> "SparseCOOTensor":
        return self.to(dtypes.bool_)

    def clone(self, *, memory_format=None) -> "SparseCOOTensor":
        return SparseCOOTensor(self._indices_.clone(), self._values_.clone(), self._size,
                               self._coalesced)

    def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None,
                  dense_dim=None):
        if layout in (None, sparse_coo) and sparse_dim in (None, self.sparse_dim()):
            return self
        if sparse_dim is not None:
            raise RuntimeError("to_sparse: conversion from Sparse to Sparse with sparse_dim "
                               "argument !=self.sparse_dim() is not supported")
        from . import sparse_compressed
        return sparse_compressed.from_coo(self, layout, blocksize)

    def to_sparse_coo(self) -> "SparseCOOTensor":
        return self

    def to_sparse_csr(self, dense_dim=None):
        from . import sparse_compressed
        return sparse_compressed.from_coo(self, sparse_csr, None)

    def to_sparse_csc(self, dense_dim=None):
        from . import sparse_compressed
        return sparse_compressed.from_coo(self, sparse_csc, None)

    def to_sparse_bsr(self, blocksize, dense_dim=None):
        from . import sparse_compressed
        return sparse_compressed.from_coo(self, sparse_bsr, blocksize)

    def numpy(self, *, force=False):
        raise TypeError("can't convert a sparse tensor to numpy: call .to_dense() first")

    def tolist(self):
        raise RuntimeError("tolist() is not supported for sparse tensors; call .to_dense() "
                           "first")

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"a Tensor with {self.numel()} elements cannot be converted "
                               "to Scalar")
        return self.to_dense().item()

    def __repr__(self) -> str:
        indent = len("tensor(")
        default = (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool_)
        suffix = "" if self.dtype in default else f", dtype=ember.{self.dtype.name}"
        if self._values_.grad_fn is not None:
            grad = f", grad_fn=<{type(self._values_.grad_fn).__name__}>"
        else:
            grad = ", requires_grad=True" if self.requires_grad else ""
        return (f"tensor(indices={_part_repr(self._indices_, indent + 8)},\n"
                f"{' ' * indent}values={_part_repr(self._values_, indent + 7)},\n"
                f"{' ' * indent}size={tuple(self._size)}, nnz={self._nnz()}{suffix}, "
                f"layout=ember.sparse_coo{grad})")

    __str__ = __repr__

    def __array__(self, dtype=None, copy=None):
        # reached when a dense op is handed a sparse tensor
        raise SparseUnsupportedError(
            "a sparse COO tensor was passed where ember needs a dense tensor: multiply "
            "with torch.sparse.mm / torch.spmm / `@`, or call .to_dense() first")

    def __bool__(self) -> bool:
        return bool(self.item())

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise SparseAttributeError(f"sparse tensors: '{name}' is not supported by ember; "
                                   "call .to_dense() first")


def _part_repr(tensor: Tensor, column: int) -> str:
    """indices or values inside a sparse tensor's repr: as torch prints them, without
    their dtype (the sparse tensor names it once) and with the size when empty."""
    from .printing import tensor_str
    array = tensor.detach().numpy()
    if array.size == 0:
        return f"tensor([], size={tuple(array.shape)})"
    return "tensor(" + tensor_str(array, column + len("tensor(")) + ")"


def _is_dtype(value) -> bool:
    return isinstance(value, dtypes.DType)


def _type_dtype_name(dtype) -> str:
    return str(dtype).rsplit(".", 1)[-1]


_LEGACY_TYPE = {"float32": "FloatTensor", "float64": "DoubleTensor", "float16": "HalfTensor",
                "bfloat16": "BFloat16Tensor", "int64": "LongTensor", "int32": "IntTensor",
                "int16": "ShortTensor", "int8": "CharTensor", "uint8": "ByteTensor",
                "bool": "BoolTensor"}


def _type_name(dtype) -> str:
    return _LEGACY_TYPE.get(_type_dtype_name(dtype), _type_dtype_name(dtype))


def sparse_coo_tensor(indices=None, values=None, size=None, *, dtype=None, device=None,
                      requires_grad: bool = False, check_invariants=None,
                      is_coalesced: bool | None = None) -> SparseCOOTensor:
    """A sparse tensor with values[i] at indices[:, i] (torch.sparse_coo_tensor)."""
    if values is None:          # sparse_coo_tensor(size): an empty tensor of that size
        size = tuple(indices)
        indices = zeros((len(size), 0), dtype=dtypes.int64)
        values = zeros((0,), dtype=dtype or dtypes.float32)
    indices = as_tensor(indices, device=device).to(dtypes.int64)   # torch casts, too
    values = as_tensor(values, dtype=dtype, device=device)
    if indices.dim() != 2:
        raise RuntimeError(f"sparse_coo_tensor: indices must be sparse_dim x nnz, but got: "
                           f"{list(indices.shape)}")
    if indices.shape[1] != values.shape[0]:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from "
                           f"indices: {indices.shape[1]}, nnz from values: {values.shape[0]}")
    sparse_dims = indices.shape[0]
    if size is None:
        extents = indices.max(1).values + 1 if indices.shape[1] else zeros((sparse_dims,))
        size = tuple(int(e) for e in extents.tolist()) + tuple(values.shape[1:])
    size = tuple(size)
    if len(size) != sparse_dims + values.dim() - 1:
        raise RuntimeError(f"sparse_coo_tensor: number of dimensions must be sparse_dim "
                           f"({sparse_dims}) + dense_dim ({values.dim() - 1}), but got "
                           f"{len(size)} (size={list(size)})")
    if check_invariants is None:
        check_invariants = check_sparse_tensor_invariants.is_enabled()
    if check_invariants and indices.shape[1]:
        _check_indices(indices, size)
    if requires_grad:
        values = values.detach().requires_grad_()
    coalesced = bool(is_coalesced) if is_coalesced is not None else indices.shape[1] <= 1
    return SparseCOOTensor(indices, values, size, coalesced)


class check_sparse_tensor_invariants:
    """torch.sparse.check_sparse_tensor_invariants: while on (a context, a decorator, or
    enable()), sparse_coo_tensor checks its indices when check_invariants is not given."""
    _enabled = False

    @staticmethod
    def is_enabled() -> bool:
        return check_sparse_tensor_invariants._enabled

    @staticmethod
    def enable() -> None:
        check_sparse_tensor_invariants._enabled = True

    @staticmethod
    def disable() -> None:
        check_sparse_tensor_invariants._enabled = False

    def __init__(self, enable: bool = True):
        self.state = enable
        self.saved = None

    def __enter__(self):
        self.saved = check_sparse_tensor_invariants._enabled
        check_sparse_tensor_invariants._enabled = self.state
        return self

    def __exit__(self, *exc):
        check_sparse_tensor_invariants._enabled = self.saved

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def run(*args, **kwargs):
            with check_sparse_tensor_invariants(self.state):
                return fn(*args, **kwargs)
        return run


def _check_indices(indices: Tensor, size) -> None:
    lowest, highest = indices.min(1).values.tolist(), indices.max(1).values.tolist()
    for dim, (low, high) in enumerate(zip(lowest, highest)):
        if low < 0:
            raise RuntimeError(f"sparse_coo_tensor: found negative index {low} for dim {dim}")
        if high >= size[dim]:
            raise RuntimeError(f"sparse_coo_tensor: size is inconsistent with indices: for "
                               f"dim {dim}, size is {size[dim]} but found index {high}")


def mm(mat1, mat2):
    """sparse @ dense (or dense @ sparse): a dense result, differentiable in both the
    dense operand and the sparse operand's values; sparse @ sparse: a coalesced sparse
    result (CSR when both operands are CSR, as torch's)."""
    compressed = [getattr(m, "layout", None) in _COMPRESSED for m in (mat1, mat2)]
    if any(compressed):
        product = mm(*(m.to_sparse_coo() if c else m for m, c in zip((mat1, mat2), compressed)))
        both_csr = mat1.layout is sparse_csr and getattr(mat2, "layout", None) is sparse_csr
        return product.to_sparse_csr() if both_csr else product
    if isinstance(mat1, SparseCOOTensor) and isinstance(mat2, SparseCOOTensor):
        return _sparse_times_sparse(mat1, mat2)
    if isinstance(mat1, SparseCOOTensor) and isinstance(mat2, Tensor):
        return _sparse_times_dense(mat1, mat2)
    if isinstance(mat1, Tensor) and isinstance(mat2, SparseCOOTensor):
        if mat1.dim() != 2:
            raise RuntimeError(f"mm: expected a 2-D dense matrix times a sparse one, got a "
                               f"{mat1.dim()}-D dense operand")
        return _sparse_times_dense(mat2.t(), mat1.t()).t()
    raise SparseUnsupportedError("mm: ember's sparse mm multiplies a 2-D sparse COO tensor "
                                 "with a dense or sparse COO one; got "
                                 f"{type(mat1).__name__} and {type(mat2).__name__}")


def _check_matrix(op: str, sparse: SparseCOOTensor) -> None:
    if sparse.dim() != 2 or sparse.dense_dim():
        raise RuntimeError(f"{op}: expected a 2-D sparse matrix with no dense dimensions, "
                           f"got size {tuple(sparse.shape)} with {sparse.dense_dim()} dense")


def _sparse_times_dense(sparse: SparseCOOTensor, dense: Tensor) -> Tensor:
    _check_matrix("mm", sparse)
    if dense.dim() not in (1, 2) or dense.shape[0] != sparse.shape[1]:
        raise RuntimeError(f"mm: mat1 and mat2 shapes cannot be multiplied "
                           f"({sparse.shape[0]}x{sparse.shape[1]} and "
                           f"{'x'.join(str(s) for s in dense.shape)})")
    rows, cols = sparse._indices()[0], sparse._indices()[1]
    vector = dense.dim() == 1
    matrix = dense.unsqueeze(1) if vector else dense
    values = sparse._values()
    if values.dtype != matrix.dtype:
        raise RuntimeError(f"mm: expected mat1 and mat2 to have the same dtype, but "
                           f"got: {values.dtype} != {matrix.dtype}")
    products = matrix.index_select(0, cols) * values.unsqueeze(1)
    out = zeros((sparse.shape[0], matrix.shape[1]), dtype=products.dtype)
    out = out.index_add(0, rows, products)
    return out.squeeze(1) if vector else out


def _sparse_times_sparse(a: SparseCOOTensor, b: SparseCOOTensor) -> SparseCOOTensor:
    """Each entry (i, k) of a meets every entry (k, j) of b (sparse_ops.matching_entries
    finds them in linear time); the products of one position are summed by coalesce."""
    _check_matrix("mm", a)
    _check_matrix("mm", b)
    if a.shape[1] != b.shape[0]:
        raise RuntimeError(f"mm: mat1 and mat2 shapes cannot be multiplied "
                           f"({a.shape[0]}x{a.shape[1]} and {b.shape[0]}x{b.shape[1]})")
    from .sparse_ops import matching_entries
    a_rows, a_cols = a._indices_[0], a._indices_[1]
    which_a, which_b = matching_entries(b._indices_[0], b.shape[0], a_cols)
    indices = OPS["stack"]([a_rows[which_a], b._indices_[1][which_b]], 0)
    values = a._values_[which_a] * b._values_[which_b]
    return SparseCOOTensor(indices, values, (a.shape[0], b.shape[1])).coalesce()


def addmm(mat, mat1, mat2, *, beta=1, alpha=1):
    """beta * mat + alpha * (mat1 @ mat2) with mat1 sparse."""
    product = mm(mat1, mat2)
    if isinstance(mat, SparseCOOTensor):
        return mat * beta + product * alpha
    if beta == 0:
        return product * alpha
    return mat * beta + product * alpha


def sum(input, dim=None, dtype=None):
    """torch.sparse.sum: all elements (a 0-d dense tensor), or over `dim`: a sparse
    tensor over the sparse dims that remain, dense once none does."""
    if getattr(input, "layout", None) in _COMPRESSED:
        if dim is not None:
            raise SparseUnsupportedError("sparse.sum: ember sums compressed sparse tensors "
                                         "over all dimensions only; use .to_sparse() first")
        return input.sum(dtype=dtype)
    if not isinstance(input, SparseCOOTensor):
        total = input.sum() if dim is None else input.sum(dim)
        return total if dtype is None else total.to(dtype)
    values = input._values_ if dtype is None else input._values_.to(dtype)
    if dim is None:
        return values.sum()
    dims = sorted({_wrap_dim("sparse.sum", d, input.dim())
                   for d in ((dim,) if isinstance(dim, int) else dim)})
    nsparse = input.sparse_dim()
    dense_dims = [d - nsparse + 1 for d in dims if d >= nsparse]
    if dense_dims:
        values = values.sum(dense_dims)
    keep = [d for d in range(nsparse) if d not in dims]
    if len(keep) == nsparse:
        return SparseCOOTensor(input._indices_, values, _sizes_without(input, dims),
                               input._coalesced).coalesce()
    if not keep:
        return values.sum(0)
    indices = input._indices_[keep]
    return SparseCOOTensor(indices, values, _sizes_without(input, dims)).coalesce()


def _sizes_without(input, dims) -> tuple:
    return tuple(n for d, n in enumerate(input.shape) if d not in dims)


def _wrap_dim(op: str, dim: int, ndim: int) -> int:
    if not -ndim <= dim < ndim:
        raise IndexError(f"{op}: Dimension out of range (expected to be in range of "
                         f"[{-ndim}, {ndim - 1}], but got {dim})")
    return dim % ndim


def to_sparse(self, sparse_dim: int | None = None, *, layout=None, blocksize=None,
              dense_dim=None):
    """A dense tensor's nonzeros as a coalesced sparse COO tensor (or, with `layout`, one
    of the compressed layouts: frontend/sparse_compressed.py)."""
    if layout not in (None, sparse_coo):
        from . import sparse_compressed
        return sparse_compressed.from_dense(self, layout, blocksize)
    sparse_dim = self.dim() if sparse_dim is None else sparse_dim
    if not 0 <= sparse_dim <= self.dim():
        raise RuntimeError(f"to_sparse: sparse_dim argument must be in [0,{self.dim()}] "
                           f"range, but {sparse_dim} is given")
    if sparse_dim == 0:
        return SparseCOOTensor(zeros((0, 1), dtype=dtypes.int64), self.unsqueeze(0),
                               self.shape, coalesced=True)
    head = self.reshape(tuple(self.shape[:sparse_dim]) + (-1,)) if sparse_dim < self.dim() \
        else self.unsqueeze(-1)
    nonzero = (head != 0).any(-1)
    indices = OPS["nonzero"](nonzero).t()
    positions = tuple(indices[row] for row in range(sparse_dim))
    values = self[positions]
    return SparseCOOTensor(indices.contiguous(), values, self.shape, coalesced=True)


def _run_with_sparse(op, args: tuple):
    """An op called with a sparse tensor among its tensors: frontend/sparse_ops.py's
    table has the ops sparse tensors take; any other refuses, naming the op."""
    from .sparse_ops import run_sparse_op
    return run_sparse_op(op, args)


# above eager tensors (0), below fx's shape propagation (5) and proxies (10)
dispatch.register_value_handler(SparseCOOTensor, _run_with_sparse, priority=3)


# --- sparse gradients: nn.Embedding(sparse=True) / F.embedding(..., sparse=True) ----------
def embedding_grad(grad: Tensor, indices: Tensor, padding_idx, scale_grad_by_freq: bool,
                   weight_shape) -> SparseCOOTensor:
    """The weight gradient of embedding(sparse=True), as PyTorch gives it: uncoalesced,
    one entry per looked-up position (padding positions dropped), each entry the
    output gradient of that position."""
    if scale_grad_by_freq:
        raise RuntimeError("embedding_backward: scale_grad_by_freq not supported with "
                           "sparse gradients")
    rows, width = weight_shape
    flat = indices.reshape([-1]).to(dtypes.int64)
    values = grad.reshape([-1, width])
    if padding_idx is not None and padding_idx >= 0:
        keep = OPS["nonzero"](flat != padding_idx).reshape([-1])
        flat, values = flat[keep], values[keep]
    return SparseCOOTensor(flat.unsqueeze(0), values, (rows, width))


def add_grads(a, b):
    """a + b for gradients where either may be sparse: sparse + sparse stays sparse (the
    entries concatenated, as PyTorch's accumulation), sparse + dense is dense."""
    a_sparse, b_sparse = isinstance(a, SparseCOOTensor), isinstance(b, SparseCOOTensor)
    if a_sparse and b_sparse:
        return a + b
    if a_sparse:
        return a.to_dense() + b
    if b_sparse:
        return a + b.to_dense()
    return a + b


from . import sparse_ops  # noqa: E402,F401  (the ops table; installs the tensor methods)
