"""Compressed sparse layouts (torch.sparse_csr / sparse_csc / sparse_bsr / sparse_bsc):
construction, the index tensors, conversions to and from dense and COO, and products
with dense tensors.

A SparseCompressedTensor holds `compressed_indices` (one more than the rows, or columns
for CSC/BSC, a running count of entries), `plain_indices` (each entry's column, or row)
and `values` (one per entry; a block of values per entry for BSR/BSC). Its products and
elementwise ops run on the equivalent COO tensor, which shares the values tensor, so
gradients reach the values and the dense operand. Batched (3-D and up) compressed
tensors are not implemented; ember refuses them by name.
"""
from __future__ import annotations

from ..ir import dispatch, dtypes
from ..ir.meta import sparse_bsc, sparse_bsr, sparse_coo, sparse_csc, sparse_csr
from ..ir.registry import OPS
from .factories import as_tensor, zeros
from .sparse_coo import SparseAttributeError, SparseCOOTensor, SparseMetadata, SparseUnsupportedError
from .tensor import Size, Tensor

_COLUMN_MAJOR = (sparse_csc, sparse_bsc)
_BLOCKED = (sparse_bsr, sparse_bsc)
_NAMES = {sparse_csr: ("crow_indices", "col_indices"),
          sparse_bsr: ("crow_indices", "col_indices"),
          sparse_csc: ("ccol_indices", "row_indices"),
          sparse_bsc: ("ccol_indices", "row_indices")}


