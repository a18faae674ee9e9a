"""The ops sparse COO tensors take (frontend/sparse_coo.py's dispatch handler sends every
op call with a sparse argument here).

Each op works on the indices and the values with ember's dense ops, so gradients reach
the values (and any dense operand) through ordinary autograd. Which results are coalesced
follows torch: ops that must see each position once (abs, pow, products of two sparse
tensors, softmax) coalesce first; ops that only move or scale entries (neg, scaling,
transpose, index_select, cat) keep the entries as they are and mark the result
uncoalesced where torch does. An op not in the table raises, naming the op: ember never
densifies a sparse tensor behind the user's back.
"""
from __future__ import annotations

from ..ir import dispatch, dtypes
from ..ir.registry import OPS
from .factories import as_tensor, zeros
from .sparse_coo import SparseCOOTensor, SparseUnsupportedError, _wrap_dim, mm, sum
from .tensor import Tensor

# f(0) == 0 for each: applying it to the stored values is applying it to the tensor
ZERO_PRESERVING = (
    "abs", "neg", "sign", "sgn", "sin", "tan", "tanh", "asin", "atan", "sinh", "asinh",
    "atanh", "floor", "ceil", "round", "trunc", "frac", "expm1", "log1p", "relu", "square",
    "sqrt", "deg2rad", "rad2deg", "signbit", "isnan", "isinf", "isposinf", "isneginf",
    "nan_to_num", "erf", "erfinv", "positive", "conj_physical", "fix")


def _arange(n: int) -> Tensor:
    return OPS["arange"](0, n, dtype=dtypes.int64)


def _is_sparse(value) -> bool:
    return isinstance(value, SparseCOOTensor)


def _is_scalar(value) -> bool:
    return isinstance(value, (int, float, bool)) or (isinstance(value, Tensor)
                                                      and value.dim() == 0)


def run_sparse_op(op, args: tuple):
    name = op.name
    handler = _HANDLERS.get(name)
    if handler is not None:
        return handler(op, args)
    if name.endswith("_") and name[:-1] in _HANDLERS and name[:-1] in OPS:
        return _in_place(op, args)
    raise SparseUnsupportedError(
        f"{name}: a sparse COO tensor was passed where ember needs a dense tensor; "
        "ember's sparse tensors take the ops listed in docs/compat.md (sparse.mm, add, "
        "mul, sum, softmax, zero-preserving unary ops, ...), or call .to_dense() first")


def _in_place(op, args: tuple):
    target = args[0]
    base = OPS[op.name[:-1]]
    if not _is_sparse(target):          # dense.add_(sparse): accumulate into the dense
        if base.name in ("add", "sub"):
            return _accumulate_into(target, args[1], _alpha(base.name, args[2]),
                                    base.name, in_place=True)
        raise SparseUnsupportedError(f"{op.name}: a dense tensor cannot take a sparse "
                                     "operand in place; call .to_dense() on it")
    result = _HANDLERS[base.name](base, args)
    if not _is_sparse(result):
        raise RuntimeError(f"{op.name}: the result is dense and cannot be written into "
                           "a sparse tensor")
    target._assign(result)
    if op.name == "mul_":
        target._coalesced = False       # torch marks an in-place scaled tensor so
    return target


# --- elementwise --------------------------------------------------------------------
def _unary(op, args: tuple):
    sparse = args[0]
    if any(_is_sparse(a) for a in args[1:]):
        raise SparseUnsupportedError(f"{op.name}: takes one sparse tensor")
    source = sparse if op.name == "neg" else sparse.coalesce()
    values = dispatch.dispatch(op, (source._values_,) + tuple(args[1:]))
    return source._with_values(values)


def _alpha(name: str, alpha):
    return -alpha if name == "sub" else alpha


def _add(op, args: tuple):
    a, b, alpha = args[0], args[1], _alpha(op.name, args[2])
    if _is_sparse(a) and _is_sparse(b):
        return _add_sparse(a, b, alpha, op.name)
    if _is_sparse(b) and isinstance(a, Tensor):
        return _accumulate_into(a, b, alpha, op.name, in_place=False)
    if _is_sparse(a) and isinstance(b, Tensor) and b.dim():
        raise RuntimeError(f"{op.name}(sparse, dense) is not supported. Use "
                           f"{op.name}(dense, sparse) instead.")
    raise SparseUnsupportedError(f"{op.name}: a sparse tensor takes a sparse tensor or, "
                                 "as the second operand of a dense one, is added to it; "
                                 f"got {type(a).__name__} and {type(b).__name__}")


