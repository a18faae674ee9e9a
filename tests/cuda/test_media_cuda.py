"""Image and audio pipelines on (emulated) CUDA run no op on the host: the ops they use
(resampling of every mode and its backward through codegen/triton/resample.py, flip,
stack, clamp, masked_fill, outer, every padding mode, gather, conv1d, the real FFT and
its inverse, complex-by-real scaling) equal the CPU, each ember.vision / ember.audio transform on a
CUDA tensor equals the CPU and raises no host-fallback warning, and so do the batch
augmentation pipeline of benchmarks/vision.py and MelSpectrogram. The hand-written
kernels also compile to cubins (no GPU needed). In CI it runs under TRITON_INTERPRET=1
(tests/cuda/emulation.py); run_on_gpu.sh runs the same tests on the GPU."""
import os

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember  # noqa: E402
import ember.audio.transforms as AT  # noqa: E402
import ember.vision.transforms as T  # noqa: E402
from ember.frontend import eager_cuda, eager_cuda_media  # noqa: E402

from common import check_grads_on_device, check_op_on_device, sample_cases  # noqa: E402
from test_compile_cuda import device  # noqa: E402,F401 - the emulated/real CUDA fixture
from test_training_cuda import _no_host_fallback  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
F = ember.nn.functional
I = T.InterpolationMode  # noqa: E741
RESAMPLE = sorted(eager_cuda_media.RESAMPLE_OPS)
OPS_NOW_ON_DEVICE = ["flip", "stack", "clamp", "masked_fill", "outer", "pad", "gather",
                     "conv1d", "fft_rfft", "fft_irfft"]


@pytest.fixture
def cuda(device):  # noqa: F811
    eager_cuda._WARNED.clear()
    yield device


def _strict(op, sample, cuda):
    """The sample on the device with host fallbacks made errors, where the sample is in the
    forms the routes take (float32 FFTs, numeric conv1d padding); others still must match."""
    values = list(sample.args) + list(sample.kwargs.values())
    loose = (op.name == "fft_rfft" and values[0].dtype != np.float32) or \
        (op.name == "fft_irfft" and values[0].dtype != np.complex64) or \
        (op.name == "conv1d" and any(isinstance(v, str) for v in values))
    with _no_host_fallback(not loose):
        check_op_on_device(op, sample, cuda)


@pytest.mark.parametrize("op, sample", sample_cases(3, RESAMPLE))
def test_resample_samples_equal_cpu_on_the_device(cuda, op, sample):
    _strict(op, sample, cuda)


@pytest.mark.parametrize("op, sample", sample_cases(2, ["_upsample_bilinear2d_aa",
                                                        "upsample_bicubic2d",
                                                        "upsample_nearest2d"]))
def test_resample_gradients_equal_cpu(cuda, op, sample):
    with _no_host_fallback():
        check_grads_on_device(op, sample, cuda)


@pytest.mark.parametrize("op, sample", sample_cases(12, OPS_NOW_ON_DEVICE))
def test_op_samples_equal_cpu_on_the_device(cuda, op, sample):
    _strict(op, sample, cuda)


def test_antialiased_uint8_resize_and_channels_last(cuda):
    rng = np.random.default_rng(0)
    x = ember.tensor(rng.random((2, 3, 23, 17)).astype(np.float32))
    for t in (x, x.contiguous(memory_format=ember.channels_last)):
        want = F.interpolate(t, size=(9, 30), mode="bilinear", antialias=True)
        with _no_host_fallback():
            got = F.interpolate(t.to(cuda), size=(9, 30), mode="bilinear", antialias=True)
        assert got.is_contiguous(memory_format=ember.channels_last) == \
            want.is_contiguous(memory_format=ember.channels_last)
        np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-5, atol=1e-6)


def test_same_size_resample_is_a_copy(cuda):
    x = ember.randn(1, 2, 5, 6).to(cuda)
    with _no_host_fallback():
        y = F.interpolate(x, size=(5, 6), mode="bilinear", antialias=True)
    assert y.untyped_storage() is not x.untyped_storage()
    np.testing.assert_array_equal(y.cpu().numpy(), x.cpu().numpy())


