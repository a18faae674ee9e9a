"""A LeNet-style CNN (conv, relu, max pool, twice, then flatten and Linear): on the CPU
the pool's result is converted to NCHW for the flatten by a kernel of its own
(fusion's `pool_conversions_apart`), so the pool kernel reads and writes channels-last.
In process and through an artifact, the same bits; torch is the oracle."""
from __future__ import annotations

import numpy as np

import ember
from ember.ir.fused import is_fused


def _lenet(nn):
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 3 * 3, 10))


def test_pool_result_converted_by_its_own_kernel(rng, tmp_path):
    import torch
    t = _lenet(torch.nn).eval()
    model = _lenet(ember.nn).eval()
    model.load_state_dict({k: ember.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})
    x = rng.standard_normal((4, 1, 12, 12), dtype=np.float32)
    compiled = ember.compile(model)
    with ember.no_grad():
        first, second = (compiled(ember.tensor(x)).numpy() for _ in range(2))
    kernels = [[op.name for op in n.target.ops] for n in compiled.graph.nodes
               if n.op == "call_function" and is_fused(n.target)]
    pools = [ops for ops in kernels if "max_pool2d" in ops]
    assert len(pools) == 2 and all("contiguous" not in ops for ops in pools), kernels
    assert any(ops == ["contiguous"] for ops in kernels), kernels
    np.testing.assert_array_equal(second, first)
    path = str(tmp_path / "lenet.ember")
    ember.aot.compile_and_package(ember.export(model, (ember.tensor(x),)), path)
    np.testing.assert_array_equal(ember.aot.load_package(path).lite(x)[0], first)
    with torch.no_grad():
        want = t(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(first, want, rtol=1e-4, atol=1e-5)
