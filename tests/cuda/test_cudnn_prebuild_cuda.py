"""A compiled CUDA plan's cuDNN plans are built while its kernels compile: the batch
compile (CudaBackend.batch_compile) collects the cuDNN convolutions the first call will
use (its cuDNN steps, the convs timed after the batch, and the convolution backwards its
eager steps ask cuDNN for, recorded by the dry run) and builds them after handing its
kernels to the compile workers, before waiting for them. Here the Triton compiler and
cuDNN's plan builder are recorders (the emulated device has no cuDNN), and the step's
real run uses ember's Triton kernels; run_on_gpu.sh's cuDNN tests build real plans."""
import copy
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.compiler import compile_cuda  # noqa: E402
from ember.frontend import cudnn_conv, eager_cuda  # noqa: E402
from ember.runtime.cuda import cudnn as runtime_cudnn  # noqa: E402

from test_batch_compile import FakeCompiler  # noqa: E402
from test_compile_cuda import EMULATED, device  # noqa: E402,F401
from tests.compile.helpers import eager_step  # noqa: E402

pytestmark = pytest.mark.skipif(not EMULATED, reason="replaces the Triton compiler and "
                                "cuDNN's plan builder: emulated CUDA only")


def _net():
    return ember.nn.Sequential(ember.nn.Conv2d(3, 8, 3, padding=1), ember.nn.ReLU(),
                               ember.nn.Conv2d(8, 8, 3, stride=2, padding=1),
                               ember.nn.AdaptiveAvgPool2d(1), ember.nn.Flatten(),
                               ember.nn.Linear(8, 4))


def _train(device, choice):  # noqa: F811
    """Two compiled steps with cuDNN 'present' (`choice(spec)`: the recorded
    (Triton ms, cuDNN ms) or None) but never run; returns the recorded events."""
    events = []
    fake = FakeCompiler()

    def compile_kernels(requests, index):
        events.append(("compile", len(requests)))
        return fake.compile_kernels(requests, index)

    def conv_plan(spec, index=0, buffers=None):
        events.append(("build", spec))
    ember.manual_seed(0)
    ref = _net()
    model = copy.deepcopy(ref).to(device)
    opt = ember.optim.SGD(model.parameters(), lr=0.1)
    opt_ref = ember.optim.SGD(ref.parameters(), lr=0.1)
    loss_fn = ember.nn.CrossEntropyLoss()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(compile_cuda.CudaBackend, "precompile", True)
        mp.setattr(eager_cuda, "compile_kernels", compile_kernels)
        mp.setattr(eager_cuda, "compile_kernel", fake.compile_kernel)
        mp.setattr(runtime_cudnn, "library", lambda: object())
        mp.setattr(runtime_cudnn, "conv_plan", conv_plan)
        mp.setattr(cudnn_conv, "usable", lambda: False)     # the real run: Triton
        mp.setattr(cudnn_conv, "timings", lambda spec, index: choice(spec))
        step = ember.compile_train_step(model, loss_fn, opt, backend="triton",
                                        options={"cuda_graphs": False})
        x, y = ember.randn(2, 3, 8, 8), ember.randint(0, 4, (2,))
        step(x.to(device), y.to(device))
    got = step(x.to(device), y.to(device)).item()
    eager_step(ref, loss_fn, opt_ref, x, y)
    np.testing.assert_allclose(got, eager_step(ref, loss_fn, opt_ref, x, y).item(),
                               rtol=2e-4, atol=2e-4)
    return events


def test_backward_convs_cudnn_will_run_are_built_before_the_compile_wait(device):  # noqa: F811
    events = _train(device, lambda spec: None)       # no recorded choice: both are timed
    builds = [e[1] for e in events if e[0] == "build"]
    assert builds, events
    first_compile = next(i for i, e in enumerate(events) if e[0] == "compile")
    assert all(e[0] == "build" for e in events[:first_compile])
    assert first_compile == len(builds)               # every build before the wait
    assert len(set(builds)) == len(builds)            # each spec once
    # the second conv's input and weight gradients, the first's weight gradient (its
    # input, the batch, needs none)
    assert {(s.kind, s.x[0]) for s in builds} == {("dgrad", (2, 8, 8, 8)),
                                                  ("wgrad", (2, 8, 8, 8)),
                                                  ("wgrad", (2, 3, 8, 8))}


def test_nothing_is_built_where_triton_is_the_recorded_choice(device):  # noqa: F811
    events = _train(device, lambda spec: (0.5, 1.0))
    assert not [e for e in events if e[0] == "build"]