def test_rfft_norms_lengths_and_dims(cuda):
    x = ember.tensor(np.random.default_rng(1).standard_normal((3, 10, 4)).astype(np.float32))
    calls = [dict(), dict(n=7), dict(n=16, norm="ortho"), dict(dim=1, norm="forward"),
             dict(dim=0, n=5)]
    for kw in calls:
        want = ember.fft.rfft(x, **kw)
        with _no_host_fallback():
            got = ember.fft.rfft(x.to(cuda), **kw)
        assert got.dtype == want.dtype and tuple(got.stride()) == tuple(want.stride()), kw
        np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-4, atol=1e-4,
                                   err_msg=str(kw))


def test_irfft_norms_lengths_and_dims(cuda):
    rng = np.random.default_rng(3)
    x = ember.tensor((rng.standard_normal((3, 7, 5)) + 1j * rng.standard_normal((3, 7, 5)))
                     .astype(np.complex64))
    calls = [dict(), dict(n=8), dict(n=9, norm="ortho"), dict(dim=1, norm="forward"),
             dict(dim=0, n=3), dict(n=20)]
    for kw in calls:
        want = ember.fft.irfft(x, **kw)
        with _no_host_fallback():
            got = ember.fft.irfft(x.to(cuda), **kw)
        np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-4, atol=1e-5,
                                   err_msg=str(kw))


def _images(dtype):
    rng = np.random.default_rng(0)
    if dtype == "uint8":
        return ember.tensor(rng.integers(0, 256, (2, 3, 14, 18)).astype(np.uint8))
    return ember.tensor(rng.random((2, 3, 14, 18)).astype(np.float32))


def _wave():
    return ember.tensor(np.random.default_rng(2).standard_normal((2, 1600)).astype(np.float32))


def _g():
    return ember.Generator().manual_seed(3)


TRANSFORMS = {
    "resize_aa": (lambda: T.Resize((9, 11), antialias=True), "uint8"),
    "resize_up": (lambda: T.Resize((20, 25)), "float32"),
    "resize_nearest": (lambda: T.Resize((9, 11), interpolation=I.NEAREST), "uint8"),
    "resize_bicubic": (lambda: T.Resize((9, 11), interpolation=I.BICUBIC), "float32"),
    "center_crop": (lambda: T.CenterCrop(8), "float32"),
    "pad_reflect": (lambda: T.Pad([2, 3], padding_mode="reflect"), "float32"),
    "pad_edge": (lambda: T.Pad(2, padding_mode="edge"), "uint8"),
    "pad_symmetric": (lambda: T.Pad(2, padding_mode="symmetric"), "float32"),
    "grayscale": (lambda: T.Grayscale(3), "float32"),
    "random_resized_crop": (lambda: T.RandomResizedCrop(8, per_sample=True, generator=_g()),
                            "uint8"),
    "vflip": (lambda: T.RandomVerticalFlip(1.0), "uint8"),
    "color_jitter": (lambda: T.ColorJitter(0.4, 0.4, 0.4, 0.1, generator=_g()), "uint8"),
    "color_jitter_per_image": (lambda: T.ColorJitter(0.4, 0.4, 0.4, 0.1, per_sample=True,
                                                     generator=_g()), "float32"),
    "gaussian_blur": (lambda: T.GaussianBlur(5, generator=_g()), "float32"),
    "gaussian_blur_per_image": (lambda: T.GaussianBlur(3, per_sample=True, generator=_g()),
                                "float32"),
    "rotation": (lambda: T.RandomRotation(30, generator=_g()), "float32"),
    "rotation_bilinear_expand": (lambda: T.RandomRotation(
        30, interpolation=I.BILINEAR, expand=True, fill=0.5, generator=_g()), "float32"),
    "affine": (lambda: T.RandomAffine(20, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10,
                                      generator=_g()), "uint8"),
    "erasing": (lambda: T.RandomErasing(1.0, generator=_g()), "float32"),
    "convert_to_uint8": (lambda: T.ConvertImageDtype(ember.uint8), "float32"),
    "spectrogram": (lambda: AT.Spectrogram(128, hop_length=32), "wave"),
    "spectrogram_normalized": (lambda: AT.Spectrogram(100, hop_length=25, power=1.0,
                                                      normalized=True), "wave"),
    "mfcc": (lambda: AT.MFCC(16000, n_mfcc=13, melkwargs=dict(n_fft=256, hop_length=64,
                                                               n_mels=20)), "wave"),
    "amplitude_to_db": (lambda: AT.AmplitudeToDB(top_db=60.0), "float32"),
    "frequency_masking": (lambda: AT.FrequencyMasking(4, generator=_g()), "float32"),
    "time_masking_iid": (lambda: AT.TimeMasking(4, iid_masks=True, generator=_g()),
                         "float32"),
    "resample": (lambda: AT.Resample(16000, 8000), "wave"),
}


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_on_the_device_equals_cpu(cuda, name):
    make, kind = TRANSFORMS[name]
    x = _wave() if kind == "wave" else _images(kind)
    want = make()(x)
    with _no_host_fallback():
        got = make().to(cuda)(x.to(cuda))
    assert got.is_cuda and got.dtype == want.dtype
    np.testing.assert_allclose(got.cpu().numpy().astype(np.float64),
                               want.numpy().astype(np.float64), rtol=2e-5, atol=2e-5)