class SparseCompressedTensor(SparseMetadata):
    """What sparse_csr_tensor / sparse_csc_tensor / sparse_bsr_tensor / sparse_bsc_tensor
    return (`is_sparse` False and `is_sparse_csr` True for CSR, as in torch)."""
    _ember_tensor_like = True       # ember.is_tensor says True, as torch.is_tensor
    is_sparse = False
    is_mkldnn = False
    is_nested = False
    is_quantized = False

    def __init__(self, compressed: Tensor, plain: Tensor, values: Tensor, size, layout):
        self._compressed, self._plain, self._values_ = compressed, plain, values
        self._size = Size(size)
        self.layout = layout

    @property
    def is_sparse_csr(self) -> bool:
        return self.layout is sparse_csr

    def sparse_dim(self) -> int:
        return 2

    def dense_dim(self) -> int:
        return self._values_.dim() - (3 if self.layout in _BLOCKED else 1)

    def _nnz(self) -> int:
        return self._plain.shape[0]

    @property
    def requires_grad(self) -> bool:
        return self._values_.requires_grad

    def requires_grad_(self, requires_grad: bool = True):
        self._values_.requires_grad_(requires_grad)
        return self

    @property
    def grad(self):
        grad = self._values_.grad
        return None if grad is None else self._with_values(grad)

    def detach(self):
        return self._with_values(self._values_.detach())

    def clone(self, *, memory_format=None):
        return SparseCompressedTensor(self._compressed.clone(), self._plain.clone(),
                                      self._values_.clone(), self._size, self.layout)

    def _with_values(self, values: Tensor):
        return SparseCompressedTensor(self._compressed, self._plain, values, self._size,
                                      self.layout)

    # --- the parts ---------------------------------------------------------------------
    def _index(self, name: str, compressed: bool) -> Tensor:
        if name != _NAMES[self.layout][0 if compressed else 1]:
            wanted = "row" if name in ("crow_indices", "col_indices") else "column"
            raise RuntimeError(f"{name} expected sparse {wanted} compressed tensor layout "
                               f"but got {_layout_name(self.layout)}")
        return self._compressed if compressed else self._plain

    def crow_indices(self) -> Tensor:
        return self._index("crow_indices", True)

    def col_indices(self) -> Tensor:
        return self._index("col_indices", False)

    def ccol_indices(self) -> Tensor:
        return self._index("ccol_indices", True)

    def row_indices(self) -> Tensor:
        return self._index("row_indices", False)

    def values(self) -> Tensor:
        return self._values_

    # --- conversions ---------------------------------------------------------------------
    def to_sparse_coo(self) -> SparseCOOTensor:
        """The same entries as COO; shares the values tensor when not blocked."""
        outer = _expand_compressed(self._compressed)
        if self.layout in _BLOCKED:
            return _blocks_to_coo(self, outer)
        rows, cols = (self._plain, outer) if self.layout in _COLUMN_MAJOR \
            else (outer, self._plain)
        return SparseCOOTensor(OPS["stack"]([rows, cols], 0), self._values_, self._size,
                               coalesced=self.layout is sparse_csr)

    def to_dense(self, dtype=None, *, masked_grad=None) -> Tensor:
        if dtype is not None:
            raise RuntimeError("dtype argument is not supported by sparse_csr_to_dense")
        return self.to_sparse_coo().to_dense()

    def to_sparse(self, sparse_dim=None, *, layout=None, blocksize=None, dense_dim=None):
        if layout in (None, sparse_coo):
            return self.to_sparse_coo()
        if layout is self.layout and blocksize is None:
            return self
        return from_coo(self.to_sparse_coo(), layout, blocksize)

    def to_sparse_csr(self, dense_dim=None):
        return self.to_sparse(layout=sparse_csr)

    def to_sparse_csc(self, dense_dim=None):
        return self.to_sparse(layout=sparse_csc)

    def to_sparse_bsr(self, blocksize, dense_dim=None):
        return self.to_sparse(layout=sparse_bsr, blocksize=blocksize)

    def to_sparse_bsc(self, blocksize, dense_dim=None):
        return self.to_sparse(layout=sparse_bsc, blocksize=blocksize)

    def to(self, *args, **kwargs):
        return self._with_values(self._values_.to(*args, **kwargs))

    def double(self):
        return self.to(dtypes.float64)

    def float(self):
        return self.to(dtypes.float32)

    # --- products and transposes --------------------------------------------------------
    def t(self):
        """CSR.t() is the CSC tensor with the same index tensors (and the reverse)."""
        swapped = {sparse_csr: sparse_csc, sparse_csc: sparse_csr, sparse_bsr: sparse_bsc,
                   sparse_bsc: sparse_bsr}[self.layout]
        values = self._values_.transpose(-1, -2) if self.layout in _BLOCKED else self._values_
        return SparseCompressedTensor(self._compressed, self._plain, values,
                                      (self._size[1], self._size[0]), swapped)

    def transpose(self, dim0: int, dim1: int):
        if {dim0 % 2, dim1 % 2} != {0, 1}:
            return self
        return self.t()

    def sum(self, dim=None, keepdim=False, dtype=None):
        """All elements (torch's compressed tensors reduce over dims with keepdim=True
        only; ember leaves those to .to_sparse())."""
        if dim is not None:
            raise SparseUnsupportedError(f"sum: ember sums {_layout_name(self.layout)} "
                                         "tensors over all dimensions only; call "
                                         ".to_sparse() first")
        values = self._values_ if dtype is None else self._values_.to(dtype)
        return values.sum()

    def __matmul__(self, other):
        return OPS["matmul"](self, other)

    def __rmatmul__(self, other):
        return OPS["matmul"](other, self)

    def matmul(self, other):
        return OPS["matmul"](self, other)

    def mm(self, other):
        return OPS["mm"](self, other)

    def mv(self, vec):
        return OPS["mv"](self, vec)

    def __mul__(self, other):
        return OPS["mul"](self, other)

    __rmul__ = __mul__

    def __truediv__(self, other):
        return OPS["div"](self, other)

    def __neg__(self):
        return OPS["neg"](self)

    def __add__(self, other):
        return OPS["add"](self, other)

    def __repr__(self) -> str:
        from .sparse_coo import _part_repr
        first, second = _NAMES[self.layout]
        indent = " " * len("tensor(")
        suffix = "" if self.dtype in (dtypes.get_default_dtype(), dtypes.int64,
                                      dtypes.bool_) else f", dtype=ember.{self.dtype.name}"
        return (f"tensor({first}={_part_repr(self._compressed, 7 + len(first) + 1)},\n"
                f"{indent}{second}={_part_repr(self._plain, 7 + len(second) + 1)},\n"
                f"{indent}values={_part_repr(self._values_, 7 + 7)}, "
                f"size={tuple(self._size)}, nnz={self._nnz()}{suffix}, "
                f"layout=ember.{_layout_name(self.layout)})")

    def __array__(self, dtype=None, copy=None):
        raise SparseUnsupportedError(f"a {_layout_name(self.layout)} tensor was passed where "
                                     "ember needs a dense tensor; call .to_dense() first")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise SparseAttributeError(f"{name}: not supported by ember for "
                                   f"{_layout_name(self.layout)} tensors; call "
                                   ".to_dense() or .to_sparse() first")