def _add_sparse(a: SparseCOOTensor, b: SparseCOOTensor, alpha, name: str):
    if tuple(a.shape) != tuple(b.shape):
        raise RuntimeError(f"{name}: expected sizes of 'self' and 'other' to match, but "
                           f"{list(a.shape)} != {list(b.shape)}")
    if a.sparse_dim() != b.sparse_dim():
        raise RuntimeError(f"{name}: expected 'self' and 'other' to have the same number "
                           f"of sparse dimensions, got {a.sparse_dim()} and {b.sparse_dim()}")
    other = b._values_ if alpha == 1 else b._values_ * alpha
    dtype = dtypes.promote_types(a.dtype, other.dtype)
    values = OPS["cat"]([a._values_.to(dtype), other.to(dtype)], 0)
    total = SparseCOOTensor(OPS["cat"]([a._indices_, b._indices_], 1), values, a.shape)
    # two coalesced operands merge into a coalesced sum, as torch's; otherwise the
    # entries are only concatenated
    return total.coalesce() if a.is_coalesced() and b.is_coalesced() else total


def _accumulate_into(dense: Tensor, sparse: SparseCOOTensor, alpha, name: str,
                     in_place: bool) -> Tensor:
    if tuple(dense.shape) != tuple(sparse.shape):
        raise RuntimeError(f"{name}: expected 'self' and 'other' to have same size, but "
                           f"self has size {list(dense.shape)} while other has size "
                           f"{list(sparse.shape)} (dense-sparse addition does not support "
                           "broadcasting)")
    values = sparse._values_ if alpha == 1 else sparse._values_ * alpha
    positions = tuple(sparse._indices_[row] for row in range(sparse.sparse_dim()))
    if in_place:
        return dense.index_put_(positions, values.to(dense.dtype), accumulate=True)
    dtype = dtypes.promote_types(dense.dtype, values.dtype)
    return dense.to(dtype).index_put(positions, values.to(dtype), accumulate=True)


def _mul(op, args: tuple):
    a, b = args[0], args[1]
    if not _is_sparse(a):
        a, b = b, a
    if _is_scalar(b):
        return a._with_values(a._values_ * b)
    if _is_sparse(b):
        return _intersect(a, b)
    if isinstance(b, Tensor):
        full = b.expand(tuple(a.shape)) if tuple(b.shape) != tuple(a.shape) else b
        positions = tuple(a._indices_[row] for row in range(a.sparse_dim()))
        return a._with_values(a._values_ * full[positions])
    raise SparseUnsupportedError(f"mul: cannot multiply a sparse tensor by "
                                 f"{type(b).__name__}")


def _intersect(a: SparseCOOTensor, b: SparseCOOTensor) -> SparseCOOTensor:
    """The product of two sparse tensors: their common positions (both coalesced, so
    each sorted and unique: a searchsorted of a's positions in b's finds them)."""
    if tuple(a.shape) != tuple(b.shape):
        raise RuntimeError(f"mul: expected sizes of 'self' and 'other' to match, but "
                           f"{list(a.shape)} != {list(b.shape)}")
    ca, cb = a.coalesce(), b.coalesce()
    la, lb = ca._linear_indices(), cb._linear_indices()
    if not lb.shape[0] or not la.shape[0]:
        keep_a = keep_b = zeros((0,), dtype=dtypes.int64)
    else:
        found = OPS["searchsorted"](lb, la).clamp(max=lb.shape[0] - 1)
        hit = OPS["nonzero"](lb[found] == la).reshape([-1])
        keep_a, keep_b = hit, found[hit]
    values = ca._values_[keep_a] * cb._values_[keep_b]
    return SparseCOOTensor(ca._indices_[:, keep_a], values, a.shape,
                           a.is_coalesced() and b.is_coalesced())


def _div(op, args: tuple):
    a, b = args[0], args[1]
    if _is_sparse(a) and _is_scalar(b):
        values = dispatch.dispatch(op, (a._values_,) + tuple(args[1:]))
        return a._with_values(values)
    raise SparseUnsupportedError(f"{op.name}: ember divides a sparse tensor by a scalar "
                                 "only; call .to_dense() first")


