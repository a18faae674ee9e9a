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
from ..ir.meta import sparse_coo
from ..ir.registry import OPS
from .factories import as_tensor, zeros
from .tensor import Size, Tensor


class SparseCOOTensor:
    """What sparse_coo_tensor returns (`is_sparse` True, layout sparse_coo)."""
    is_sparse = True
    is_sparse_csr = False
    layout = sparse_coo

    def __init__(self, indices: Tensor, values: Tensor, size, coalesced: bool = False):
        self._indices_, self._values_ = indices, values
        self._size = Size(size)
        self._coalesced = coalesced

    # --- metadata ------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        return self._size

    def size(self, dim: int | None = None):
        return self._size if dim is None else self._size[dim]

    def dim(self) -> int:
        return len(self._size)

    ndim = property(dim)

    @property
    def dtype(self):
        return self._values_.dtype

    @property
    def device(self):
        return self._values_.device

    @property
    def is_cuda(self) -> bool:
        return self._values_.is_cuda

    def sparse_dim(self) -> int:
        return self._indices_.shape[0]

    def dense_dim(self) -> int:
        return self._values_.dim() - 1

    def _nnz(self) -> int:
        return self._values_.shape[0]

    def numel(self) -> int:
        return self._size.numel()

    # --- autograd ------------------------------------------------------------------
    @property
    def requires_grad(self) -> bool:
        return self._values_.requires_grad

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

    def _unique_positions(self):
        return OPS["unique"](self._linear_indices(), sorted=True, return_inverse=True)[:2]

    @property
    def is_leaf(self) -> bool:
        return self._values_.is_leaf

    def detach(self) -> "SparseCOOTensor":
        return SparseCOOTensor(self._indices_, self._values_.detach(), self._size,
                               self._coalesced)

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

    def coalesce(self) -> "SparseCOOTensor":
        """Indices sorted and unique, the values of repeated indices summed."""
        if self._coalesced:
            return self
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
        return OPS["stack"](rows[::-1], 0)

    # --- conversions ---------------------------------------------------------------
    def to_dense(self, dtype=None) -> Tensor:
        dense = zeros(tuple(self._size), dtype=self.dtype)
        positions = tuple(self._indices_[row] for row in range(self.sparse_dim()))
        dense = dense.index_put(positions, self._values_, accumulate=True)
        return dense if dtype is None else dense.to(dtype)

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

    def clone(self) -> "SparseCOOTensor":
        return SparseCOOTensor(self._indices_.clone(), self._values_.clone(), self._size,
                               self._coalesced)

    def to_sparse(self) -> "SparseCOOTensor":
        return self

    # --- arithmetic ----------------------------------------------------------------
    def t(self) -> "SparseCOOTensor":
        if self.dim() != 2 or self.dense_dim():
            raise RuntimeError(f"t() expects a 2-D sparse tensor, got {self.dim()}-D")
        return self.transpose(0, 1)

    def transpose(self, dim0: int, dim1: int) -> "SparseCOOTensor":
        if max(dim0, dim1) >= self.sparse_dim():
            raise NotImplementedError("transpose of a sparse tensor's dense dimensions")
        order = list(range(self.sparse_dim()))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        size = list(self._size)
        size[dim0], size[dim1] = size[dim1], size[dim0]
        return SparseCOOTensor(self._indices_[order], self._values_, size)

    def mm(self, other):
        return mm(self, other)

    matmul = mm
    __matmul__ = mm

    def __mul__(self, other) -> "SparseCOOTensor":
        if isinstance(other, (int, float)) or (isinstance(other, Tensor) and other.dim() == 0):
            return SparseCOOTensor(self._indices_, self._values_ * other, self._size,
                                   self._coalesced)
        return NotImplemented

    __rmul__ = __mul__

    def __truediv__(self, other) -> "SparseCOOTensor":
        return self * (1.0 / other)

    def __neg__(self) -> "SparseCOOTensor":
        return self * -1

    def __add__(self, other) -> "SparseCOOTensor":
        if not isinstance(other, SparseCOOTensor) or other._size != self._size:
            return NotImplemented
        return SparseCOOTensor(OPS["cat"]([self._indices_, other._indices_], 1),
                               OPS["cat"]([self._values_, other._values_], 0), self._size)

    def sum(self, dim=None, keepdim: bool = False):
        return sum(self, dim) if not keepdim else self.to_dense().sum(dim, keepdim=True)

    def __repr__(self) -> str:
        indent = " " * len("tensor(")
        return (f"tensor(indices={_indented(self._indices_, indent + ' ' * 8)},\n{indent}"
                f"values={_indented(self._values_, indent + ' ' * 7)},\n{indent}"
                f"size={tuple(self._size)}, "
                f"nnz={self._nnz()}, layout=torch.sparse_coo"
                f"{', requires_grad=True' if self.requires_grad else ''})")

    def __array__(self, dtype=None, copy=None):
        # reached when a dense op is handed a sparse tensor
        raise TypeError("a sparse COO tensor was passed where ember needs a dense tensor: "
                        "multiply with torch.sparse.mm / torch.spmm / `@`, or call "
                        ".to_dense() first")

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotImplementedError(f"sparse tensors: '{name}' is not supported by ember; "
                                  "call .to_dense() first")


def _indented(tensor: Tensor, indent: str) -> str:
    return repr(tensor).replace("\n", "\n" + indent)


def _is_dtype(value) -> bool:
    return isinstance(value, dtypes.DType)


