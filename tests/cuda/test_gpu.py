"""ember on a real NVIDIA GPU: the driver runtime, the caching allocator over cuMemAlloc,
copies, streams and events, cubin launches, and every registry op on CUDA tensors
against CPU eager. Every test is marked `cuda` (skipped with the reason where no GPU
exists). Run with tests/cuda/run_on_gpu.sh: it needs a process without TRITON_INTERPRET,
which the emulated tests set."""
import os
import warnings

import numpy as np
import pytest

import ember
from ember.frontend import eager_cuda
from ember.runtime.cuda import driver, stream as S
from ember.runtime.cuda.allocator import device_allocator

from common import check_grads_on_device, check_op_on_device, sample_cases

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") == "1",
                                 reason="TRITON_INTERPRET=1 in this process: run "
                                        "tests/cuda/run_on_gpu.sh (test_gpu.py alone)")]

GRADS = ["add", "mul", "div", "exp", "tanh", "sum", "mean", "amax", "softmax",
         "log_softmax", "layer_norm", "gelu", "select", "slice", "permute", "cat", "linear",
         "mm", "bmm", "matmul", "addmm", "conv2d", "index_select", "max_dim", "cross_entropy",
         "mse_loss", "where"]


@pytest.fixture(autouse=True)
def quiet_fallbacks():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# --- runtime -----------------------------------------------------------------------------
def test_device_queries():
    assert ember.cuda.is_available() and ember.cuda.device_count() >= 1
    major, _ = ember.cuda.get_device_capability()
    assert major >= 7 and ember.cuda.get_device_name()
    free, total = ember.cuda.mem_get_info()
    assert 0 < free <= total


def test_driver_errors_name_the_call_and_the_error():
    with pytest.raises(ember.DeviceError, match=r"cuMemFree failed: CUDA_ERROR_\w+"):
        driver.context(0)
        driver.call("cuMemFree", 8)                    # not an allocation


def test_allocator_statistics_follow_tensors():
    ember.cuda.synchronize()
    ember.cuda.empty_cache()
    allocated, reserved = ember.cuda.memory_allocated(), ember.cuda.memory_reserved()
    x = ember.empty(16 << 20, device="cuda")            # 64 MiB: its own segment
    assert ember.cuda.memory_allocated() == allocated + (64 << 20)
    assert ember.cuda.memory_reserved() == reserved + (64 << 20)
    assert ember.cuda.max_memory_allocated() >= allocated + (64 << 20)
    ptr = x.data_ptr()
    del x
    assert ember.cuda.memory_allocated() == allocated
    y = ember.empty(16 << 20, device="cuda")            # the cached block comes back
    assert y.data_ptr() == ptr and ember.cuda.memory_reserved() == reserved + (64 << 20)
    del y
    ember.cuda.empty_cache()
    assert ember.cuda.memory_reserved() == reserved
    ember.cuda.reset_peak_memory_stats()
    assert ember.cuda.max_memory_allocated() == ember.cuda.memory_allocated()
    assert ember.cuda.memory_stats()["segment.all.current"] >= 0


