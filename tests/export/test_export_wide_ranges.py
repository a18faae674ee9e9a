"""ember.aot artifacts of a dynamic dimension whose range is longer than the native
programs an artifact holds (an unbounded Dim, AOTInductor's Dim("batch", 1, 1024)):
native programs at chosen sizes, the other sizes through ember.compile from the
exported program the artifact carries; the lite runtime alone refuses those sizes."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember import nn
from ember.runtime import lite


def _mlp():
    ember.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).eval()


def test_an_unbounded_range_runs_native_and_compiled_sizes(tmp_path):
    model = _mlp()
    ep = ember.export(model, (ember.randn(4, 6),),
                      dynamic_shapes={"input": {0: ember.export.Dim("batch")}})
    path = ember.aot.compile_and_package(ep, tmp_path / "m.ember",
                                         options={"native_sizes": [4, 8]})
    run = ember.aot.load_package(path)
    assert run.manifest["dynamic"] == {"dims": [[0, 0]], "min": 2, "max": None,
                                       "size_one": True, "native_sizes": [4, 8]}
    for n in (4, 8, 1, 5, 300):       # native (1 too), then compiled from exported.ep
        x = ember.randn(n, 6)
        with ember.no_grad():
            want = ember.compile(model, dynamic=False)(x).numpy()
        np.testing.assert_allclose(run(x).numpy(), want, rtol=1e-6, atol=1e-6)
        if n in (4, 8, 1):
            np.testing.assert_array_equal(run(x).numpy(), want)
    alone = lite.load_package(path)
    np.testing.assert_array_equal(alone(np.ones((8, 6), np.float32))[0],
                                  run(ember.ones(8, 6)).numpy())
    with pytest.raises(lite.NoNativeProgram, match=r"s0 = 5 has no native program .*"
                       r"native sizes: \[1, 4, 8\]"):
        alone(np.ones((5, 6), np.float32))
    with pytest.raises(ember.ArtifactError, match=r"takes one size in \[2, inf\], got \[0\]"):
        alone(np.ones((0, 6), np.float32))


def test_default_native_sizes_are_the_example_and_powers_of_two():
    from ember.compiler.aot import _native_sizes
    model = _mlp()
    ep = ember.export(model, (ember.randn(6, 6),), dynamic_shapes={
        "input": {0: ember.export.Dim("batch", min=1, max=1024)}})
    assert _native_sizes(ep, {}) == [2, 4, 6, 8, 16, 32, 64, 128, 256, 512, 1024]
    short = ember.export(model, (ember.randn(6, 6),), dynamic_shapes={
        "input": {0: ember.export.Dim("batch", min=3, max=9)}})
    assert _native_sizes(short, {}) == list(range(3, 10))
    with pytest.raises(ember.ir.errors.LoweringError, match="native_sizes"):
        _native_sizes(short, {"native_sizes": [2]})