def test_augmentation_pipeline_and_mel_spectrogram_run_on_the_device(cuda):
    """benchmarks/vision.py's pipeline (per-image crops, flips and jitter) and its
    MelSpectrogram, smaller: no host fallback, the CPU's values."""
    sys.path.insert(0, str(ROOT))
    try:
        from benchmarks.vision import ember_pipeline
    finally:
        sys.path.pop(0)
    batch = ember.tensor(np.random.default_rng(4).integers(0, 256, (3, 3, 20, 24))
                         .astype(np.uint8))
    wave = _wave()
    mel = AT.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=20)
    want = [ember_pipeline(8)(batch), mel(wave)]
    with _no_host_fallback():
        got = [ember_pipeline(8)(batch.to(cuda)), mel.to(cuda)(wave.to(cuda))]
    for g, w in zip(got, want):
        assert g.is_cuda
        np.testing.assert_allclose(g.cpu().numpy(), w.numpy(), rtol=2e-5, atol=2e-5)


_CUBINS = r'''
import json
from ember.codegen.triton.resample import taps_kernel
from ember.codegen.triton.scatter import gather_along
from ember.frontend.eager_cuda import compile_triton
from ember.ir import dtypes as d
kernels = [taps_kernel(d.float32, d.float32, d.float32, 1000, False),
           taps_kernel(d.float16, d.float16, d.float32, 1000, False),
           taps_kernel(d.uint8, d.uint8, d.float32, 1000, True),
           taps_kernel(d.float64, d.float64, d.float64, 1000, False),
           gather_along((2, 3, 4), 1, (12, 4, 1), (12, 4, 1), d.float32, d.int64)]
out = {}
for k in kernels:
    compiled = compile_triton(k, [True] * len(k.launch.args), (9, 0))
    out[k.name] = compiled.asm["cubin"][:4] == b"\x7fELF"
print(json.dumps(out))
'''


def test_hand_written_kernels_compile_to_cubins():
    """What CI can check without a GPU: Triton compiles the taps and gather kernels for
    sm_90 (ptxas ships with Triton)."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    run = subprocess.run([sys.executable, "-c", _CUBINS], capture_output=True, text=True,
                         env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(results) == 5 and all(results.values()), results


def test_a_host_fallback_still_warns_naming_the_op(cuda):
    """The warning these tests turn into errors exists: a complex FFT has no CUDA route."""
    spectrum = ember.fft.rfft(ember.randn(2, 8)).to(cuda)
    with pytest.warns(UserWarning, match="fft_fft: no CUDA kernel"):
        ember.fft.fft(spectrum)