def test_out_of_memory_gives_the_allocator_statistics():
    total = driver.total_memory(0)
    with pytest.raises(ember.OutOfMemoryError) as info:
        ember.empty(total // 4 + (1 << 28), device="cuda")    # more bytes than the GPU has
    text = str(info.value)
    assert "CUDA out of memory. Tried to allocate" in text and "GPU 0 has a total capacity" in text
    assert "is allocated by ember" in text and "reserved by ember but unallocated" in text
    assert device_allocator(0).num_ooms >= 1
    x = ember.ones(4, device="cuda")                          # still usable afterwards
    assert x.cpu().tolist() == [1.0] * 4


def test_copies_round_trip_pageable_pinned_device_and_memset():
    rng = np.random.default_rng(0)
    host = rng.standard_normal((3, 5, 7)).astype(np.float32)
    x = ember.tensor(host).cuda()
    np.testing.assert_array_equal(x.cpu().numpy(), host)
    stream = S.current_stream(0)
    pinned = S.PinnedBuffer(host.nbytes)
    staging = pinned.array(np.float32, host.shape)
    staging[...] = host * 2
    y = ember.empty(3, 5, 7, device="cuda")
    S.copy_host_to_device(y.data_ptr(), staging, stream, pinned=True)
    back = S.PinnedBuffer(host.nbytes)
    S.copy_device_to_host(back.array(np.float32, host.shape), y.data_ptr(), stream, pinned=True)
    stream.synchronize()
    np.testing.assert_array_equal(back.array(np.float32, host.shape), host * 2)
    z = ember.empty(3, 5, 7, device="cuda")
    S.copy_device_to_device(z.data_ptr(), x.data_ptr(), host.nbytes, stream)
    np.testing.assert_array_equal(z.cpu().numpy(), host)
    S.memset(z.data_ptr(), 0, host.nbytes, stream)
    assert not z.cpu().numpy().any()


def test_streams_and_events():
    side = ember.cuda.Stream()
    start, end = ember.cuda.Event(enable_timing=True), ember.cuda.Event(enable_timing=True)
    x = ember.randn(1 << 20, device="cuda")
    side.wait_stream(ember.cuda.current_stream())
    with ember.cuda.stream(side):
        assert ember.cuda.current_stream() == side
        start.record()
        y = (x * 2 + 1).exp()
        end.record()
    assert ember.cuda.current_stream() == ember.cuda.default_stream()
    ember.cuda.current_stream().wait_event(end)
    end.synchronize()
    assert end.query() and side.query()
    elapsed = start.elapsed_time(end)
    assert np.isfinite(elapsed) and elapsed >= 0
    np.testing.assert_allclose(y.cpu().numpy(), np.exp(x.cpu().numpy() * 2 + 1), rtol=1e-5)
    with pytest.raises(ValueError, match="enable_timing"):
        ember.cuda.Event().elapsed_time(end)


def test_cubin_launch_with_more_than_48kib_of_shared_memory():
    """A GEMM tile that needs opt-in dynamic shared memory, launched from its metadata."""
    gemm = pytest.importorskip("ember.codegen.triton.gemm")
    m, n, k = 256, 256, 512
    problem = gemm.MatmulProblem.create(m, n, k)
    config = gemm.GemmConfig(block_m=128, block_n=128, block_k=64, num_warps=8, num_stages=3)
    generated = gemm.generate_gemm(problem, config)
    a, b = ember.randn(m, k, device="cuda"), ember.randn(k, n, device="cuda")
    c = ember.empty(m, n, device="cuda")
    kernel = eager_cuda.compile_kernel(generated, [True] * 3, 0)
    assert kernel.meta.shared > 48 * 1024, kernel.meta
    kernel.launch(generated.launch.grid, [a.data_ptr(), b.data_ptr(), c.data_ptr()])
    want = a.cpu().numpy().astype(np.float64) @ b.cpu().numpy().astype(np.float64)
    np.testing.assert_allclose(c.cpu().numpy(), want, rtol=1e-3, atol=1e-3)


def test_misaligned_operands_get_their_own_kernel():
    x = ember.randn(1 + 64, device="cuda")
    view = x[1:]                                         # 4-byte offset: not 16-aligned
    assert view.data_ptr() % 16 != 0
    np.testing.assert_allclose((view * 3).cpu().numpy(), x.cpu().numpy()[1:] * 3, rtol=1e-6)


# --- tensors and ops -------------------------------------------------------------------
@pytest.mark.parametrize("op, sample", sample_cases(2))
def test_every_registry_op_on_cuda_equals_cpu(op, sample):
    check_op_on_device(op, sample, "cuda")


@pytest.mark.parametrize("op, sample", sample_cases(1, GRADS))
def test_gradients_on_cuda_equal_cpu(op, sample):
    check_grads_on_device(op, sample, "cuda")


def test_mixing_devices_names_both():
    with pytest.raises(ember.DeviceError, match=r"mul: .*cpu and cuda:0"):
        ember.ones(2, device="cuda") * ember.ones(2)


def test_numpy_raises_and_printing_copies():
    x = ember.arange(3, device="cuda")
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        x.numpy()
    assert repr(x) == "tensor([0, 1, 2], device='cuda:0')"


def test_small_model_forward_and_backward_equal_cpu():
    ember.manual_seed(0)
    model = ember.nn.Sequential(ember.nn.Conv2d(3, 8, 3, padding=1), ember.nn.ReLU(),
                                ember.nn.Flatten(), ember.nn.Linear(8 * 6 * 6, 10))
    x, target = ember.randn(4, 3, 6, 6), ember.tensor([1, 0, 9, 3])
    loss = ember.nn.functional.cross_entropy(model(x), target)
    loss.backward()
    want = [p.grad.numpy().copy() for p in model.parameters()]
    model.zero_grad()
    model.cuda()
    gpu_loss = ember.nn.functional.cross_entropy(model(x.cuda()), target.cuda())
    gpu_loss.backward()
    np.testing.assert_allclose(gpu_loss.item(), loss.item(), rtol=1e-4)
    for p, w in zip(model.parameters(), want):
        np.testing.assert_allclose(p.grad.cpu().numpy(), w, rtol=1e-3, atol=1e-4)


def test_augmentation_pipeline_and_mel_spectrogram_at_benchmark_size_on_the_gpu():
    """benchmarks/vision.py's batch-64 pipeline (224 crops of 375x500 images) and a
    MelSpectrogram of 4 x 10 s on the GPU: no op on the host, the CPU's values (resize
    taps, jitter, rfft GEMM against the DFT basis), and the taps kernel compiled once per
    dtype however many crop sizes the batch draws. The pipeline is compared in its two
    stages: the uint8 crops, then the float colour jitter on the same crops. Compared
    whole, one level of a crop's rounding comes out of ColorJitter as up to ~3.5 levels
    (brightness, contrast and saturation gains of up to 1.4 each and the hue mix; measured
    on the CPU by moving 0.1% of the crops' values one level: 0.061 after Normalize)."""
    import sys
    from pathlib import Path
    import ember.audio.transforms as AT
    import ember.vision.transforms as T
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    try:
        from benchmarks.vision import MEAN, STD
    finally:
        sys.path.pop(0)

    def stages(seed=0):      # benchmarks/vision.py's ember_pipeline(224), split in two
        g = ember.Generator().manual_seed(seed)
        geometry = T.Compose([T.RandomResizedCrop(224, per_sample=True, generator=g),
                              T.RandomHorizontalFlip(per_sample=True, generator=g)])
        colour = T.Compose([T.ConvertImageDtype(ember.float32),
                            T.ColorJitter(0.4, 0.4, 0.4, 0.1, per_sample=True, generator=g),
                            T.Normalize(MEAN, STD)])
        return geometry, colour

    rng = np.random.default_rng(0)
    batch = ember.tensor(rng.integers(0, 256, (64, 3, 375, 500)).astype(np.uint8))
    wave = ember.tensor(rng.standard_normal((4, 160000)).astype(np.float32))
    mel = AT.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=80)
    geometry, colour = stages()
    crops = geometry(batch)
    want = [crops, colour(crops), mel(wave)]
    eager_cuda._WARNED.clear()
    geometry, colour = stages()          # the same draws, in the same order
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        gpu_crops = geometry(batch.cuda())
        got = [gpu_crops, colour(crops.cuda()), mel.cuda()(wave.cuda())]
    # the crops are rounded to uint8: a fused multiply-add may move a value sitting on a
    # .5 boundary by one level, never more, and rarely
    levels = np.abs(got[0].cpu().numpy().astype(np.int16) - want[0].numpy())
    assert levels.max() <= 1 and (levels > 0).mean() < 1e-3, (levels.max(), (levels > 0).mean())
    # the colour stage on identical crops: float32 arithmetic in another order
    np.testing.assert_allclose(got[1].cpu().numpy(), want[1].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[2].cpu().numpy(), want[2].numpy(), rtol=1e-3, atol=1e-3)
    names = [k.meta.name for k in eager_cuda._KERNELS.values()
             if k.meta.name.startswith("resample_")]
    assert names and all(names.count(n) <= 2 for n in names)   # aligned or not, any size
