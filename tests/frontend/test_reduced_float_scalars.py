"""Scalar operands of bfloat16/float16 ops (issue 22): PyTorch casts a Python number or a
0-dim tensor to the tensor's dtype before add/sub/pow/atan2/comparisons/..., but mul, div
and lerp read it at float32 precision. Eager agrees with torch bit for bit, call after
call (the first call and the cached paths)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ember  # noqa: E402

EXPRESSIONS = [
    "1.001 - x", "x - 1.001", "x + 0.1", "x + 1.0003", "0.1 * x", "x * 1.7", "x / 3.3",
    "2.7 ** x", "x ** 1.3", "x.sub(1.001)", "x.add(1.001, alpha=2)", "M.rsub(x, 1.001)",
    "x + M.tensor(1.001)", "x * M.tensor(1.001)", "M.where(x > 1, x, 0.1)",
    "M.maximum(x, M.tensor(0.333))", "x.clone().add_(1.001)", "x.clone().mul_(1.001)",
    "M.atan2(x, M.tensor(1.001))", "x - M.tensor([3, 1, 2, 5, 9, 300, 1, 2])",
    "M.lerp(x, M.ones_like(x), 0.333)", "x < 1.001", "x == 1.001", "M.remainder(x, 1.3)",
    "M.floor_divide(x, 0.3)", "M.div(x, 0.3, rounding_mode='trunc')",
    "x + 257", "x * 257.3",
]


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
@pytest.mark.parametrize("expr", EXPRESSIONS)
def test_scalar_operand_rounding_matches_torch(dtype, expr):
    values = [1.0, 2.0, 100.0, 0.3, 7.0, 0.77, 3.0, 5.5]
    x = torch.tensor(values, dtype=getattr(torch, dtype))
    want = eval(expr, {"M": torch, "x": x})
    for _ in range(3):
        x = ember.tensor(values, dtype=getattr(ember, dtype))
        got = eval(expr, {"M": ember, "x": x})
        assert str(got.dtype).split(".")[-1] == str(want.dtype).split(".")[-1]
        np.testing.assert_array_equal(np.asarray(got.float().tolist()),
                                      np.asarray(want.float().tolist()))


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_compiled_pointwise_scalars_match_torch(dtype):
    """The generated kernels round a number the same way (codegen/lowering.py)."""
    def f(M, x):
        return (1.001 - x, x * 1.001, x + 0.1, x + 257, x < 1.001, x / 3.3, 2.7 ** x)
    values = [1.0, 2.0, 100.0, 0.3, 7.0, 0.77, 3.0, 5.5]
    want = f(torch, torch.tensor(values, dtype=getattr(torch, dtype)))
    got = ember.compile(lambda x: f(ember, x))(ember.tensor(values, dtype=getattr(ember, dtype)))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(np.asarray(g.float().tolist()),
                                      np.asarray(w.float().tolist()))
