"""A CUDA plan's kernels are compiled in one batch when the plan is built
(CudaBackend.batch_compile -> eager_cuda.compile_kernels -> codegen/triton/
device_compile.compile_many); a kernel Triton refuses still becomes an eager step. The
compiler itself is replaced by recorders here (the emulated device runs kernels in Triton's
interpreter); tests/codegen/triton/test_triton_parallel_compile.py checks real cubins and
run_on_gpu.sh's compiled-plan tests the real batch path."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.compiler import compile_cuda  # noqa: E402
from ember.frontend import eager_cuda  # noqa: E402
from ember.ir.errors import LoweringError  # noqa: E402

from test_compile_cuda import EMULATED, _close, device  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not EMULATED, reason="replaces the Triton compiler: emulated "
                                "CUDA only (the GPU run compiles for real)")


class FakeCompiler:
    """Records batch and single compiles; `refuse`: kernel names Triton 'fails' on."""

    def __init__(self, refuse=()):
        self.refuse, self.batches, self.singles = set(refuse), [], []
        self.started = []             # kernels handed to the workers without waiting

    def start_compiles(self, requests, index):
        self.started.append([g.name for g, _ in requests])

    def compile_kernels(self, requests, index):
        self.batches.append([g.name for g, _ in requests])
        return [g.name not in self.refuse for g, _ in requests]

    def compile_kernel(self, generated, alignment, index):
        self.singles.append(generated.name)
        if generated.name in self.refuse:
            raise LoweringError(f"Triton could not compile {generated.name}: refused")
        return ("compiled", generated.name)


def _layers(x):
    """Two generated (non-GEMM) kernels: a softmax row kernel and a column reduction."""
    return (ember.nn.functional.softmax(x * 2, dim=-1) + 1).amax(0)


def _compile(fn, device, fake):  # noqa: F811
    x = ember.randn(4, 32)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compile_cuda.CudaBackend, "precompile", True)
        mp.setattr(eager_cuda, "compile_kernels", fake.compile_kernels)
        mp.setattr(eager_cuda, "compile_kernel", fake.compile_kernel)
        fast = ember.compile(fn, backend="triton", options={"cuda_graphs": False})
        with ember.no_grad():
            fast(x.to(device))              # builds the plan (kernels 'compiled' here)
    with ember.no_grad():
        _close(fast(x.to(device)), fn(x))   # runs it: the emulated launches
    return fast


def test_plan_kernels_compile_in_one_batch(device):  # noqa: F811
    fake = FakeCompiler()
    fast = _compile(ember.models.mlp(32, (16, 8)).eval(), device, fake)
    steps = [s.fn for s in fast.last[0].steps if s.kernel]
    assert len(fake.batches) == 1 and len(fake.batches[0]) == len(steps) == 3
    assert all(("compiled", s.generated.name) in s.compiled.values() for s in steps)
    assert not fast.stats.fallbacks


def test_a_refused_kernel_still_falls_back_eagerly(device):  # noqa: F811
    first = FakeCompiler()
    assert not _compile(_layers, device, first).stats.fallbacks
    refused = first.batches[0][0]
    fake = FakeCompiler(refuse={refused})
    fast = _compile(_layers, device, fake)
    # one batch, then the plan built again kernel by kernel: only `refused` runs eagerly
    assert len(fake.batches) == 1 and refused in fake.singles
    assert len(fast.stats.fallbacks) == 1 and refused in fast.stats.fallbacks[0]
    assert fast.stats.kernels == len(first.batches[0]) - 1


# --- convolutions whose cuDNN-or-Triton choice is not known yet --------------------------------
class FakeConvChoice:
    """cuDNN as far as the choice goes: every conv gets a spec, and timing one (which needs
    its Triton kernel compiled) records how many batches had compiled by then."""

    def __init__(self, fake: FakeCompiler, cudnn_faster: bool):
        self.fake, self.cudnn_faster = fake, cudnn_faster
        self.memo, self.timed = {}, []

    def spec_for(self, kind, x, w, y, stride, padding, dilation, bias=None, *rest, **kw):
        import types
        return types.SimpleNamespace(key=(kind, x, w, y, stride, padding, dilation),
                                     bias=bias is not None, benchmark=False)

    def timings(self, spec, index):
        return self.memo.get(spec.key)

    def prefers_cudnn(self, spec, index, triton_run, cudnn_run):
        """The timing itself: the Triton side really runs once (the emulated device runs
        it in Triton's interpreter, on the scratch operands the backend made for it)."""
        self.timed.append((len(self.fake.batches), triton_run()))
        self.memo[spec.key] = (1.0, 0.5) if self.cudnn_faster else (0.5, 1.0)
        return self.cudnn_faster

    def launch(self, generated, tensors, index):
        from emulation import interpreted_launch
        interpreted_launch(generated, tensors, index)
        return generated.name


def _conv_net():
    return ember.nn.Sequential(ember.nn.Conv2d(3, 8, 3, padding=1), ember.nn.ReLU(),
                               ember.nn.Conv2d(8, 8, 3, padding=1)).eval()


def _build_conv_net(device, cudnn_faster: bool):  # noqa: F811
    from ember.frontend import cudnn_conv
    from ember.runtime.cuda import cudnn as runtime_cudnn
    fake = FakeCompiler()
    choice = FakeConvChoice(fake, cudnn_faster)
    model = _conv_net()
    x = ember.randn(2, 3, 8, 8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compile_cuda.CudaBackend, "precompile", True)
        mp.setattr(eager_cuda, "compile_kernels", fake.compile_kernels)
        mp.setattr(eager_cuda, "compile_kernel", fake.compile_kernel)
        mp.setattr(eager_cuda, "start_compiles", fake.start_compiles)
        mp.setattr(cudnn_conv, "usable", lambda: True)
        mp.setattr(cudnn_conv, "spec_for", choice.spec_for)
        mp.setattr(cudnn_conv, "timings", choice.timings)
        mp.setattr(cudnn_conv, "prefers_cudnn", choice.prefers_cudnn)
        mp.setattr(eager_cuda, "launch", choice.launch)
        mp.setattr(cudnn_conv, "execute", lambda *args, **kwargs: None)   # not run here
        # no cuDNN library to build plans with (an earlier test of the worker may have
        # left a fake one loaded): the fake specs stand for cuDNN's choice only
        mp.setattr(runtime_cudnn, "library", lambda: None)
        fast = ember.compile(model, backend="triton", options={"cuda_graphs": False})
        with ember.no_grad():
            fast(x.to(device))
    return fast, fake, choice, model, x


def test_conv_choices_wait_for_the_batch_compile(device):  # noqa: F811
    fast, fake, choice, model, x = _build_conv_net(device, cudnn_faster=False)
    # every kernel handed to the workers (as generated, and all again before the first
    # wait); the timed convs' kernels waited for first (the convs are timed while the
    # rest compile), then the whole batch: never compiled one by one
    everything = set(fake.batches[-1])
    assert set(fake.started[-1]) == everything
    assert len(choice.timed) == 2 and all(n == 1 for n, _ in choice.timed)
    assert len(fake.batches) == 2 and set(fake.batches[0]) == {"conv2d_epilogue"}
    # (a single compile after a batch is the installed kernel's lookup)
    assert set(fake.singles) <= everything
    assert {name for _, name in choice.timed} <= set(fake.batches[0])
    # timed as the plan runs them, epilogues included: no kernel compiled only for timing
    assert {name for _, name in choice.timed} == {"conv2d_epilogue"}
    assert "conv2d" not in everything
    steps = [s.fn for s in fast.last[0].steps]
    assert not any(isinstance(s, compile_cuda.CudnnConvStep) for s in steps)
    with ember.no_grad():
        _close(fast(x.to(device)), model(x))


def test_a_conv_won_by_cudnn_builds_the_plan_again(device):  # noqa: F811
    fast, fake, choice, _, _ = _build_conv_net(device, cudnn_faster=True)
    assert len(choice.timed) == 2                    # timed once each, not again
    # the timed kernels, the first build's batch, the second build's batch
    assert len(fake.batches) == 3 and set(fake.singles) <= set(sum(fake.batches, []))
    steps = [s.fn for s in fast.last[0].steps]
    assert sum(isinstance(s, compile_cuda.CudnnConvStep) for s in steps) == 2