def _pow(op, args: tuple):
    base, exponent = args[0], args[1]
    if not (_is_sparse(base) and _is_scalar(exponent)):
        raise SparseUnsupportedError("pow: ember raises a sparse tensor to a scalar power "
                                     "only")
    if float(exponent) <= 0:
        raise RuntimeError(f"pow: sparse tensors take positive exponents only (a power of "
                           f"{exponent} does not keep zeros zero), got {exponent}")
    coalesced = base.coalesce()
    return coalesced._with_values(coalesced._values_.pow(exponent))


# --- products -----------------------------------------------------------------------
def _mm(op, args: tuple):
    return mm(args[0], args[1])


def _mv(op, args: tuple):
    if args[1].dim() != 1:
        raise RuntimeError(f"mv: vector must be 1-D, got {args[1].dim()}-D")
    return mm(args[0], args[1])


def _linear(op, args: tuple):
    """nn.Linear / F.linear on a sparse 2-D input (bag-of-words features): a dense result."""
    input, weight, bias = args
    if _is_sparse(weight) or _is_sparse(bias) or input.dim() != 2:
        raise SparseUnsupportedError("linear: ember takes a 2-D sparse input with a dense "
                                     "weight and bias")
    out = mm(input, weight.t())
    return out if bias is None else out + bias


def _addmm(op, args: tuple):
    from .sparse_coo import addmm
    return addmm(*args[:3], beta=args[3], alpha=args[4])


def _bmm(op, args: tuple):
    sparse, dense = args[0], args[1]
    if not _is_sparse(sparse) or _is_sparse(dense):
        raise SparseUnsupportedError("bmm: ember multiplies a 3-D sparse COO tensor by a "
                                     "dense one")
    if sparse.dim() != 3 or sparse.dense_dim() or dense.dim() != 3 or \
            dense.shape[0] != sparse.shape[0] or dense.shape[1] != sparse.shape[2]:
        raise RuntimeError(f"bmm: expected a 3-D sparse tensor and a 3-D dense tensor of "
                           f"matching batch and inner sizes, got {list(sparse.shape)} and "
                           f"{list(dense.shape)}")
    batches, rows = sparse.shape[0], sparse.shape[1]
    b, r, c = (sparse._indices_[i] for i in range(3))
    products = dense[b, c] * sparse._values_.unsqueeze(1)
    out = zeros((batches * rows, dense.shape[2]), dtype=products.dtype)
    return out.index_add(0, b * rows + r, products).reshape(batches, rows, dense.shape[2])


def hspmm(mat1: SparseCOOTensor, mat2: Tensor) -> SparseCOOTensor:
    """sparse @ dense as a hybrid tensor: one sparse dim (the rows mat1 has entries in),
    each a dense row of the product."""
    product = mm(mat1, mat2)
    rows = OPS["unique"](mat1._indices_[0], sorted=True)
    rows = rows[0] if isinstance(rows, tuple) else rows
    return SparseCOOTensor(rows.unsqueeze(0), product[rows], tuple(product.shape), True)


def smm(mat1: SparseCOOTensor, mat2: Tensor) -> SparseCOOTensor:
    """sparse @ dense as a sparse tensor over the rows mat1 has entries in."""
    rows = hspmm(mat1, mat2)
    width = mat2.shape[1]
    row_of = rows._indices_[0].repeat_interleave(width)
    col_of = _arange(width).repeat(rows._nnz())
    return SparseCOOTensor(OPS["stack"]([row_of, col_of], 0), rows._values_.reshape([-1]),
                           tuple(rows.shape), True)


# --- reductions -------------------------------------------------------------------------
def _sum(op, args: tuple):
    sparse, dim, keepdim, dtype = args
    total = sum(sparse, dim, dtype)
    if not keepdim or dim is None:
        return total
    dims = sorted(_wrap_dim("sum", d, sparse.dim())
                  for d in ((dim,) if isinstance(dim, int) else dim))
    for d in dims:                      # put the summed dims back, each of size 1
        total = unsqueeze(total, d) if _is_sparse(total) else total.unsqueeze(d)
    return total


def _norm(op, args: tuple):
    sparse, p, dim, keepdim, dtype = args
    if dim not in (None, (), []):
        raise RuntimeError("norm: sparse tensors take full reductions only, so 'dim' must "
                           f"be empty or cover every dimension, got dim={dim}")
    values = sparse.coalesce()._values_
    values = values if dtype is None else values.to(dtype)
    order = 2.0 if p in (None, "fro") else p
    return OPS["linalg_vector_norm"](values, order)


