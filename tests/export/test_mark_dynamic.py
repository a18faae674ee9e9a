"""torch._dynamo.mark_dynamic / maybe_mark_dynamic with ember.compile, against
torch.compile on the same program: a marked dim is symbolic from the first call (no
recompile for other sizes, which set_stance("fail_on_recompile") shows), a marked dim the
code fixes raises under mark_dynamic and compiles under maybe_mark_dynamic."""
from __future__ import annotations

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")


def _program(lib):
    def fn(x):
        return (x * 2).sum(1)
    rng = np.random.default_rng(0)
    make = lambda *s: lib.tensor(rng.standard_normal(s).astype(np.float32))  # noqa: E731
    lib._dynamo.reset()
    f = lib.compile(fn)
    x = make(4, 3)
    lib._dynamo.mark_dynamic(x, 0)
    out = {"first": f(x).numpy()}
    other = make(7, 3)
    with lib.compiler.set_stance("fail_on_recompile"):
        out["other_size"] = f(other).numpy()
    out["eager"] = fn(other).numpy()
    lin = lib.nn.Linear(3, 2)
    with lib.no_grad():
        y = make(4, 3)
        lib._dynamo.mark_dynamic(y, 1)
        try:
            lib.compile(lin)(y)
            out["strict_specialized"] = "ran"
        except Exception:       # noqa: BLE001 - torch's class is dynamo-internal
            out["strict_specialized"] = "refused"
        z = make(4, 3)
        lib._dynamo.maybe_mark_dynamic(z, 1)
        out["maybe"] = lib.compile(lin)(z).shape[1]
    return out


@pytest.mark.filterwarnings("ignore")
def test_mark_dynamic_like_torch():
    got, want = _program(ember), _program(torch)
    assert got["strict_specialized"] == want["strict_specialized"] == "refused"
    assert got["maybe"] == want["maybe"] == 2
    np.testing.assert_allclose(got["other_size"], got["eager"], rtol=1e-6)
    np.testing.assert_allclose(got["first"], want["first"], rtol=1e-5)
    np.testing.assert_allclose(got["other_size"], want["other_size"], rtol=1e-5)
