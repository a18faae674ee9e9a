"""A plan built again because convolutions timed after the batch compile chose cuDNN
(PlanBuilder.build -> record.rebuild) lowers each fused group once, generates each
kernel's Triton source once and dry-runs its eager steps once, and comes out the same as
a plan built with those choices known from the start. The compiler and cuDNN's choice
are recorders (tests/cuda/test_batch_compile.py's); nothing here runs on a GPU."""
import hashlib
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.codegen.triton import source, split_reduce  # noqa: E402
from ember.compiler import compile as compile_mod, compile_cuda  # noqa: E402
from ember.frontend import cudnn_conv, eager_cuda  # noqa: E402
from ember.runtime.cuda import cudnn as runtime_cudnn  # noqa: E402

from test_batch_compile import FakeCompiler, FakeConvChoice  # noqa: E402
from test_compile_cuda import EMULATED, _close, device  # noqa: E402,F401

pytestmark = pytest.mark.skipif(not EMULATED, reason="replaces the Triton compiler and "
                                "cuDNN's choice: emulated CUDA only")


def _net():
    """Two convs (their choice timed after the batch) and groups with no anchor: a
    pointwise epilogue chain and a row reduction (softmax)."""
    return ember.nn.Sequential(ember.nn.Conv2d(3, 8, 3, padding=1), ember.nn.ReLU(),
                               ember.nn.Conv2d(8, 8, 3, padding=1), ember.nn.Flatten(),
                               ember.nn.Softmax(dim=1)).eval()


def _signature(fast) -> list:
    out = []
    for step in fast.last[0].steps:
        fn = step.fn
        kernels = [p.generated for p in getattr(fn, "parts", [])] or \
            ([fn.generated] if getattr(fn, "generated", None) is not None else [])
        out.append((step.name, type(fn).__name__, step.inputs, step.outputs,
                    tuple(hashlib.sha256(g.source.encode()).hexdigest() for g in kernels)))
    return out


def _build(device, choice_memo=None):  # noqa: F811
    fake = FakeCompiler()
    choice = FakeConvChoice(fake, cudnn_faster=True)
    if choice_memo is not None:
        choice.memo = dict(choice_memo)
    counts = {"lower": 0, "generate": 0, "dry run": 0}
    real_lower, real_split = compile_mod.lower_group, split_reduce.generate_split
    real_generate, real_dry = source.generate, compile_cuda._eager_requests

    def counted(name, fn):
        def run(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return run
    ember.manual_seed(0)
    model = _net()
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
        mp.setattr(runtime_cudnn, "library", lambda: None)
        mp.setattr(compile_mod, "lower_group", counted("lower", real_lower))
        mp.setattr(split_reduce, "generate_split", counted("generate", real_split))
        mp.setattr(source, "generate", counted("generate", real_generate))
        mp.setattr(compile_cuda, "_eager_requests", counted("dry run", real_dry))
        fast = ember.compile(model, backend="triton", options={"cuda_graphs": False})
        with ember.no_grad():
            fast(x.to(device))
    return fast, fake, choice, counts


def test_a_plan_built_again_lowers_generates_and_dry_runs_once(device):  # noqa: F811
    again, fake, choice, counts = _build(device)
    # built twice: the first build's batch, the timed kernels, the second build's batch
    assert len(fake.batches) == 3 and len(choice.timed) == 2
    steps = [s.fn for s in again.last[0].steps]
    assert sum(isinstance(s, compile_cuda.CudnnConvStep) for s in steps) == 2
    groups = [s for s in again.last[0].steps if s.kind == "kernel"]
    assert groups                                          # groups with no anchor
    # each group lowered once and its source made once (split or plain: one call each,
    # and the split generator asks the plain one only for a kernel it does not split)
    assert counts["lower"] == len({s.name for s in groups})
    assert counts["dry run"] == 1
    # the plan a build with the choices known from the start makes
    known, known_fake, known_choice, known_counts = _build(device, choice.memo)
    assert len(known_fake.batches) == 1 and not known_choice.timed
    assert _signature(again) == _signature(known)
    assert counts["generate"] == known_counts["generate"]
    assert counts["lower"] == known_counts["lower"]