def _layout_name(layout) -> str:
    return str(layout).rsplit(".", 1)[-1]


def _expand_compressed(compressed: Tensor) -> Tensor:
    """crow_indices [0, 2, 2, 3] -> each entry's row [0, 0, 2]."""
    counts = compressed[1:] - compressed[:-1]
    return OPS["arange"](0, counts.shape[0], dtype=dtypes.int64).repeat_interleave(counts)


def _blocks_to_coo(tensor: SparseCompressedTensor, outer: Tensor) -> SparseCOOTensor:
    """Each block's elements as COO entries (in block order: uncoalesced)."""
    values = tensor._values_
    bh, bw = values.shape[1], values.shape[2]
    block_rows, block_cols = (tensor._plain, outer) if tensor.layout is sparse_bsc \
        else (outer, tensor._plain)
    inner_r = OPS["arange"](0, bh, dtype=dtypes.int64).reshape(1, bh, 1)
    inner_c = OPS["arange"](0, bw, dtype=dtypes.int64).reshape(1, 1, bw)
    rows = (block_rows.reshape(-1, 1, 1) * bh + inner_r).expand(-1, bh, bw).reshape(-1)
    cols = (block_cols.reshape(-1, 1, 1) * bw + inner_c).expand(-1, bh, bw).reshape(-1)
    return SparseCOOTensor(OPS["stack"]([rows, cols], 0), values.reshape(-1),
                           tensor._size)


def _compress(outer: Tensor, extent: int) -> Tensor:
    counts = OPS["bincount"](outer, minlength=extent) if outer.shape[0] else \
        zeros((extent,), dtype=dtypes.int64)
    return OPS["cat"]([zeros((1,), dtype=dtypes.int64), OPS["cumsum"](counts, 0)], 0)


def _check_2d(op: str, shape) -> None:
    if len(shape) != 2:
        raise SparseUnsupportedError(f"{op}: ember's compressed sparse tensors are 2-D "
                                     f"(no batch or dense dimensions), got size {list(shape)}")


def from_dense(dense: Tensor, layout, blocksize=None) -> SparseCompressedTensor:
    name = f"to_sparse_{_layout_name(layout).split('_')[1]}"
    _check_2d(name, dense.shape)
    if layout in _BLOCKED:
        return _blocked_from_dense(dense, layout, blocksize, name)
    if blocksize is not None:
        raise RuntimeError(f"{name}: blocksize is for the blocked layouts only")
    return from_coo(dense.to_sparse(), layout, None)