def _any(op, args: tuple):
    sparse, dim = args[0], args[1]
    if dim is not None:
        raise SparseUnsupportedError("any: ember reduces a sparse tensor over all of its "
                                     "dimensions only")
    return (sparse._values_ != 0).any()


def softmax(input: SparseCOOTensor, dim: int, dtype=None, log: bool = False):
    """torch.sparse.softmax: over the specified entries of each slice along `dim`, the
    unspecified ones counting as -inf (so they stay unspecified)."""
    if not _is_sparse(input):
        return (OPS["log_softmax"] if log else OPS["softmax"])(input, dim, dtype)
    name = "log_softmax" if log else "softmax"
    dim = _wrap_dim(name, dim, input.dim())
    coalesced = input.coalesce()
    values = coalesced._values_ if dtype is None else coalesced._values_.to(dtype)
    nsparse = input.sparse_dim()
    if dim >= nsparse:
        out = OPS[name](values, dim - nsparse + 1)
        return coalesced._with_values(out)
    group = _slice_groups(coalesced, dim)
    groups = int(group.max()) + 1 if group.shape[0] else 0
    spread = group.reshape((-1,) + (1,) * (values.dim() - 1)).expand(tuple(values.shape))
    lowest = OPS["full"]((groups,) + tuple(values.shape[1:]), float("-inf"),
                         dtype=values.dtype)
    maxes = lowest.scatter_reduce(0, spread, values.detach(), "amax", include_self=True)
    shifted = values - maxes[group]
    exps = shifted.exp()
    totals = zeros((groups,) + tuple(values.shape[1:]), dtype=values.dtype)
    totals = totals.index_add(0, group, exps)
    out = shifted - totals[group].log() if log else exps / totals[group]
    return coalesced._with_values(out)


def log_softmax(input: SparseCOOTensor, dim: int, dtype=None):
    return softmax(input, dim, dtype, log=True)


def _slice_groups(sparse: SparseCOOTensor, dim: int) -> Tensor:
    """Which slice along `dim` each entry is in: its position in the other sparse dims."""
    key = zeros((sparse._nnz(),), dtype=dtypes.int64)
    for d in range(sparse.sparse_dim()):
        if d != dim:
            key = key * sparse.shape[d] + sparse._indices_[d]
    return OPS["unique"](key, sorted=True, return_inverse=True)[1]


def _softmax(op, args: tuple):
    return softmax(args[0], args[1], args[2], log=op.name == "log_softmax")


# --- shape ops ------------------------------------------------------------------------
def transpose(sparse: SparseCOOTensor, dim0: int, dim1: int) -> SparseCOOTensor:
    dim0 = _wrap_dim("transpose", dim0, sparse.dim())
    dim1 = _wrap_dim("transpose", dim1, sparse.dim())
    nsparse = sparse.sparse_dim()
    size = list(sparse.shape)
    size[dim0], size[dim1] = size[dim1], size[dim0]
    if dim0 < nsparse and dim1 < nsparse:
        order = list(range(nsparse))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return SparseCOOTensor(sparse._indices_[order], sparse._values_, size)
    if dim0 >= nsparse and dim1 >= nsparse:
        values = sparse._values_.transpose(dim0 - nsparse + 1, dim1 - nsparse + 1)
        return SparseCOOTensor(sparse._indices_, values, size, sparse.is_coalesced())
    raise RuntimeError("transpose(): cannot transpose a sparse dimension with a dense "
                       "dimension of a sparse tensor")


def _transpose(op, args: tuple):
    return transpose(args[0], args[1], args[2])


def t(sparse: SparseCOOTensor) -> SparseCOOTensor:
    if sparse.sparse_dim() > 2 or sparse.dense_dim():
        raise RuntimeError(f"t() expects a tensor with <= 2 sparse and 0 dense dimensions, "
                           f"but got {sparse.sparse_dim()} sparse and {sparse.dense_dim()} "
                           "dense dimensions")
    return transpose(sparse, 0, 1) if sparse.dim() == 2 else sparse


def _t(op, args: tuple):
    return t(args[0])


