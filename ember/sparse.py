"""ember.sparse: torch.sparse's COO subset (implemented in frontend/sparse_coo.py):
mm, addmm, sum, and the legacy FloatTensor / DoubleTensor / LongTensor constructors."""
from .frontend.sparse_coo import SparseCOOTensor, addmm, mm, sparse_coo_tensor, sum  # noqa
from .ir import dtypes as _dtypes

__all__ = ["mm", "addmm", "sum", "sparse_coo_tensor", "FloatTensor", "DoubleTensor",
           "LongTensor", "SparseCOOTensor"]


def _legacy(dtype):
    def construct(indices, values, size=None):
        return sparse_coo_tensor(indices, values, size, dtype=dtype)
    return construct


FloatTensor = _legacy(_dtypes.float32)
DoubleTensor = _legacy(_dtypes.float64)
LongTensor = _legacy(_dtypes.int64)
