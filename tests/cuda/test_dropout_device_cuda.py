"""Dropout's mask drawn on the (emulated) device: torch's contract (each element kept with
probability 1 - p, kept values scaled by 1 / (1 - p), the gradient through the same mask),
deterministic per seed, a new mask every call, and a compiled function with dropout
replayed as one CUDA graph that keeps drawing new masks (the generator's seed and offset
live in device memory, so no host value is baked into the graph).
In CI under TRITON_INTERPRET=1 (tests/cuda/emulation.py); on a GPU via run_on_gpu.sh."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import contextlib  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import torch  # noqa: E402

import ember  # noqa: E402
from ember.runtime.cuda import stream as S  # noqa: E402

from test_compile_cuda import EMULATED, device  # noqa: E402,F401 - the emulated/real CUDA fixture
from tests.cuda.sm90_cubins import assert_launchable, compile_for_sm90  # noqa: E402

F = ember.nn.functional


@contextlib.contextmanager
def _no_fallback():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)      # a host fallback warns
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_native_dropout_keeps_with_probability_one_minus_p(device, p):  # noqa: F811
    x = ember.randn(64, 512)
    xd = x.to(device)
    before = S.host_transfers()
    out, keep = ember.native_dropout(xd, p, True)
    assert S.host_transfers() == before              # drawn and scaled on the device
    out, keep = out.cpu().numpy(), keep.cpu().numpy()
    assert keep.dtype == np.bool_
    n = keep.size
    kept = keep.mean()
    assert abs(kept - (1 - p)) < 5 * np.sqrt(p * (1 - p) / n)   # 5 sigma of a binomial
    # torch's arithmetic on the returned mask (the oracle for the scaling)
    want = torch.native_dropout(torch.from_numpy(x.numpy()), 0.0, True)[0] * \
        torch.from_numpy(keep) / (1 - p)
    np.testing.assert_allclose(out, want.numpy(), rtol=1e-6, atol=0)


def test_mask_is_deterministic_per_seed_and_new_each_call(device):  # noqa: F811
    x = ember.ones(4096).to(device)

    def masks(seed):
        ember.manual_seed(seed)
        return [F.dropout(x, 0.5, True).cpu().numpy() != 0 for _ in range(3)]
    first, again, other = masks(7), masks(7), masks(8)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not (first[0] == first[1]).all() and not (first[1] == first[2]).all()
    assert not (first[0] == other[0]).all()
    ember.cuda.manual_seed(7)                         # the CUDA seeding functions restart it too
    np.testing.assert_array_equal(F.dropout(x, 0.5, True).cpu().numpy() != 0, first[0])


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_dropout_gradient_uses_the_forward_mask(device, dtype):  # noqa: F811
    dt = getattr(ember, dtype)
    x = ember.randn(8, 33).to(dt).to(device).requires_grad_(True)
    with _no_fallback():
        y = F.dropout(x, 0.25, True)
        y.sum().backward()
    keep = y.detach().cpu().float().numpy() != 0
    kept_x = x.detach().cpu().float().numpy() * keep
    tol = 1e-6 if dtype in ("float32", "float64") else 1e-2
    np.testing.assert_allclose(y.detach().cpu().float().numpy(), kept_x / 0.75, rtol=tol)
    grad = x.grad.cpu().float().numpy()
    np.testing.assert_allclose(grad, keep / 0.75, rtol=tol)
    assert y.dtype == dt and x.grad.dtype == dt


def test_feature_dropout_and_eval_mode(device):  # noqa: F811
    x = ember.randn(4, 6, 5, 5)
    with _no_fallback():
        y = F.dropout2d(x.to(device), 0.5, True).cpu().numpy()
    per_channel = (y != 0).reshape(4, 6, -1)
    assert (per_channel.all(-1) | ~per_channel.any(-1)).all()   # whole channels dropped
    np.testing.assert_array_equal(F.dropout(x.to(device), 0.5, False).cpu().numpy(), x.numpy())


def test_compiled_dropout_replays_as_a_graph_with_new_masks(device):  # noqa: F811
    """The first call runs step by step, later ones replay one CUDA graph: the mask still
    changes every call, and the sequence is the one eager CUDA draws for the same seed."""
    fast = ember.compile(lambda x: F.dropout(x * 2.0, 0.5, True), backend="triton")
    x = ember.ones(64, 64).to(device)
    ember.manual_seed(11)
    with _no_fallback():
        compiled = [fast(x).cpu().numpy() for _ in range(4)]
    assert fast.last[0].graph is not None
    ember.manual_seed(11)
    eager = [F.dropout(x * 2.0, 0.5, True).cpu().numpy() for _ in range(4)]
    for got, want in zip(compiled, eager):
        np.testing.assert_array_equal(got, want)
    assert len({m.tobytes() for m in compiled}) == 4
    ember.manual_seed(11)                  # reseeding restarts the sequence the graph reads
    for want in compiled[:2]:
        np.testing.assert_array_equal(fast(x).cpu().numpy(), want)
    assert fast.last[0].graph is not None


def test_device_rng_and_index_check_kernels_compile_to_sm90_cubins():
    """What CI can check of the GPU path: the kernels compile for sm_90 and take the
    arguments the launcher packs (the launch itself runs in test_gpu on a GPU)."""
    results = compile_for_sm90(
        "from ember.codegen.triton.dropout import advance_kernel, dropout_kernel\n"
        "from ember.codegen.triton.scatter import checked_index\n"
        "from ember.ir import dtypes\n",
        "dropout_kernel(1000, 0.1, dtypes.float16), advance_kernel(1000), "
        "checked_index(77, 10, dtypes.int64)", typed_flags=False)
    assert set(results) == {"dropout_float16", "philox_advance", "checked_index_int64"}
    assert_launchable(results)
