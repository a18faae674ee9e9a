"""Inside a compiled CUDA step, gathers (embedding, index_select, torch.gather) check their
index range on the device instead of reading the index back: the step replays as one CUDA
graph, and a bad index raises PyTorch's IndexError at the next read from the device (as
PyTorch's device-side asserts surface at a later synchronization), after which the plan
keeps working. Eager CUDA ops still raise at once.
In CI under TRITON_INTERPRET=1 (tests/cuda/emulation.py); on a GPU via run_on_gpu.sh."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import torch  # noqa: E402

import ember  # noqa: E402

from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture

F = ember.nn.functional


def _torch(fn, *arrays):
    return fn(*[torch.from_numpy(a) for a in arrays]).numpy()


def test_compiled_embedding_replays_and_raises_at_the_next_read(device):  # noqa: F811
    rng = np.random.default_rng(0)
    w = rng.standard_normal((10, 4)).astype(np.float32)
    fast = ember.compile(lambda w, i: F.embedding(i, w) * 2.0, backend="triton")
    wd = ember.tensor(w).to(device)
    for k in range(3):
        i = rng.integers(0, 10, (3, 5))
        got = fast(wd, ember.tensor(i).to(device)).cpu().numpy()
        np.testing.assert_allclose(got, _torch(lambda w, i: torch.nn.functional.embedding(i, w)
                                               * 2.0, w, i), rtol=1e-6)
    assert fast.last[0].graph is not None            # the range check did not read back
    bad = ember.tensor(np.array([[1, 12, 3]])).to(device)
    out = fast(wd, bad)                               # queued: nothing read yet
    with pytest.raises(IndexError, match="index 12 for a dim of size 10"):
        out.cpu()
    i = rng.integers(0, 10, (3, 5))                   # the flag was cleared: works again
    np.testing.assert_allclose(fast(wd, ember.tensor(i).to(device)).cpu().numpy(),
                               _torch(lambda w, i: torch.nn.functional.embedding(i, w) * 2.0,
                                      w, i), rtol=1e-6)


def test_compiled_gather_and_index_select_check_negative_indices(device):  # noqa: F811
    x = np.arange(24, dtype=np.float32).reshape(4, 6)
    sel = ember.compile(lambda x, i: ember.index_select(x, 1, i) + 1.0, backend="triton")
    gat = ember.compile(lambda x, i: ember.gather(x, 0, i) + 1.0, backend="triton")
    xd = ember.tensor(x).to(device)
    good = np.array([5, 0, 2])
    np.testing.assert_array_equal(sel(xd, ember.tensor(good).to(device)).cpu().numpy(),
                                  x[:, good] + 1)
    g = np.array([[3, 0, 1, 2, 0, 1]])
    np.testing.assert_array_equal(gat(xd, ember.tensor(g).to(device)).cpu().numpy(),
                                  np.take_along_axis(x, g, 0) + 1)
    with pytest.raises(IndexError, match="index -1 for a dim of size 6"):
        sel(xd, ember.tensor(np.array([0, -1])).to(device)).cpu()
    with pytest.raises(IndexError, match="index 4 for a dim of size 4"):
        gat(xd, ember.tensor(np.array([[4, 0, 0, 0, 0, 0]])).to(device)).sum().item()


def test_eager_cuda_embedding_still_raises_at_once(device):  # noqa: F811
    w = ember.randn(10, 4).to(device)
    with pytest.raises(IndexError, match="index out of range in self"):
        F.embedding(ember.tensor([[0, 10]]).to(device), w)



def test_flags_made_in_a_first_calls_dry_run_are_dropped(device, monkeypatch):  # noqa: F811
    """A plan's first call dry-runs its eager steps to compile their kernels, skipping
    memsets: a range-check flag created there held stale bytes, and on an H100 the next
    read raised a bogus IndexError (index 4575657222473777152...). The dry run now
    leaves no flag behind; the real call makes one, zeroed."""
    from ember.compiler.compile_cuda import prefetch_eager_kernels
    from ember.frontend import eager_cuda_training as T
    w = ember.tensor(np.ones((10, 4), np.float32)).to(device)
    i = ember.tensor(np.array([[1, 2, 3]])).to(device)
    fast = ember.compile(lambda w, i: F.embedding(i, w) * 2.0, backend="triton")
    fast(w, i).cpu()
    plan = fast.last[0]
    T._INDEX_FLAGS.clear()
    made = []
    check = T._checked_on_device
    monkeypatch.setattr(T, "_checked_on_device",
                        lambda *a: made.append(check(*a)) or made[-1])
    prefetch_eager_kernels(plan, [w, i], 0, compile=lambda found: None)
    assert made and T._INDEX_FLAGS == {}          # the dry run checked, and left no flag
    np.testing.assert_array_equal(fast(w, i).cpu().numpy(), np.full((1, 3, 4), 2.0))
