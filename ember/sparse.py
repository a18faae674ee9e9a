"""ember.sparse: torch.sparse's COO subset (frontend/sparse_coo.py, frontend/sparse_ops.py)
and the compressed layouts' basics (frontend/sparse_compressed.py): mm, addmm, sum,
softmax, log_softmax, and the legacy FloatTensor / DoubleTensor / LongTensor constructors."""
from .frontend.sparse_coo import SparseCOOTensor, addmm, mm, sparse_coo_tensor, sum  # noqa
from .frontend.sparse_ops import log_softmax, softmax  # noqa: F401
from .ir import dtypes as _dtypes

__all__ = ["mm", "addmm", "sum", "softmax", "log_softmax", "sparse_coo_tensor",
           "FloatTensor", "DoubleTensor", "LongTensor", "SparseCOOTensor"]


def _legacy(dtype):
    def construct(indices, values, size=None):
        return sparse_coo_tensor(indices, values, size, dtype=dtype)
    return construct


FloatTensor = _legacy(_dtypes.float32)
DoubleTensor = _legacy(_dtypes.float64)
LongTensor = _legacy(_dtypes.int64)