def sparse_coo_tensor(indices, values, size=None, *, dtype=None, device=None,
                      requires_grad: bool = False, check_invariants=None,
                      is_coalesced: bool | None = None) -> SparseCOOTensor:
    """A sparse tensor with values[i] at indices[:, i] (torch.sparse_coo_tensor)."""
    indices = as_tensor(indices, device=device).to(dtypes.int64)
    values = as_tensor(values, dtype=dtype, device=device)
    if indices.dim() != 2:
        raise RuntimeError(f"indices must be sparse_dim x nnz, but got: {list(indices.shape)}")
    if indices.shape[1] != values.shape[0]:
        raise RuntimeError(f"indices and values must have same nnz, but got nnz from "
                           f"indices: {indices.shape[1]}, nnz from values: {values.shape[0]}")
    sparse_dims = indices.shape[0]
    if size is None:
        extents = indices.max(1).values + 1 if indices.shape[1] else zeros((sparse_dims,))
        size = tuple(int(e) for e in extents.tolist()) + tuple(values.shape[1:])
    size = tuple(size)
    if len(size) != sparse_dims + values.dim() - 1:
        raise RuntimeError(f"number of dimensions must be sparse_dim ({sparse_dims}) + "
                           f"dense_dim ({values.dim() - 1}), but got {len(size)}")
    if check_invariants and indices.shape[1] and bool(
            (indices.max(1).values >= as_tensor(list(size[:sparse_dims]))).any()):
        raise RuntimeError(f"size is inconsistent with indices: for dim 0, size is "
                           f"{size[0]} but found index {int(indices[0].max())}")
    if requires_grad:
        values = values.detach().requires_grad_()
    coalesced = bool(is_coalesced) if is_coalesced is not None else indices.shape[1] <= 1
    return SparseCOOTensor(indices, values, size, coalesced)


def mm(mat1, mat2):
    """sparse @ dense (or dense @ sparse): a dense result, differentiable in both the
    dense operand and the sparse operand's values."""
    if isinstance(mat1, SparseCOOTensor) and isinstance(mat2, Tensor):
        return _sparse_times_dense(mat1, mat2)
    if isinstance(mat1, Tensor) and isinstance(mat2, SparseCOOTensor):
        return _sparse_times_dense(mat2.t(), mat1.t()).t()
    raise NotImplementedError("ember's sparse mm multiplies a 2-D sparse COO tensor with a "
                              "dense one; call .to_dense() on the other operand")


def _sparse_times_dense(sparse: SparseCOOTensor, dense: Tensor) -> Tensor:
    if sparse.dim() != 2 or sparse.dense_dim():
        raise RuntimeError(f"sparse mm: expected a 2-D sparse matrix, got size "
                           f"{tuple(sparse.shape)}")
    if dense.dim() not in (1, 2) or dense.shape[0] != sparse.shape[1]:
        raise RuntimeError(f"mat1 and mat2 shapes cannot be multiplied "
                           f"({sparse.shape[0]}x{sparse.shape[1]} and "
                           f"{'x'.join(str(s) for s in dense.shape)})")
    rows, cols = sparse._indices()[0], sparse._indices()[1]
    vector = dense.dim() == 1
    matrix = dense.unsqueeze(1) if vector else dense
    values = sparse._values()
    if values.dtype != matrix.dtype:
        raise RuntimeError(f"sparse mm: expected mat1 and mat2 to have the same dtype, but "
                           f"got: {values.dtype} != {matrix.dtype}")
    products = matrix.index_select(0, cols) * values.unsqueeze(1)
    out = zeros((sparse.shape[0], matrix.shape[1]), dtype=products.dtype)
    out = out.index_add(0, rows, products)
    return out.squeeze(1) if vector else out


def addmm(mat, mat1, mat2, *, beta=1, alpha=1):
    """beta * mat + alpha * (mat1 @ mat2) with mat1 sparse."""
    return mat * beta + mm(mat1, mat2) * alpha


def sum(input, dim=None, dtype=None):
    """The sum of a sparse tensor's elements, or over dims (a dense result here)."""
    if not isinstance(input, SparseCOOTensor):
        return input.sum() if dim is None else input.sum(dim)
    if dim is None:
        total = input._values().sum()
        return total if dtype is None else total.to(dtype)
    total = input.to_dense().sum(dim)        # torch keeps a partial sum sparse
    total = total if dtype is None else total.to(dtype)
    return to_sparse(total) if total.dim() else total


def to_sparse(self, sparse_dim: int | None = None, *, layout=None, blocksize=None,
              dense_dim=None) -> SparseCOOTensor:
    """A dense tensor's nonzeros as a coalesced sparse COO tensor."""
    if layout not in (None, sparse_coo):
        raise NotImplementedError(f"to_sparse: ember supports layout=torch.sparse_coo only, "
                                  f"not {layout}")
    sparse_dim = self.dim() if sparse_dim is None else sparse_dim
    head = self.reshape(tuple(self.shape[:sparse_dim]) + (-1,)) if sparse_dim < self.dim() \
        else self.unsqueeze(-1)
    nonzero = (head != 0).any(-1)
    indices = OPS["nonzero"](nonzero).t()
    positions = tuple(indices[row] for row in range(sparse_dim))
    values = self[positions] if sparse_dim else self.unsqueeze(0)
    return SparseCOOTensor(indices.contiguous(), values, self.shape, coalesced=True)


def _run_with_sparse(op, args: tuple):
    """An op called with a sparse tensor among its tensors: the matrix products take
    it (torch.mm, torch.matmul, `dense @ sparse`, torch.addmm); any other op refuses."""
    if op.name in ("mm", "matmul"):
        return mm(args[0], args[1])
    if op.name == "addmm":
        return addmm(*args[:3], beta=args[3], alpha=args[4])
    raise TypeError(f"{op.name}: a sparse COO tensor was passed where ember needs a dense "
                    "tensor; ember's sparse tensors take part in torch.sparse.mm / "
                    "torch.mm / `@` / torch.addmm and torch.sparse.sum, or call .to_dense() "
                    "first")


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
