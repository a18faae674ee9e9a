"""ember.library.triton_op / wrap_triton with a user kernel (a fused add-mul), checked
eager, gradients (gradcheck), traced, compiled and exported. CUDA is emulated on the
CPU (emulation.py) and the kernel runs under TRITON_INTERPRET=1; on a GPU machine
(EMBER_TEST_GPU=1 style runs of tests/cuda) the same kernel is compiled to a cubin and
launched by ember's runtime, and test_user_kernel_compiles_to_a_cubin checks that half
here without a GPU."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import itertools  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("triton")

import ember  # noqa: E402
from ember.frontend import devices, triton_launch  # noqa: E402
from ember.ir.errors import DeviceError  # noqa: E402
from ember.ir.registry import OPS  # noqa: E402

import triton_op_kernels  # noqa: E402
from emulation import emulated_cuda  # noqa: E402
from test_compile_cuda import device  # noqa: E402,F401 - the emulated compile fixture

_ids = itertools.count()
REAL_RUN_KERNEL = triton_launch.run_kernel       # emulated_cuda replaces it (interpreter)


@pytest.fixture
def add_mul():
    before = set(OPS)
    yield triton_op_kernels.define(f"tritontest::add_mul_{next(_ids)}")
    for name in set(OPS) - before:
        del OPS[name]


def _inputs(rng, dtype=np.float32, shape=(3, 50)):
    return (rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype))


def test_eager_on_cuda_runs_the_user_kernel(add_mul, rng):
    x, y = _inputs(rng)
    calls = []
    with emulated_cuda(), pytest.MonkeyPatch.context() as mp:
        from ember.frontend import triton_launch
        real = triton_launch.run_kernel
        mp.setattr(triton_launch, "run_kernel",
                   lambda *a: (calls.append(a[2]), real(*a))[1])
        out = add_mul(ember.tensor(x).to("cuda"), ember.tensor(y).to("cuda"), 0.5)
        assert out.is_cuda and out.shape == (3, 50)
        got = out.cpu().numpy()
    expected = ((torch.from_numpy(x) + torch.from_numpy(y)) * 0.5).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert len(calls) == 1 and calls[0]["n"] == 150 and calls[0]["BLOCK"] == 64


def test_gradients_and_gradcheck(add_mul, rng):
    x, y = _inputs(rng, np.float64, (2, 7))
    with emulated_cuda():
        a = ember.tensor(x).to("cuda").requires_grad_()
        b = ember.tensor(y).to("cuda").requires_grad_()
        (add_mul(a, b, 1.5) * ember.tensor(y).to("cuda")).sum().backward()
        np.testing.assert_allclose(a.grad.cpu().numpy(), 1.5 * y)
        np.testing.assert_allclose(b.grad.cpu().numpy(), 1.5 * y)
        # gradcheck reads values on the host: the op runs on CUDA between two moves
        assert ember.autograd.gradcheck(
            lambda p, q: add_mul(p.to("cuda"), q.to("cuda"), -0.75).cpu(),
            (ember.tensor(x).requires_grad_(), ember.tensor(y).requires_grad_()))


def test_traced_as_one_node_without_a_fake(add_mul):
    gm = ember.fx.symbolic_trace(lambda x, y: add_mul(x, y, 2.0).relu())
    calls = [(n.op, n.target) for n in gm.graph.nodes if n.op.startswith("call_")]
    assert calls == [("call_function", add_mul.op), ("call_method", "relu")]
    ep = ember.export(lambda x, y: add_mul(x, y, 2.0) + 1, (ember.ones(4), ember.ones(4)))
    assert f"{add_mul.name}(" in str(ep)
    assert ep.output_specs[0].shape == (4,)        # shapes from the function, launch skipped


def test_compiled_on_cuda_calls_the_kernel_from_the_plan(add_mul, device, rng):  # noqa: F811
    x, y = _inputs(rng)
    fn = ember.compile(lambda a, b: ember.sigmoid(add_mul(a, b, 0.5)) * 2,
                       backend="triton", options={"cuda_graphs": False})
    with ember.no_grad():
        got = fn(ember.tensor(x).to(device), ember.tensor(y).to(device))
    expected = (torch.sigmoid((torch.from_numpy(x) + torch.from_numpy(y)) * 0.5) * 2).numpy()
    np.testing.assert_allclose(got.cpu().numpy(), expected, rtol=1e-5, atol=1e-6)
    plan, stats, _ = fn.last
    # the op is one external call in the plan (its kernel launched from it), then the
    # generated kernel for sigmoid * 2
    assert [s.kind for s in plan.steps] == ["fallback", "kernel"]
    assert stats.fallbacks == [add_mul.name]


def test_cpu_operands_are_refused_by_name(add_mul):
    with pytest.raises(DeviceError, match=r"wrap_triton\(add_mul_kernel\): Triton kernels "
                       r"run on CUDA tensors, but x_ptr, y_ptr, out_ptr are on the CPU"):
        add_mul(ember.ones(3), ember.ones(3), 1.0)
    add_mul.register_kernel("cpu", lambda x, y, scale: (x + y) * scale)
    np.testing.assert_array_equal(add_mul(ember.ones(3), ember.ones(3), 2.0).numpy(), [4.0] * 3)


def test_a_replacing_fake_is_checked_like_custom_ops(add_mul, rng):
    add_mul.register_fake(lambda x, y, scale: ember.empty_like(x).sum(0))
    x, y = _inputs(rng)
    with emulated_cuda():
        with pytest.raises(Exception, match="fake function says f32\\[50\\]"):
            add_mul(ember.tensor(x).to("cuda"), ember.tensor(y).to("cuda"), 1.0)


_CUBIN_CHILD = """
import sys
from triton.runtime.jit import JITFunction
import triton_op_kernels
from ember.frontend.triton_launch import compile_user_kernel
kernel = triton_op_kernels.add_mul_kernel
if not isinstance(kernel, JITFunction):
    sys.exit(f"expected a JITFunction, got {type(kernel)}")
