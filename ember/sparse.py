"""ember.sparse: torch.sparse's COO subset (frontend/sparse_coo.py, frontend/sparse_ops.py)
and the compressed layouts' basics (frontend/sparse_compressed.py): mm, addmm, sum,
softmax, log_softmax, and the legacy FloatTensor / DoubleTensor / LongTensor constructors."""
from .frontend.sparse_coo import (SparseCOOTensor, addmm, check_sparse_tensor_invariants,  # noqa
                                  mm, sparse_coo_tensor, sum)
from .frontend.sparse_ops import log_softmax, softmax, spdiags  # noqa: F401
from .ir import dtypes as _dtypes

__all__ = ["mm", "addmm", "sum", "softmax", "log_softmax", "spdiags",
           "check_sparse_tensor_invariants", "sparse_coo_tensor",
           "FloatTensor", "DoubleTensor", "LongTensor", "SparseCOOTensor"]


def _legacy(dtype):
    def construct(indices, values, size=None):
        return sparse_coo_tensor(indices, values, size, dtype=dtype)
    return construct


FloatTensor = _legacy(_dtypes.float32)
DoubleTensor = _legacy(_dtypes.float64)
LongTensor = _legacy(_dtypes.int64)