def index_select(sparse: SparseCOOTensor, dim: int, index: Tensor) -> SparseCOOTensor:
    dim = _wrap_dim("index_select", dim, sparse.dim())
    index = as_tensor(index)
    if index.dim() > 1:
        raise IndexError(f"index_select(): Index is supposed to be a vector, got "
                         f"{index.dim()}-D")
    if index.dtype not in (dtypes.int64, dtypes.int32):
        raise IndexError(f"index_select(): Expected dtype int32/int64 for index, got "
                         f"{index.dtype}")
    index = index.to(dtypes.int64).reshape([-1])
    extent = sparse.shape[dim]
    if index.shape[0]:
        low, high = int(index.min()), int(index.max())
        bad = high if high >= extent else low
        if high >= extent or low < -extent:
            raise IndexError(f"index_select(): index contains {bad} that is out of range "
                             f"for tensor of size {list(sparse.shape)} at dimension {dim}")
        index = OPS["where"](index < 0, index + extent, index)
    nsparse = sparse.sparse_dim()
    if dim >= nsparse:
        values = sparse._values_.index_select(dim - nsparse + 1, index)
        size = list(sparse.shape)
        size[dim] = index.shape[0]
        return SparseCOOTensor(sparse._indices_, values, size, sparse.is_coalesced())
    slot, entry = matching_entries(sparse._indices_[dim], extent, index)
    rows = [slot if d == dim else sparse._indices_[d][entry] for d in range(nsparse)]
    size = list(sparse.shape)
    size[dim] = index.shape[0]
    return SparseCOOTensor(OPS["stack"](rows, 0), sparse._values_[entry], size)


def matching_entries(keys: Tensor, extent: int, wanted: Tensor):
    """Every (i, e) with keys[e] == wanted[i], in linear time: the entries sorted by key
    make one run per key value, found from the key counts' running sum."""
    order = OPS["argsort"](keys, stable=True) if keys.shape[0] else keys
    counts = OPS["bincount"](keys, minlength=extent) if keys.shape[0] else \
        zeros((extent,), dtype=dtypes.int64)
    starts = OPS["cumsum"](counts, 0) - counts
    per_slot = counts[wanted]
    slot = _arange(wanted.shape[0]).repeat_interleave(per_slot)
    first = (OPS["cumsum"](per_slot, 0) - per_slot).repeat_interleave(per_slot)
    position = starts[wanted][slot] + _arange(slot.shape[0]) - first
    return slot, order[position]


def _index_select(op, args: tuple):
    return index_select(args[0], args[1], args[2])


def narrow_copy(sparse: SparseCOOTensor, dim: int, start: int, length: int):
    dim = _wrap_dim("narrow_copy", dim, sparse.dim())
    extent = sparse.shape[dim]
    start = start + extent if start < 0 else start
    if start < 0 or length < 0 or start + length > extent:
        raise RuntimeError(f"narrow_copy(): Invalid range to narrow. range(start, "
                           f"start+length) must be a subset of range(0, {extent}), got "
                           f"start={start}, length={length}")
    size = list(sparse.shape)
    size[dim] = length
    nsparse = sparse.sparse_dim()
    if dim >= nsparse:
        values = sparse._values_.narrow(dim - nsparse + 1, start, length)
        return SparseCOOTensor(sparse._indices_, values, size, sparse.is_coalesced())
    row = sparse._indices_[dim]
    keep = OPS["nonzero"]((row >= start) & (row < start + length)).reshape([-1])
    indices = sparse._indices_[:, keep]
    shift = zeros((nsparse, 1), dtype=dtypes.int64)
    shift[dim] = start
    return SparseCOOTensor(indices - shift, sparse._values_[keep], size,
                           sparse.is_coalesced())


def select(sparse: SparseCOOTensor, dim: int, index: int) -> SparseCOOTensor:
    """The slice at `index` along `dim` (one fewer dimension)."""
    dim = _wrap_dim("select", dim, sparse.dim())
    extent = sparse.shape[dim]
    if not -extent <= index < extent:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{list(sparse.shape)} at dimension {dim}")
    index %= extent
    nsparse = sparse.sparse_dim()
    size = [n for d, n in enumerate(sparse.shape) if d != dim]
    if dim >= nsparse:
        return SparseCOOTensor(sparse._indices_, sparse._values_.select(dim - nsparse + 1,
                                                                        index), size,
                               sparse.is_coalesced())
    keep = OPS["nonzero"](sparse._indices_[dim] == index).reshape([-1])
    rows = [d for d in range(nsparse) if d != dim]
    return SparseCOOTensor(sparse._indices_[rows][:, keep], sparse._values_[keep], size)


def _select(op, args: tuple):
    return select(args[0], args[1], args[2])