signature = {"x_ptr": "*fp32", "y_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32",
             "scale": "fp32"}
compiled = compile_user_kernel(kernel, signature, {"BLOCK": 64}, ("x_ptr", "out_ptr"),
                               {"num_warps": 2}, (9, 0))
print(compiled.asm["cubin"][:4] == b"\\x7fELF", compiled.metadata.num_warps)
"""


def test_user_kernel_compiles_to_a_cubin(tmp_path):
    """The GPU half without a GPU: Triton compiles the user kernel with ember's signature.
    In a fresh process without TRITON_INTERPRET: once this process has interpreted a
    kernel, Triton's language functions stay bound to the interpreter's builder, and a
    compile that misses Triton's cache fails in ast_to_ttir."""
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path / "triton")       # a real compile, not a hit
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join([here] + [p for p in sys.path if p])
    run = subprocess.run([sys.executable, "-c", _CUBIN_CHILD], capture_output=True,
                         text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split() == ["True", "2"]


def test_gpu_launch_gets_the_signature_and_arguments_in_order(add_mul, rng):
    """ember's own launch path up to the driver (interpreted runs above replace it):
    one compile per signature, runtime arguments in parameter order, pointers as ints."""
    loads, launches = [], []

    class RecordingCubin:
        def launch(self, grid, args):
            launches.append((grid, list(args)))

    def load(kernel, signature, constexprs, aligned, options, index):
        loads.append((dict(signature), dict(constexprs), set(aligned), options, index))
        return RecordingCubin()
    x, y = _inputs(rng)
    with emulated_cuda(), pytest.MonkeyPatch.context() as mp:
        mp.setattr(triton_launch, "run_kernel", REAL_RUN_KERNEL)
        mp.setattr(triton_launch, "_load", load)
        a, b = ember.tensor(x).to("cuda"), ember.tensor(y).to("cuda")
        out = add_mul(a, b, 0.5)
        add_mul(a, b, 0.25)
        pointers = [devices.data_ptr(t) for t in (a, b, out)]
    assert loads == [({"x_ptr": "*fp32", "y_ptr": "*fp32", "out_ptr": "*fp32", "n": "i32",
                       "scale": "fp32"}, {"BLOCK": 64}, {"x_ptr", "y_ptr", "out_ptr"}, {}, 0)]
    assert launches[0] == ((3, 1, 1), pointers + [150, 0.5])
    assert launches[1][0] == (3, 1, 1) and launches[1][1][3:] == [150, 0.25]