def from_coo(coo: SparseCOOTensor, layout, blocksize) -> SparseCompressedTensor:
    _check_2d(f"to_sparse_{_layout_name(layout).split('_')[1]}", coo.shape)
    if layout in _BLOCKED:
        return _blocked_from_dense(coo.to_dense(), layout, blocksize, "to_sparse_bsr")
    if layout is sparse_coo:
        return coo
    if layout is sparse_csc:
        flipped = SparseCOOTensor(coo._indices_.flip(0), coo._values_, coo.shape[::-1])
        csr = from_coo(flipped, sparse_csr, None)
        return SparseCompressedTensor(csr._compressed, csr._plain, csr._values_,
                                      coo.shape, sparse_csc)
    coalesced = coo.coalesce()
    rows, cols = coalesced._indices_[0], coalesced._indices_[1]
    return SparseCompressedTensor(_compress(rows, coo.shape[0]), cols, coalesced._values_,
                                  coo.shape, sparse_csr)


def _blocked_from_dense(dense: Tensor, layout, blocksize, name: str):
    if blocksize is None or len(tuple(blocksize)) != 2:
        raise RuntimeError(f"{name}: expected a blocksize of two ints, got {blocksize}")
    bh, bw = (int(b) for b in blocksize)
    rows, cols = dense.shape
    if rows % bh or cols % bw:
        raise RuntimeError(f"{name}: tensor size {list(dense.shape)} is not divisible by "
                           f"blocksize {[bh, bw]}")
    blocks = dense.reshape(rows // bh, bh, cols // bw, bw).permute(0, 2, 1, 3)
    if layout is sparse_bsc:
        blocks = blocks.transpose(0, 1)
    present = OPS["nonzero"]((blocks != 0).any(-1).any(-1)).t()
    outer, inner = present[0], present[1]
    values = blocks[outer, inner]
    return SparseCompressedTensor(_compress(outer, blocks.shape[0]), inner, values,
                                  dense.shape, layout)


def sparse_compressed_tensor(compressed_indices, plain_indices, values, size=None, *,
                             dtype=None, layout=None, device=None, requires_grad=False,
                             check_invariants=None, pin_memory=False):
    if layout not in (sparse_csr, sparse_csc, sparse_bsr, sparse_bsc):
        raise RuntimeError(f"sparse_compressed_tensor: expected a compressed sparse layout, "
                           f"got {layout}")
    op = f"sparse_{_layout_name(layout).split('_')[1]}_tensor"
    compressed = as_tensor(compressed_indices, device=device).to(dtypes.int64)
    plain = as_tensor(plain_indices, device=device).to(dtypes.int64)
    values = as_tensor(values, dtype=dtype, device=device)
    if compressed.dim() != 1 or plain.dim() != 1:
        raise SparseUnsupportedError(f"{op}: ember takes 1-D index tensors (no batch "
                                     "dimensions)")
    if plain.shape[0] != values.shape[0]:
        raise RuntimeError(f"{op}: expected {_NAMES[layout][1]} and values to have the same "
                           f"number of entries, got {plain.shape[0]} and {values.shape[0]}")
    blocked = layout in _BLOCKED
    block = tuple(values.shape[1:3]) if blocked else (1, 1)
    if size is None:
        outer = compressed.shape[0] - 1
        inner = int(plain.max()) + 1 if plain.shape[0] else 0
        size = (outer, inner) if layout not in _COLUMN_MAJOR else (inner, outer)
        size = (size[0] * block[0], size[1] * block[1])
    size = tuple(size)
    _check_2d(op, size)
    _check_compressed(op, layout, compressed, plain, size, block)
    if requires_grad:
        values = values.detach().requires_grad_()
    return SparseCompressedTensor(compressed, plain, values, size, layout)


def _check_compressed(op, layout, compressed, plain, size, block) -> None:
    first, second = _NAMES[layout]
    column_major = layout in _COLUMN_MAJOR
    outer = (size[1] // block[1]) if column_major else (size[0] // block[0])
    inner = (size[0] // block[0]) if column_major else (size[1] // block[1])
    if compressed.shape[0] != outer + 1:
        raise RuntimeError(f"{op}: {first} must have {outer + 1} elements (the number of "
                           f"{'columns' if column_major else 'rows'} + 1) for size "
                           f"{list(size)}, but got {compressed.shape[0]}")
    if int(compressed[0]) != 0 or int(compressed[-1]) != plain.shape[0]:
        raise RuntimeError(f"{op}: {first} must start at 0 and end at nnz "
                           f"({plain.shape[0]}), got {compressed.tolist()}")
    if bool((compressed[1:] < compressed[:-1]).any()):
        raise RuntimeError(f"{op}: {first} must be non-decreasing, got "
                           f"{compressed.tolist()}")
    if plain.shape[0] and (int(plain.min()) < 0 or int(plain.max()) >= inner):
        raise RuntimeError(f"{op}: {second} must be in [0, {inner}), got "
                           f"{plain.tolist()}")


def _factory(layout):
    def construct(compressed_indices, plain_indices, values, size=None, **kwargs):
        return sparse_compressed_tensor(compressed_indices, plain_indices, values, size,
                                        layout=layout, **kwargs)
    return construct


sparse_csr_tensor = _factory(sparse_csr)
sparse_csc_tensor = _factory(sparse_csc)
sparse_bsr_tensor = _factory(sparse_bsr)
sparse_bsc_tensor = _factory(sparse_bsc)


# --- ops: through the equivalent COO tensor --------------------------------------------
_THROUGH_VALUES = ("neg", "abs", "sqrt", "sin", "tanh", "relu", "square", "sign", "sgn",
                   "floor", "ceil", "trunc", "round", "expm1", "log1p", "asin", "atan",
                   "sinh", "asinh", "erf", "frac", "deg2rad", "rad2deg")


def _run_with_compressed(op, args: tuple):
    name = op.name
    first = args[0]
    if name == "sum" and isinstance(first, SparseCompressedTensor):
        return first.sum(args[1], args[2], args[3])
    if name in ("mm", "matmul", "mv", "addmm"):
        coo_args = tuple(a.to_sparse_coo() if isinstance(a, SparseCompressedTensor) else a
                         for a in args)
        return dispatch.dispatch(op, coo_args)
    if isinstance(first, SparseCompressedTensor) and name in _THROUGH_VALUES:
        return first._with_values(dispatch.dispatch(op, (first._values_,) + tuple(args[1:])))
    if isinstance(first, SparseCompressedTensor) and name in ("mul", "div") and \
            (isinstance(args[1], (int, float)) or
             isinstance(args[1], Tensor) and args[1].dim() == 0):
        return first._with_values(dispatch.dispatch(op, (first._values_,) + tuple(args[1:])))
    if name == "add" and all(isinstance(a, SparseCompressedTensor) for a in args[:2]):
        a, b = args[0], args[1]
        if a.layout is not b.layout:
            raise RuntimeError(f"add: expected both operands in one layout, got "
                               f"{_layout_name(a.layout)} and {_layout_name(b.layout)}")
        total = OPS["add"](a.to_sparse_coo(), b.to_sparse_coo(), alpha=args[2]).coalesce()
        return from_coo(total, a.layout, None)
    if name == "add" and isinstance(args[1], SparseCompressedTensor) and \
            isinstance(first, Tensor):
        return OPS["add"](first, args[1].to_sparse_coo(), alpha=args[2])
    layouts = {_layout_name(a.layout) for a in args
               if isinstance(a, SparseCompressedTensor)}
    raise SparseUnsupportedError(f"{name}: not supported by ember for "
                                 f"{', '.join(sorted(layouts))} tensors; call .to_dense() "
                                 "or .to_sparse() first")


def _values_method(name: str):
    def method(self, *args, **kwargs):
        return OPS[name](self, *args, **kwargs)
    method.__name__ = name
    return method


for _name in _THROUGH_VALUES + ("mul", "div", "add"):
    setattr(SparseCompressedTensor, _name, _values_method(_name))

# above sparse COO (3), below fx's shape propagation (5) and proxies (10)
dispatch.register_value_handler(SparseCompressedTensor, _run_with_compressed, priority=4)
