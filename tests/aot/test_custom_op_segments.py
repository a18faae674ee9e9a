"""Custom ops (ember.library.custom_op) inside the native entry point: the program is
split at each custom-op step into native segments (ember_run_0 .. ember_run_k), the
runtime calling the op in Python between them on views of its operands in the arena;
results equal the Python step loop bit for bit, in process and through artifacts."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

import ember
from ember.ir.registry import OPS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def ops():
    """Two custom ops, unregistered again afterwards."""
    before = set(OPS)

    @ember.library.custom_op("segtest::wobble", mutates_args=())
    def wobble(x: ember.Tensor, scale: float) -> ember.Tensor:
        return ember.sin(x * scale) + x

    wobble.register_fake(lambda x, scale: ember.empty_like(x))

    @ember.library.custom_op("segtest::mix", mutates_args=())
    def mix(a: ember.Tensor, b: ember.Tensor) -> ember.Tensor:
        return a * 0.5 - b.tanh()

    mix.register_fake(lambda a, b: ember.empty_like(a))
    try:
        yield wobble, mix
    finally:
        for name in set(OPS) - before:
            del OPS[name]


class Net(ember.nn.Module):
    """A custom op first (on the input: segment 0 is empty), one between GEMMs reading
    a value that is also a result, and one last (its result is the plan's)."""

    def __init__(self, wobble, mix):
        super().__init__()
        self.wobble, self.mix = wobble, mix
        self.fc1, self.fc2 = ember.nn.Linear(6, 8), ember.nn.Linear(8, 8)

    def forward(self, x):
        h = self.fc1(self.wobble(x, 1.5)).relu()
        g = self.fc2(self.mix(h, h + 1.0))
        return self.wobble(g, 0.5), h


def _inputs():
    return ember.tensor(np.random.default_rng(4).standard_normal((5, 6)).astype(np.float32))


def test_in_process_plan_runs_custom_ops_between_native_segments(ops):
    ember.manual_seed(0)
    net = Net(*ops).eval()
    x = _inputs()
    compiled = ember.compile(net)
    with ember.no_grad():
        outs = [[t.numpy() for t in compiled(x)] for _ in range(3)]
        loop = ember.compile(net, options={"native_entry": False})(x)
    native = compiled.last[0].run.native
    assert native is not None, compiled.last[0].run.failed
    assert len(native.segments) == 4 and len(native.custom) == 3
    for got in outs:                       # call 1: the Python loop; 2 and 3: native
        for a, b in zip(got, loop):
            np.testing.assert_array_equal(a, b.numpy())
    with ember.no_grad():
        eager = net(x)
    for a, b in zip(outs[2], eager):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)


def test_artifact_segments_equal_compile_bit_for_bit(ops, tmp_path):
    ember.manual_seed(0)
    net = Net(*ops).eval()
    x = _inputs()
    ep = ember.export(net, (x,))
    path = ember.aot.compile_and_package(ep, tmp_path / "net.ember")
    with zipfile.ZipFile(path) as z:
        entry = json.loads(z.read("plan.json"))["entry"]
    assert entry["segments"] == [f"ember_run_{j}" for j in range(4)]
    assert "symbol" not in entry and len(entry["host_steps"]) == 3
    assert {h["kind"] for h in entry["host_steps"]} == {"custom_op"}
    run = ember.aot.load_package(path)
    with ember.no_grad():
        want = ember.compile(net, options={"native_entry": False})(x)
    for _ in range(2):                      # the arena is reused by the second call
        for a, b in zip(run(x), want):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    profile = run.lite.profile(x.numpy(), repeats=2)
    assert [kind for _, kind, _ in profile].count("custom_op (segtest::wobble)") == 2


def test_plan_without_custom_ops_keeps_one_native_call(tmp_path):
    ep = ember.export(lambda t: (t * 2 + 1).relu(), (ember.ones(3),))
    path = ember.aot.compile_and_package(ep, tmp_path / "f.ember")
    with zipfile.ZipFile(path) as z:
        entry = json.loads(z.read("plan.json"))["entry"]
    assert entry["symbol"] == "ember_run" and "segments" not in entry
    np.testing.assert_array_equal(ember.aot.load_package(path)(np.ones(3, np.float32))
                                  .numpy(), [3.0, 3.0, 3.0])


def test_standalone_lite_runtime_refuses_an_unregistered_op_without_importing_ember(
        ops, tmp_path):
    ep = ember.export(lambda t: ops[0](t, 2.0) + 1, (ember.ones(4),))
    path = ember.aot.compile_and_package(ep, tmp_path / "f.ember")
    script = textwrap.dedent(f'''
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location(
            "ember_lite", {str(ROOT / "ember" / "runtime" / "lite.py")!r})
        lite = importlib.util.module_from_spec(spec); spec.loader.exec_module(lite)
        try:
            lite.load_package({str(path)!r})
            print("LOADED")
        except lite.ArtifactError as err:
            print("refused:", err)
        print("ember imported:", any(m == "ember" or m.startswith("ember.")
                                     for m in sys.modules))
    ''')
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    refused, imported = out.stdout.strip().splitlines()
    assert "'segtest::wobble'" in refused and "not registered in this process" in refused
    assert imported == "ember imported: False"


def test_a_custom_op_with_several_results(tmp_path):
    """Its results get buffers of their own; the plan's getitem steps become `item`
    steps taking one each (in process and in the artifact)."""
    before = set(OPS)
    try:
        @ember.library.custom_op("segtest::two", mutates_args=())
        def two(x: ember.Tensor) -> tuple[ember.Tensor, ember.Tensor]:
            return x * 2, (x + 1).sum(-1)
        two.register_fake(lambda x: (ember.empty_like(x), x.sum(-1)))

        def f(t):
            a, b = two(t.relu())
            return a * b.unsqueeze(-1), b
        x = ember.randn(2, 3)
        compiled = ember.compile(f)
        with ember.no_grad():
            outs = [[r.numpy() for r in compiled(x)] for _ in range(3)]
            loop = [r.numpy() for r in ember.compile(f, options={"native_entry": False})(x)]
        assert compiled.last[0].run.native is not None, compiled.last[0].run.failed
        for got in outs:
            for a, b in zip(got, loop):
                np.testing.assert_array_equal(a, b)
        path = ember.aot.compile_and_package(ember.export(f, (x,)), tmp_path / "f.ember")
        run = ember.aot.load_package(path)
        assert [d["kind"] for d in run.lite.plan["steps"]].count("item") == 2
        for a, b in zip(run(x), loop):
            np.testing.assert_array_equal(a.numpy(), b)
    finally:
        for name in set(OPS) - before:
            del OPS[name]


def test_custom_ops_in_an_artifact_with_a_dynamic_batch(ops, tmp_path):
    wobble, _ = ops
    ember.manual_seed(0)
    fc = ember.nn.Linear(6, 4).eval()

    def f(x):
        return wobble(fc(x), 2.0).relu()
    batch = ember.export.Dim("batch", min=2, max=5)
    ep = ember.export(f, (ember.randn(3, 6),), dynamic_shapes=({0: batch},))
    run = ember.aot.load_package(ember.aot.compile_and_package(ep, tmp_path / "f.ember"))
    with ember.no_grad():
        for n in (2, 5):
            x = ember.randn(n, 6)
            np.testing.assert_array_equal(run(x).numpy(),
                                          ember.compile(f, dynamic=False)(x).numpy())
