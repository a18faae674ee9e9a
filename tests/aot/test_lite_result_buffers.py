"""The lite runtime's result buffers (runtime/lite.py: Spares): every call's results are
the caller's own; a buffer is used again only once nothing references its memory."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.runtime import lite


class _Head(ember.nn.Module):
    """Two results: one written by the last kernel into the caller's buffer, one a
    reshape of an intermediate value."""

    def __init__(self):
        super().__init__()
        self.fc = ember.nn.Linear(32, 48)

    def forward(self, x):
        h = self.fc(x).relu()
        return h * 2.0, h.reshape(-1)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    ember.manual_seed(0)
    net = _Head().eval()
    x = np.random.default_rng(0).standard_normal((64, 32), dtype=np.float32)
    path = str(tmp_path_factory.mktemp("spares") / "head.ember")
    ember.aot.compile_and_package(ember.export(net, (ember.tensor(x),)), path)
    with ember.no_grad():
        want = [t.numpy() for t in ember.compile(net)(ember.tensor(x))]
    return lite.load_package(path), x, want


def _addresses(results):
    return [r.__array_interface__["data"][0] for r in results]


def test_results_held_by_the_caller_are_never_reused(model):
    run, x, want = model
    first = run(x)
    second = run(x * 0.5)
    for a, b in zip(first, second):
        assert not np.shares_memory(a, b)
    for got, expected in zip(first, want):
        np.testing.assert_array_equal(got, expected)     # untouched by the second call


def test_a_view_keeps_its_memory(model):
    run, x, want = model
    results = run(x)
    views = [r[:5] for r in results]
    del results                    # the views still reference the buffers' memory
    again = run(x * -1.0)
    for v, r, expected in zip(views, again, want):
        assert not np.shares_memory(v, r)
        np.testing.assert_array_equal(v, expected[:5])


def test_dropped_results_free_their_buffers(model):
    run, x, want = model
    before = _addresses(run(x))    # dropped at once
    after = run(x)
    assert _addresses(after) == before
    for got, expected in zip(after, want):
        np.testing.assert_array_equal(got, expected)


def test_copies_out_of_the_arena_follow_the_same_rule():
    """Results living in the arena are copied out (Spares.copy), also into a spare."""
    spares = lite.Spares(1)
    arena = np.arange(24, dtype=np.float32).reshape(4, 6)
    view = arena[:, ::2]                       # a strided view, copied in C order
    a = spares.copy(0, view)
    np.testing.assert_array_equal(a, view)
    assert a.flags.c_contiguous and not np.shares_memory(a, arena)
    arena += 100
    b = spares.copy(0, view)                   # `a` is held: a new buffer
    assert not np.shares_memory(a, b)
    np.testing.assert_array_equal(a, np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2])
    address = b.__array_interface__["data"][0]
    del a, b
    c = spares.copy(0, view)                   # nothing holds the spare: written in place
    assert c.__array_interface__["data"][0] == address
    np.testing.assert_array_equal(c, view)


def test_compiled_results_are_the_callers_own(rng):
    """ember.compile's native entry (from the second call) hands out spares the same way."""
    ember.manual_seed(1)
    net = _Head().eval()
    compiled = ember.compile(net)
    x = ember.tensor(rng.standard_normal((64, 32), dtype=np.float32))
    with ember.no_grad():
        first = [t.numpy().copy() for t in compiled(x)]
        held = compiled(x)                          # native from here
        other = compiled(x * 3.0)
        for h, o, f in zip(held, other, first):
            assert not np.shares_memory(h.numpy(), o.numpy())
            np.testing.assert_array_equal(h.numpy(), f)
        del held, other
        again = compiled(x)
    assert compiled.last[0].run.native is not None
    for a, f in zip(again, first):
        np.testing.assert_array_equal(a.numpy(), f)
