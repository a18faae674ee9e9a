"""ember.export(..., dynamic_shapes=): one symbolic dimension (compiler/export_dynamic.py),
checked against the eager model at sizes across the declared range."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn
from ember.ir.printer import print_graph


def _mlp():
    ember.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_a_dynamic_batch_runs_at_every_size_of_its_range(tmp_path):
    model = _mlp()
    batch = ember.export.Dim("batch", min=2, max=12)
    ep = ember.export(model, (ember.randn(4, 6),), dynamic_shapes={"input": {0: batch}})
    (bounds,) = ep.range_constraints.values()
    assert (bounds.lower, bounds.upper) == (2, 12) and ep.dynamic_dims == [(0, 0)]
    assert "f32[s0,6]" in print_graph(ep.symbolic_graph)
    assert "f32[4,6]" in print_graph(ep.graph)          # the example size
    ember.export.save(ep, tmp_path / "m.ep")
    loaded = ember.export.load(tmp_path / "m.ep")
    for n in (2, 5, 12):
        x = ember.randn(n, 6)
        with ember.no_grad():
            want = model(x).numpy()
        np.testing.assert_array_equal(ep.module()(x).numpy(), want)
        np.testing.assert_array_equal(loaded.module()(x).numpy(), want)
    for n in (0, 13):
        with pytest.raises(ember.EmberError, match=rf"size {n} is outside s0's range \[2, 12\]"):
            ep.module()(ember.randn(n, 6))
    with pytest.raises(ember.EmberError, match=r"input 'input' must be float32\[s0, 6\]"):
        ep.module()(ember.randn(3, 5))


def test_two_inputs_share_the_dim_positionally():
    batch = ember.export.Dim("b", max=9)
    ep = ember.export(lambda a, b: (a * 2 + b).sum(-1), (ember.randn(3, 4), ember.randn(3, 4)),
                      dynamic_shapes=({0: batch}, (batch, None)))
    a, b = ember.randn(7, 4), ember.randn(7, 4)
    np.testing.assert_array_equal(ep.module()(a, b).numpy(), (a * 2 + b).sum(-1).numpy())
    with pytest.raises(ember.EmberError, match="must have one size in a call"):
        ep.module()(a, ember.randn(6, 4))


def test_refusals_name_the_reason():
    x = ember.randn(4, 6)

    def branchy(t):
        return t * 2 if t.shape[0] > 3 else t
    with pytest.raises(ember.EmberError, match="compares the size"):
        ember.export(branchy, (x,), dynamic_shapes=({0: ember.export.Dim("n")},))
    with pytest.raises(ember.EmberError, match="min must be an int >= 0"):
        ember.export.Dim("n", min=-1)
    with pytest.raises(ember.EmberError, match=r"outside 'n''s range \[5, 9\]"):
        ember.export(lambda t: t + 1, (x,), dynamic_shapes=({0: ember.export.Dim("n", 5, 9)},))
    with pytest.raises(ember.EmberError, match="fewer than the three sizes"):
        ember.export(lambda t: t + 1, (x,), dynamic_shapes=({0: ember.export.Dim("n", 3, 4)},))
    with pytest.raises(ember.EmberError, match=r"you marked n as dynamic but your code "
                       r"specialized it to be a constant \(6\)"):
        ember.export(nn.Linear(6, 2), (x,), dynamic_shapes=({1: ember.export.Dim("n")},))


def test_a_range_below_two_is_kept_and_calls_of_size_zero_and_one_run():
    """torch.export keeps a Dim's declared min (0 by default) in range_constraints and
    its module runs sizes 0 and 1 of it: ember traces at sizes >= 2 and runs the graph
    at s0 = 0 or 1 (its results' shapes checked); a size outside the range is refused."""
    x = ember.randn(4, 6)
    assert ember.export.Dim("n", min=1).min == 1 and ember.export.Dim("n").min == 0
    ep = ember.export.export(lambda t: t * 2, (x,),
                             dynamic_shapes={"t": {0: ember.export.Dim("n", min=1, max=64)}})
    assert ep.range_constraints["s0"].lower == 1
    np.testing.assert_array_equal(ep.module()(ember.ones(7, 6)).numpy(), np.full((7, 6), 2.0))
    np.testing.assert_array_equal(ep.module()(ember.ones(1, 6)).numpy(), np.full((1, 6), 2.0))
    with pytest.raises(AssertionError, match=r"size 0 is outside s0's range \[1, 64\]"):
        ep.module()(ember.ones(0, 6))
    ep = ember.export.export(lambda t: t.sum(1), (x,),
                             dynamic_shapes={"t": {0: ember.export.Dim("n")}})
    assert ep.range_constraints["s0"].lower == 0
    assert list(ep.module()(ember.ones(0, 6)).shape) == [0]


def test_dim_hints_auto_dynamic_static():
    x = ember.randn(4, 6)
    Dim = ember.export.Dim
    ep = ember.export.export(lambda t: t.sum(1), (x,), dynamic_shapes=({0: Dim.AUTO},))
    assert list(ep.module()(ember.ones(9, 6)).shape) == [9]
    ep = ember.export.export(lambda t: t.sum(1), (x,),
                             dynamic_shapes={"t": (Dim.DYNAMIC, Dim.STATIC)})
    assert ep.dynamic_dims == [(0, 0)]


@pytest.mark.parametrize("which", ["cnn", "transformer"])
def test_artifact_with_a_dynamic_batch_equals_compile_at_every_size(which, tmp_path):
    """One program per size in the artifact; the transformer's kernels differ per size
    (its attention reshapes use the batch beyond the outer loop)."""
    ember.manual_seed(1)
    if which == "cnn":
        model, tail = ember.models.small_cnn(seed=1).eval(), (1, 12, 12)
    else:
        model = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=24,
                                           dropout=0.0, batch_first=True).eval()
        tail = (3, 16)
    batch = ember.export.Dim("batch", min=2, max=5)
    ep = ember.export(model, (ember.randn(3, *tail),), dynamic_shapes=({0: batch},))
    path = ember.aot.compile_and_package(ep, tmp_path / "m.ember")
    run = ember.aot.load_package(path)
    assert run.manifest["dynamic"] == {"dims": [[0, 0]], "min": 2, "max": 5, "size_one": True}
    assert run.manifest["inputs"][0]["shape"] == [3, *tail]
    for n in (2, 4, 5, 3, 1):        # 1: a program at s0 = 1, as torch runs batch 1
        x = ember.randn(n, *tail)
        with ember.no_grad():
            want = ember.compile(model, dynamic=False)(x).numpy()
        np.testing.assert_array_equal(run(x).numpy(), want)
    with pytest.raises(ember.ArtifactError, match=r"takes one size in \[2, 5\], got \[6\]"):
        run(ember.randn(6, *tail))
    with pytest.raises(ember.ArtifactError, match=r"must be float32\[s0, "):
        run(ember.randn(2, *tail[:-1], tail[-1] + 1))