def _unbind(op, args: tuple):
    sparse, dim = args[0], args[1]
    return tuple(select(sparse, dim, i) for i in range(sparse.shape[dim]))


def permute(sparse: SparseCOOTensor, dims) -> SparseCOOTensor:
    dims = [_wrap_dim("permute", d, sparse.dim()) for d in dims]
    if sorted(dims) != list(range(sparse.dim())):
        raise RuntimeError(f"permute(): dims {list(dims)} are not a permutation of the "
                           f"{sparse.dim()} dimensions")
    nsparse = sparse.sparse_dim()
    if any((d < nsparse) != (i < nsparse) for i, d in enumerate(dims)):
        raise RuntimeError("permute(): a sparse dimension cannot trade places with a dense "
                           "dimension of a sparse tensor")
    sparse_order, dense_order = dims[:nsparse], [d - nsparse + 1 for d in dims[nsparse:]]
    values = sparse._values_.permute([0] + dense_order) if dense_order else sparse._values_
    size = [sparse.shape[d] for d in dims]
    unchanged = sparse_order == list(range(nsparse))
    return SparseCOOTensor(sparse._indices_[sparse_order], values, size,
                           unchanged and sparse.is_coalesced())


def _permute(op, args: tuple):
    return permute(args[0], args[1])


def spdiags(diagonals: Tensor, offsets: Tensor, shape, layout=None):
    """torch.sparse.spdiags: diagonals[i, j] at (j - offsets[i], j), where that is in
    `shape`."""
    rows, cols = shape
    offsets = as_tensor(offsets).reshape([-1]).tolist()
    if diagonals.dim() != 2 or diagonals.shape[0] != len(offsets):
        raise RuntimeError(f"spdiags: expected one row of diagonals per offset, got "
                           f"diagonals of size {list(diagonals.shape)} and "
                           f"{len(offsets)} offsets")
    if len(set(offsets)) != len(offsets):
        raise RuntimeError("spdiags: offset tensor contains duplicates")
    indices, picks = [], []
    for k, offset in enumerate(offsets):
        first, last = max(0, offset), min(cols, rows + offset, diagonals.shape[1])
        for j in range(first, last):
            indices.append((j - offset, j))
            picks.append((k, j))
    if picks:
        which = as_tensor(picks)
        values = diagonals[which[:, 0], which[:, 1]]
        index = as_tensor(indices).t()
    else:
        values = zeros((0,), dtype=diagonals.dtype)
        index = zeros((2, 0), dtype=dtypes.int64)
    result = SparseCOOTensor(index.contiguous(), values, (rows, cols))
    if layout is None or layout is result.layout:
        return result
    from .sparse_compressed import from_coo
    return from_coo(result, layout, None)


def unsqueeze(sparse: SparseCOOTensor, dim: int) -> SparseCOOTensor:
    dim = _wrap_dim("unsqueeze", dim, sparse.dim() + 1)
    size = list(sparse.shape)
    size.insert(dim, 1)
    nsparse = sparse.sparse_dim()
    if dim <= nsparse:
        rows = list(sparse._indices_.unbind(0)) if nsparse else []
        rows.insert(dim, zeros((sparse._nnz(),), dtype=dtypes.int64))
        return SparseCOOTensor(OPS["stack"](rows, 0), sparse._values_, size)
    return SparseCOOTensor(sparse._indices_, sparse._values_.unsqueeze(dim - nsparse + 1),
                           size)


def _unsqueeze(op, args: tuple):
    return unsqueeze(args[0], args[1])


def cat(tensors, dim: int = 0) -> SparseCOOTensor:
    tensors = list(tensors)
    if not all(_is_sparse(x) for x in tensors):
        raise SparseUnsupportedError("cat: ember concatenates sparse tensors with sparse "
                                     "tensors only; call .to_dense() on the sparse ones")
    first = tensors[0]
    dim = _wrap_dim("cat", dim, first.dim())
    if dim >= first.sparse_dim():
        raise SparseUnsupportedError("cat: ember concatenates sparse tensors along their "
                                     "sparse dimensions only")
    indices, values, offset = [], [], 0
    for x in tensors:
        same = [n for d, n in enumerate(x.shape) if d != dim]
        if same != [n for d, n in enumerate(first.shape) if d != dim] or \
                x.sparse_dim() != first.sparse_dim():
            raise RuntimeError(f"cat: sparse tensors must match in every dimension but "
                               f"{dim} and in sparse_dim, got {list(first.shape)} and "
                               f"{list(x.shape)}")
        shift = zeros((x.sparse_dim(), 1), dtype=dtypes.int64)
        shift[dim] = offset
        indices.append(x._indices_ + shift)
        values.append(x._values_)
        offset += x.shape[dim]
    size = list(first.shape)
    size[dim] = offset
    return SparseCOOTensor(OPS["cat"](indices, 1), OPS["cat"](values, 0), size)


