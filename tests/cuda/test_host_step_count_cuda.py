"""A compiled CUDA training step with Adam/AdamW keeps the step counts on the host, as
torch's non-capturable Adam does: write-back adds one to each count on the CPU instead
of reading the device's new count back (a synchronizing copy per parameter, every
step). The counts and parameters equal torch's float64 steps; a count changed by the
caller between steps is the one the next step continues from."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
from ember.compiler.compile_cuda import CudaBackend  # noqa: E402

from test_bench_rows_cuda import (_assert_close, _compiled_steps, _torch_steps,  # noqa: E402
                                  _twins, cuda)  # noqa: F401 - the CUDA fixture
from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture


def _host_reads(monkeypatch) -> list:
    reads = []
    copy_into = CudaBackend.copy_into

    def counted(self, tensor, value):
        if not tensor.is_cuda:
            reads.append(tuple(tensor.shape))
        return copy_into(self, tensor, value)
    monkeypatch.setattr(CudaBackend, "copy_into", counted)
    return reads


def test_step_counts_stay_on_the_host(cuda, monkeypatch):
    reads = _host_reads(monkeypatch)
    model, twin, x, y, loss = _twins("mlp")
    got, step, losses = _compiled_steps(model, loss, x, y, cuda, steps=3)
    _assert_close(got, twin, losses, _torch_steps(twin, loss, x, y, 3), 2e-4)
    opt = step.optimizer
    counts = [opt.state[p]["step"] for p in got.parameters()]
    assert all(not c.is_cuda and c.item() == 3.0 for c in counts)
    assert reads == []                      # no count read back from the device


def test_a_count_set_between_steps_is_continued(cuda, monkeypatch):
    model, _, x, y, loss = _twins("mlp")
    got, step, _ = _compiled_steps(model, loss, x, y, cuda, steps=2)
    opt = step.optimizer
    for p in got.parameters():
        opt.state[p]["step"].fill_(10.0)        # as load_state_dict would set it
    xs, ys = ember.tensor(x).to(cuda), ember.tensor(y).to(cuda)
    step(xs, ys)
    assert all(opt.state[p]["step"].item() == 11.0 for p in got.parameters())
