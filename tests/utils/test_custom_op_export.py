"""Custom ops survive ember.export + save/load and ember.aot.compile_and_package by name:
the saved program and the artifact record each custom op's name; loading needs the op
registered in the loading process and says so, naming the op, when it is not."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import ember
from ember.ir.errors import ArtifactError
from ember.ir.registry import OPS

ROOT = Path(__file__).resolve().parents[2]

# the op lives in its own module, so a fresh process can import it (or not)
OPS_MODULE = '''
import ember
from ember import Tensor

@ember.library.custom_op("exportlib::shifted_sin", mutates_args=())
def shifted_sin(x: Tensor, shift: float, scales: list[float]) -> Tensor:
    return ember.sin(x + shift) * scales[0] + scales[1]

shifted_sin.register_fake(lambda x, shift, scales: ember.empty_like(x))
'''


class Net(ember.nn.Module):
    def __init__(self, op):
        super().__init__()
        self.op = op
        self.fc = ember.nn.Linear(5, 4)

    def forward(self, x):
        return ember.relu(self.op(self.fc(x), 0.25, [2.0, -0.5]) * 3.0)


def _torch_forward(net, x):
    w, b = (torch.from_numpy(p.detach().numpy()) for p in (net.fc.weight, net.fc.bias))
    h = torch.nn.functional.linear(torch.from_numpy(x), w, b)
    return torch.relu((torch.sin(h + 0.25) * 2.0 - 0.5) * 3.0).numpy()


@pytest.fixture
def saved(tmp_path):
    """(directory with ops module, net, x, exported-program path, artifact path)."""
    (tmp_path / "exportlib_ops.py").write_text(OPS_MODULE)
    sys.path.insert(0, str(tmp_path))
    before = set(OPS)
    try:
        import exportlib_ops
        ember.manual_seed(0)
        net = Net(exportlib_ops.shifted_sin)
        x = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
        ep = ember.export(net, (ember.tensor(x),))
        ember.export.save(ep, tmp_path / "net.ep")
        ember.aot.compile_and_package(ep, tmp_path / "net.ember")
        yield tmp_path, net, x, ep
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("exportlib_ops", None)
        for name in set(OPS) - before:
            del OPS[name]


def test_export_records_the_op_and_round_trips(saved):
    tmp, net, x, ep = saved
    assert "exportlib::shifted_sin(" in str(ep)
    want = _torch_forward(net, x)
    np.testing.assert_allclose(ep.module()(ember.tensor(x)).numpy(), want, rtol=1e-5,
                               atol=1e-6)
    loaded = ember.export.load(tmp / "net.ep")
    np.testing.assert_allclose(loaded.module()(ember.tensor(x)).numpy(), want, rtol=1e-5,
                               atol=1e-6)


def test_artifact_calls_the_op_by_name(saved):
    tmp, net, x, _ = saved
    run = ember.aot.load_package(tmp / "net.ember")
    assert run.manifest["custom_ops"] == ["exportlib::shifted_sin"]
    steps = [s for s in run.lite.plan["steps"] if s["kind"] == "custom_op"]
    assert [s["op"] for s in steps] == ["exportlib::shifted_sin"]
    assert steps[0]["args"] == [{"input": 0}, 0.25, [2.0, -0.5]]
    np.testing.assert_allclose(run(x).numpy(), _torch_forward(net, x), rtol=1e-5, atol=1e-6)


def test_loading_without_the_op_says_so_and_works_once_registered(saved):
    tmp, net, x, _ = saved
    np.save(tmp / "x.npy", x)
    np.save(tmp / "want.npy", _torch_forward(net, x))
    script = textwrap.dedent(f'''
        import sys, numpy as np, ember
        from ember.ir.errors import ArtifactError
        tmp = {str(tmp)!r}
        for load in (lambda: ember.export.load(tmp + "/net.ep"),
                     lambda: ember.aot.load_package(tmp + "/net.ember")):
            try:
                load()
                print("LOADED WITHOUT THE OP")
            except ArtifactError as err:
                print("refused:", err)
        sys.path.insert(0, tmp)
        import exportlib_ops
        x, want = np.load(tmp + "/x.npy"), np.load(tmp + "/want.npy")
        a = ember.export.load(tmp + "/net.ep").module()(ember.tensor(x)).numpy()
        b = ember.aot.load_package(tmp + "/net.ember")(x).numpy()
        print("max diff", float(abs(a - want).max()), float(abs(b - want).max()))
    ''')
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len([line for line in lines if line.startswith("refused:")]) == 2, out.stdout
    for line in lines[:2]:
        assert "'exportlib::shifted_sin'" in line and "not registered in this process" in line
    diffs = [float(v) for v in lines[2].split()[2:]]
    assert max(diffs) < 1e-5, lines[2]


def test_a_plain_function_with_a_custom_op_packages(tmp_path):
    before = set(OPS)
    try:
        @ember.library.custom_op("exportlib::takes_dtype_free", mutates_args=())
        def op(x: ember.Tensor) -> ember.Tensor:
            return x * 2
        op.register_fake(lambda x: ember.empty_like(x))
        ep = ember.export(lambda x: op(x) + 1, (ember.ones(2),))
        path = ember.aot.compile_and_package(ep, tmp_path / "f.ember")
        np.testing.assert_array_equal(ember.aot.load_package(path)(np.ones(2, np.float32))
                                      .numpy(), [3.0, 3.0])
    finally:
        for name in set(OPS) - before:
            del OPS[name]