def _cat(op, args: tuple):
    return cat(args[0], args[1])


def _stack(op, args: tuple):
    tensors, dim = list(args[0]), args[1]
    if not all(_is_sparse(x) for x in tensors):
        raise SparseUnsupportedError("stack: ember stacks sparse tensors with sparse "
                                     "tensors only")
    dim = _wrap_dim("stack", dim, tensors[0].dim() + 1)
    return cat([unsqueeze(x, dim) for x in tensors], dim)


def zeros_like(sparse: SparseCOOTensor, dtype=None) -> SparseCOOTensor:
    dtype = dtype or sparse.dtype
    values = zeros((0,) + tuple(sparse.shape[sparse.sparse_dim():]), dtype=dtype)
    return SparseCOOTensor(zeros((sparse.sparse_dim(), 0), dtype=dtypes.int64), values,
                           sparse.shape, True)


def _zeros_like(op, args: tuple):
    return zeros_like(args[0], args[1])


def _clone(op, args: tuple):
    return args[0].clone()


def _detach(op, args: tuple):
    return args[0].detach()


def _copy(op, args: tuple):
    target, source = args[0], args[1]
    if not (_is_sparse(target) and _is_sparse(source)):
        raise SparseUnsupportedError("copy_: ember copies a sparse tensor into a sparse "
                                     "tensor only")
    copied = SparseCOOTensor(source._indices_.clone(), source._values_.to(target.dtype),
                             source.shape, source.is_coalesced())
    return target._assign(copied)


def sparse_resize_(sparse: SparseCOOTensor, size, sparse_dim: int, dense_dim: int):
    size = tuple(size)
    if len(size) != sparse_dim + dense_dim:
        raise RuntimeError(f"sparse_resize_: number of dimensions must be sparse_dim "
                           f"({sparse_dim}) + dense_dim ({dense_dim}), but got {len(size)}")
    if sparse._nnz():
        if sparse_dim != sparse.sparse_dim() or dense_dim != sparse.dense_dim():
            raise RuntimeError("sparse_resize_: changing the number of sparse or dense "
                               "dimensions of a non-empty sparse tensor is not supported")
        old = tuple(sparse.shape)
        if any(new < was for new, was in zip(size[:sparse_dim], old[:sparse_dim])):
            raise RuntimeError(f"sparse_resize_: shrinking the size of sparse dimensions "
                               f"(from {list(old[:sparse_dim])} to {list(size[:sparse_dim])})"
                               " on a non-empty sparse tensor is not supported")
        if size[sparse_dim:] != old[sparse_dim:]:
            raise RuntimeError(f"sparse_resize_: changing the dense dimensions (from "
                               f"{list(old[sparse_dim:])} to {list(size[sparse_dim:])}) of a "
                               "non-empty sparse tensor is not supported")
        return sparse._assign(SparseCOOTensor(sparse._indices_, sparse._values_, size,
                                              sparse.is_coalesced()))
    return sparse_resize_and_clear_(sparse, size, sparse_dim, dense_dim)


def sparse_resize_and_clear_(sparse: SparseCOOTensor, size, sparse_dim: int,
                             dense_dim: int):
    size = tuple(size)
    if len(size) != sparse_dim + dense_dim:
        raise RuntimeError(f"sparse_resize_and_clear_: number of dimensions must be "
                           f"sparse_dim ({sparse_dim}) + dense_dim ({dense_dim}), but got "
                           f"{len(size)}")
    values = zeros((0,) + size[sparse_dim:], dtype=sparse.dtype)
    return sparse._assign(SparseCOOTensor(zeros((sparse_dim, 0), dtype=dtypes.int64),
                                          values, size, True))


