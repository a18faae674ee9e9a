"""Tensor.pin_memory() / is_pinned(), non_blocking copies from pinned memory and
DataLoader(pin_memory=True) (frontend/pinned.py), on emulated CUDA: pinned memory is host
memory there (tests/cuda/emulation.py), so what is checked is the API's semantics (which
tensors are pinned, which copies are queued without waiting, the values) against torch's
rules; the page-locking itself is cuMemHostAlloc on a GPU (test_gpu.py's PinnedBuffer)."""
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("triton")

import ember  # noqa: E402
from ember.runtime.cuda import stream as S  # noqa: E402

from emulation import emulated_cuda  # noqa: E402


@pytest.fixture
def copies():
    """Inside emulated CUDA: the `pinned` flag of every host-to-device copy, in order."""
    with emulated_cuda():
        flags = []
        emulated = S.copy_host_to_device

        def recording(dst, src, stream, pinned=False):
            flags.append(pinned)
            emulated(dst, src, stream, pinned)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(S, "copy_host_to_device", recording)
            yield flags


def test_pin_memory_copies_into_pinned_memory(copies):
    x = ember.arange(12, dtype=ember.float32).reshape(3, 4)
    assert not x.is_pinned()
    p = x.pin_memory()
    assert p.is_pinned() and not x.is_pinned() and p.device.type == "cpu"
    assert p.pin_memory() is p                     # already pinned: itself, as torch
    np.testing.assert_array_equal(p.numpy(), x.numpy())
    assert p[1:].is_pinned() and p.t().is_pinned()          # views share the pinned storage
    assert not p.clone().is_pinned()
    strided = x.t().pin_memory()
    assert strided.is_pinned() and strided.tolist() == x.t().tolist()
    empty = ember.zeros(0, 3).pin_memory()
    assert empty.is_pinned() and tuple(empty.shape) == (0, 3)


def test_cuda_tensors_are_not_pinned_and_cannot_be(copies):
    y = ember.ones(3, device="cuda")
    assert not y.is_pinned()
    with pytest.raises(RuntimeError, match="only dense CPU tensors can be pinned"):
        y.pin_memory()


def test_non_blocking_copies_from_pinned_memory_are_queued(copies):
    x = ember.randn(5, 3)
    p = x.pin_memory()
    y = p.to("cuda", non_blocking=True)
    z = p.cuda(non_blocking=True)
    w = p.to("cuda")                               # blocking: waits, as torch
    v = x.to("cuda", non_blocking=True)            # pageable: waits (always correct)
    assert copies == [True, True, False, False]
    for t in (y, z, w, v):
        assert t.is_cuda and t.cpu().tolist() == x.tolist()


def test_copy_into_a_cuda_tensor_from_pinned_memory(copies):
    x = ember.randn(4, 2)
    dst = ember.zeros(4, 2, device="cuda")
    dst.copy_(x.pin_memory(), non_blocking=True)
    assert copies[-1] is True
    assert dst.cpu().tolist() == x.tolist()


def test_pin_memory_passes_gradients(copies):
    x = ember.randn(3, requires_grad=True)
    (x.pin_memory().to("cuda", non_blocking=True) * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0, 2.0]


def test_dataloader_pins_its_batches(copies, monkeypatch):
    from ember.frontend.data import dataloader
    from ember.utils.data import DataLoader, TensorDataset
    monkeypatch.setattr(dataloader, "cuda_is_available", lambda: True)
    data = TensorDataset(ember.randn(10, 3), ember.arange(10))
    batches = list(DataLoader(data, batch_size=4, pin_memory=True))
    assert len(batches) == 3
    for xb, yb in batches:
        assert xb.is_pinned() and yb.is_pinned()
    assert batches[0][0].tolist() == data.tensors[0][:4].tolist()
    dicts = DataLoader([{"x": ember.ones(2), "name": "a"}] * 2, batch_size=2, pin_memory=True)
    batch = next(iter(dicts))
    assert batch["x"].is_pinned() and batch["name"] == ["a", "a"]
    plain = next(iter(DataLoader(data, batch_size=4)))
    assert not plain[0].is_pinned()


@pytest.mark.cuda
def test_pinned_non_blocking_round_trip_on_a_gpu():
    """On a GPU: the pinned bytes are cuMemHostAlloc memory and the queued copy lands."""
    x = ember.randn(256, 33)
    p = x.pin_memory()
    assert p.is_pinned()
    y = p.to("cuda", non_blocking=True)
    ember.cuda.current_stream().synchronize()
    assert y.cpu().tolist() == x.tolist()
    dst = ember.empty(256, 33, device="cuda")
    dst.copy_(p, non_blocking=True)
    assert dst.cpu().tolist() == x.tolist()