def sparse_mask(dense: Tensor, mask: SparseCOOTensor) -> SparseCOOTensor:
    """dense's values at mask's positions (mask's pattern, its values ignored)."""
    if not _is_sparse(mask):
        raise SparseUnsupportedError("sparse_mask: expected a sparse COO mask, got "
                                     f"{type(mask).__name__}")
    if tuple(dense.shape) != tuple(mask.shape):
        raise RuntimeError(f"sparse_mask(): operands have incompatible sizes; self has "
                           f"size {list(dense.shape)} but mask has size {list(mask.shape)}")
    positions = tuple(mask._indices_[row] for row in range(mask.sparse_dim()))
    return SparseCOOTensor(mask._indices_, dense[positions], mask.shape,
                           mask.is_coalesced())


def _getitem(sparse: SparseCOOTensor, key):
    """s[i] / s[i, j]: selects; slices and tensors are not supported (torch neither)."""
    keys = key if isinstance(key, tuple) else (key,)
    if not all(isinstance(k, int) for k in keys):
        raise SparseUnsupportedError(f"sparse tensors: ember indexes with integers only "
                                     f"(got {key!r}); use index_select / narrow_copy or "
                                     ".to_dense()")
    for k in keys:
        sparse = select(sparse, 0, k)
    return sparse


_HANDLERS = {name: _unary for name in ZERO_PRESERVING}
_HANDLERS.update({
    "add": _add, "sub": _add, "mul": _mul, "div": _div, "true_divide": _div, "pow": _pow,
    "mm": _mm, "matmul": _mm, "mv": _mv, "addmm": _addmm, "bmm": _bmm, "linear": _linear,
    "dropout": _unary,
    "sum": _sum, "norm": _norm, "any": _any, "select": _select, "unbind": _unbind,
    "permute": _permute, "floor_divide": _div, "softmax": _softmax, "log_softmax": _softmax,
    "t": _t, "transpose": _transpose, "index_select": _index_select,
    "unsqueeze": _unsqueeze, "cat": _cat, "concat": _cat, "concatenate": _cat,
    "stack": _stack, "zeros_like": _zeros_like, "clone": _clone, "detach": _detach,
    "copy_": _copy,
})


# --- methods of SparseCOOTensor -----------------------------------------------------
def _through_op(name: str):
    def method(self, *args, **kwargs):
        return OPS[name](self, *args, **kwargs)
    method.__name__ = name
    return method


def _reflected(name: str):
    def method(self, other):
        return OPS[name](other, self)
    return method


def _install_methods() -> None:
    names = list(ZERO_PRESERVING) + [n + "_" for n in ZERO_PRESERVING] + [
        "add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_", "true_divide", "pow",
        "mm", "matmul", "mv", "bmm", "softmax", "log_softmax", "transpose", "t",
        "index_select", "unsqueeze", "copy_", "norm", "any", "select", "unbind",
        "floor_divide"]
    for name in names:
        if name in OPS and not hasattr(SparseCOOTensor, name):
            setattr(SparseCOOTensor, name, _through_op(name))
    cls = SparseCOOTensor
    cls.sum = lambda self, dim=None, keepdim=False, dtype=None: \
        _sum(None, (self, dim, keepdim, dtype))
    cls.t_ = lambda self: self._assign(t(self))
    cls.transpose_ = lambda self, dim0, dim1: self._assign(transpose(self, dim0, dim1))
    cls.narrow_copy = narrow_copy
    cls.zero_ = lambda self: self._assign(zeros_like(self))
    cls.sparse_resize_ = sparse_resize_
    cls.sparse_resize_and_clear_ = sparse_resize_and_clear_
    cls.resize_as_ = lambda self, other: sparse_resize_(
        self, other.shape, other.sparse_dim(), other.dense_dim())
    cls.permute = lambda self, *dims: permute(
        self, dims[0] if len(dims) == 1 and not isinstance(dims[0], int) else dims)
    cls.__getitem__ = _getitem
    cls.hspmm = hspmm
    cls.smm = smm
    for dunder, name in (("__add__", "add"), ("__sub__", "sub"), ("__mul__", "mul"),
                         ("__truediv__", "div"), ("__matmul__", "matmul"),
                         ("__floordiv__", "floor_divide"),
                         ("__pow__", "pow"), ("__iadd__", "add_"), ("__isub__", "sub_"),
                         ("__imul__", "mul_"), ("__itruediv__", "div_")):
        setattr(cls, dunder, _through_op(name))
    cls.__radd__ = _reflected("add")
    cls.__rsub__ = _reflected("sub")
    cls.__rmul__ = _through_op("mul")
    cls.__rmatmul__ = _reflected("matmul")
    cls.__neg__ = _through_op("neg")
    cls.__abs__ = _through_op("abs")


_install_methods()
