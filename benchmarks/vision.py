"""Image augmentation and mel spectrograms: ember.vision / ember.audio vs torch.

    python3 benchmarks/vision.py [--quick] [--small] [--no-gpu] [--save]

Rows (issue 21):
- decode 64 JPEGs (ember.vision.io.decode_jpeg; baseline: Pillow -> torch.from_numpy,
  the same codec: torchvision has no build for this environment's torch);
- the batch-64 augmentation pipeline RandomResizedCrop(224) -> RandomHorizontalFlip ->
  ColorJitter(0.4, 0.4, 0.4, 0.1) -> ConvertImageDtype -> Normalize on uint8 images,
  per-image randomness (ember's per_sample=True); baseline: the same steps written with
  torch ops (torch.nn.functional.interpolate with antialias, torch HSV) per image;
- its deterministic tail (ConvertImageDtype + Normalize on the cropped batch) eager and
  ember.compile'd, vs torch;
- the same pipeline against torchvision.transforms.functional itself, per image (where
  torchvision is installed: it imports without its C++ extension as the tests do);
- MelSpectrogram (n_fft 400, hop 160, 80 mels) of 64 x 10 s of 16 kHz audio, ember eager
  and compiled vs torch.stft + the same filter bank.
--small shrinks everything (8 images of 64x64, 4 x 1 s of audio); --smoke is --small with
2 rounds and no torch.compile.
The "ember cuda" column times the same ember calls on the GPU (inputs already there;
the Timer's clock runs ember.cuda.synchronize() before each reading) where ember sees a
CUDA device; elsewhere the column is empty and the reason is printed and saved (--no-gpu skips it on purpose).
torch is the CPU build here, so its column is always CPU.
Outputs are checked against the baselines before anything is timed. On a machine whose
cores are shared with other work, torch's OpenMP threads spin and its times balloon
(100x); run with OMP_NUM_THREADS=1 there, or on an idle machine.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import ember  # noqa: E402
import ember.audio.transforms as AT  # noqa: E402
import ember.vision.transforms as T  # noqa: E402
from ember.vision import io as vio  # noqa: E402
from benchmarks.common import Bench, bench_args  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def _gpu_skip_reason(no_gpu: bool) -> str | None:
    """None where the GPU column can run, else why not."""
    if no_gpu:
        return "--no-gpu given"
    try:
        if ember.cuda.is_available():
            return None
    except Exception as err:      # a driver that fails to initialise counts as absent
        return f"ember.cuda.is_available() failed: {type(err).__name__}: {err}"
    return "no CUDA device visible to ember (ember.cuda.is_available() is False)"


class GpuColumnBench(Bench):
    """Bench plus an "ember_cuda" column: row(..., ember_cuda=fn) also times fn (the same
    ember call on GPU inputs), interleaved with the others; its Timer clock synchronizes
    ember's device, so the kernels are counted. Without a GPU the column stays empty,
    with the reason."""

    def __init__(self, name, args, gpu_reason):
        super().__init__(name, args)
        self.gpu_reason = gpu_reason
        if gpu_reason is not None:
            print(f"ember cuda column skipped: {gpu_reason}")
            self.skipped.append({"name": "ember cuda column", "reason": gpu_reason})

    def row(self, label, ember, ember_cuda=None, **baselines):
        if ember_cuda is not None and self.gpu_reason is None:
            baselines["ember_cuda"] = ember_cuda
        return super().row(label, ember, **baselines)

    def table(self):
        table = super().table()
        if self.gpu_reason is not None:
            table.caption = f"ember cuda: skipped ({self.gpu_reason})"
        return table


def _jpegs(n, h, w):
    """n smooth-ish random photos as JPEG bytes (Pillow, quality 90)."""
    from PIL import Image
    rng = np.random.default_rng(0)
    out = []
    yy, xx = np.mgrid[0:h, 0:w]
    for _ in range(n):
        base = np.stack([np.sin(xx / rng.uniform(5, 40) + c) for c in range(3)], -1)
        img = ((base * 0.5 + 0.5) * 200 + rng.integers(0, 55, (h, w, 3))).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


# --- the torch baseline, step for step ---------------------------------------------------
def _t_blend(a, b, r):
    return (r * a + (1 - r) * b).clamp(0, 1)


def _t_gray(x):
    return (0.2989 * x[0] + 0.587 * x[1] + 0.114 * x[2]).unsqueeze(0)


def _t_hue(x, shift):
    r, g, b = x.unbind(0)
    maxc, minc = x.amax(0), x.amin(0)
    eq = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(eq, ones, maxc)
    crd = torch.where(eq, ones, cr)
    rc, gc, bc = (maxc - r) / crd, (maxc - g) / crd, (maxc - b) / crd
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0 + shift + 1.0, 1.0)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = torch.remainder(i, 6.0)
    p = (maxc * (1 - s)).clamp(0, 1)
    q = (maxc * (1 - s * f)).clamp(0, 1)
    t = (maxc * (1 - s * (1 - f))).clamp(0, 1)
    table = [(maxc, t, p), (q, maxc, p), (p, maxc, t), (p, q, maxc), (t, p, maxc), (maxc, p, q)]
    chans = []
    for c in range(3):
        out = table[5][c]
        for k in range(4, -1, -1):
            out = torch.where(i == k, table[k][c], out)
        chans.append(out)
    return torch.stack(chans)


def torch_pipeline(images, params, size):
    """params: per image (crop, flip, order, b, c, s, h) as drawn by ember's transforms."""
    mean = torch.tensor(MEAN)[:, None, None]
    std = torch.tensor(STD)[:, None, None]
    out = []
    for img, (crop, flip, order, b, c, s, h) in zip(images, params):
        i, j, hh, ww = crop
        x = img[:, i:i + hh, j:j + ww].float()[None]
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear",
                                            antialias=True, align_corners=False)
        x = x.round().clamp(0, 255)[0] / 255.0
        if flip:
            x = x.flip(-1)
        for k in order:
            if k == 0:
                x = _t_blend(x, torch.zeros_like(x), b)
            elif k == 1:
                x = _t_blend(x, _t_gray(x).mean(), c)
            elif k == 2:
                x = _t_blend(x, _t_gray(x), s)
            else:
                x = _t_hue(x, h)
        out.append((x - mean) / std)
    return torch.stack(out)


def _torchvision():
    """torchvision.transforms.functional, or None (imported as the tests do, without its
    C++ extension, which the transforms do not need)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    try:
        from domain_oracles import import_torchvision
        tv = import_torchvision()
    except Exception:       # a broken install: the row is skipped, with the reason
        return None
    finally:
        sys.path.pop(0)
    if tv is None:
        return None
    import torchvision.transforms.functional as TVF
    return TVF


def torchvision_pipeline(TVF, images, params, size):
    """The same per-image steps with torchvision.transforms.functional (v1, tensors)."""
    adjust = [TVF.adjust_brightness, TVF.adjust_contrast, TVF.adjust_saturation,
              TVF.adjust_hue]
    out = []
    for img, (crop, flip, order, b, c, s, h) in zip(images, params):
        x = TVF.resized_crop(img, *crop, [size, size], antialias=True)
        if flip:
            x = TVF.hflip(x)
        x = TVF.convert_image_dtype(x, torch.float32)
        factors = (b, c, s, h)
        for k in order:
            x = adjust[k](x, factors[k])
        out.append(TVF.normalize(x, MEAN, STD))
    return torch.stack(out)


# --- ember ----------------------------------------------------------------------------
def ember_pipeline(size, seed=0):
    g = ember.Generator().manual_seed(seed)
    return T.Compose([
        T.RandomResizedCrop(size, per_sample=True, generator=g),
        T.RandomHorizontalFlip(per_sample=True, generator=g),
        T.ConvertImageDtype(ember.float32),
        T.ColorJitter(0.4, 0.4, 0.4, 0.1, per_sample=True, generator=g),
        T.Normalize(MEAN, STD)])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--small", action="store_true", help="small sizes (implied by --smoke)")
    p.add_argument("--no-gpu", action="store_true", help="leave the ember cuda column out")
    args = bench_args("vision", argv, p)
    args.small = args.small or args.smoke
    return args


def main(argv=None) -> None:
    own = args = parse_args(argv)
    n, hw, size = (8, (80, 96), 64) if own.small else (64, (375, 500), 224)
    n_audio, seconds = (4, 1) if own.small else (64, 10)
    gpu_reason = _gpu_skip_reason(own.no_gpu)
    gpu = gpu_reason is None
    bench = GpuColumnBench("vision", args, gpu_reason)

    jpegs = _jpegs(n, *hw)
    data = [ember.from_numpy(np.frombuffer(j, np.uint8).copy()) for j in jpegs]
    from PIL import Image

    def pil_decode():
        return [torch.from_numpy(np.asarray(Image.open(io.BytesIO(j))).copy()).permute(2, 0, 1)
                for j in jpegs]
    decoded = vio.decode_jpeg(data)
    t_images = pil_decode()
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(decoded, t_images))
    bench.row(f"decode {n} JPEGs {hw[0]}x{hw[1]}", ember=lambda: vio.decode_jpeg(data),
              torch=pil_decode,
              ember_cuda=(lambda: vio.decode_jpeg(data, device="cuda")) if gpu else None)

    # all decoded images share a size, so the batch is one tensor
    batch = ember.stack(decoded)
    batch_gpu = batch.to("cuda") if gpu else None
    check_pipeline(batch, t_images, size)
    if gpu:
        check_pipeline(batch_gpu, t_images, size)
    pipe = ember_pipeline(size)
    pipe_gpu = ember_pipeline(size)
    bench.row(f"augment batch {n}: RRC({size}) flip jitter normalize (per image)",
              ember=lambda: pipe(batch), torch=lambda: torch_pipeline(
                  t_images, _draw_like_ember(batch, size), size),
              ember_cuda=(lambda: pipe_gpu(batch_gpu)) if gpu else None)

    TVF = _torchvision()
    if TVF is None:
        print("torchvision row skipped: torchvision is not installed")
        bench.skipped.append({"name": "augment vs torchvision", "reason": "not installed"})
    else:
        params = _draw_like_ember(batch, size)
        _check_close(ember_pipeline(size)(batch).numpy(),
                     torchvision_pipeline(TVF, t_images, params, size).numpy())
        bench.row(f"augment batch {n}: the same, torch column = torchvision.transforms "
                  f"(per image)", ember=lambda: pipe(batch),
                  torch=lambda: torchvision_pipeline(
                      TVF, t_images, _draw_like_ember(batch, size), size),
                  ember_cuda=(lambda: pipe_gpu(batch_gpu)) if gpu else None)

    cropped = T.Resize((size, size))(batch)
    cropped_gpu = cropped.to("cuda") if gpu else None
    tail = ember.nn.Sequential(T.ConvertImageDtype(ember.float32), T.Normalize(MEAN, STD))
    compiled = ember.compile(tail)
    compiled_gpu = ember.compile(tail, backend="triton") if gpu else None
    np.testing.assert_allclose(compiled(cropped).numpy(), tail(cropped).numpy(), atol=1e-5)
    if gpu:
        np.testing.assert_allclose(compiled_gpu(cropped_gpu).cpu().numpy(),
                                   tail(cropped).numpy(), atol=1e-5)
    tc = torch.tensor(cropped.numpy())
    tmean, tstd = torch.tensor(MEAN)[:, None, None], torch.tensor(STD)[:, None, None]
    torch_tail = lambda: (tc.float() / 255.0 - tmean) / tstd     # noqa: E731
    bench.row(f"convert+normalize {n}x3x{size}x{size}: eager", ember=lambda: tail(cropped),
              torch=torch_tail, ember_cuda=(lambda: tail(cropped_gpu)) if gpu else None)
    bench.row(f"convert+normalize {n}x3x{size}x{size}: ember.compile",
              ember=lambda: compiled(cropped), torch=torch_tail,
              ember_cuda=(lambda: compiled_gpu(cropped_gpu)) if gpu else None)

    wave = np.random.default_rng(1).normal(size=(n_audio, 16000 * seconds)).astype(np.float32)
    mel = AT.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=80)
    mel_c = ember.compile(mel)
    ew, tw = ember.tensor(wave), torch.tensor(wave)
    fb = torch.tensor(mel.mel_scale.fb.numpy())
    win = torch.hann_window(400)

    def torch_mel():
        spec = torch.stft(tw, 400, 160, 400, win, center=True, pad_mode="reflect",
                          return_complex=True).abs().pow(2)
        return torch.matmul(spec.transpose(-1, -2), fb).transpose(-1, -2)
    ref = torch_mel().numpy()
    for fn in (mel, mel_c):
        np.testing.assert_allclose(fn(ew).numpy(), ref, rtol=1e-3, atol=1e-2)
    mel_gpu = mel_gpu_c = ew_gpu = None
    if gpu:
        mel_gpu = AT.MelSpectrogram(16000, n_fft=400, hop_length=160, n_mels=80).to("cuda")
        mel_gpu_c, ew_gpu = ember.compile(mel_gpu, backend="triton"), ew.to("cuda")
        for fn in (mel_gpu, mel_gpu_c):
            np.testing.assert_allclose(fn(ew_gpu).cpu().numpy(), ref, rtol=1e-3, atol=1e-2)
    label = f"MelSpectrogram {n_audio} x {seconds} s @16 kHz (400/160/80)"
    bench.row(f"{label}: eager", ember=lambda: mel(ew), torch=torch_mel,
              ember_cuda=(lambda: mel_gpu(ew_gpu)) if gpu else None)
    bench.row(f"{label}: ember.compile", ember=lambda: mel_c(ew), torch=torch_mel,
              ember_cuda=(lambda: mel_gpu_c(ew_gpu)) if gpu else None)
    bench.finish()


def _draw_like_ember(batch, size, seed=0):
    """The parameters ember_pipeline(seed) draws, in its order, for the torch baseline."""
    g = ember.Generator().manual_seed(seed)
    n = int(batch.shape[0])
    crops = [T.RandomResizedCrop.get_params(batch[k], (0.08, 1.0), (3 / 4, 4 / 3), g)
             for k in range(n)]
    flips = (ember.rand(n, generator=g) < 0.5).tolist()
    order = [int(v) for v in ember.randperm(4, generator=g).tolist()]
    b, c, s = (lo + (hi - lo) * ember.rand(n, generator=g).numpy()
               for lo, hi in ((0.6, 1.4), (0.6, 1.4), (0.6, 1.4)))
    h = -0.1 + 0.2 * ember.rand(n, generator=g).numpy()
    return [(crops[k], flips[k], order, float(b[k]), float(c[k]), float(s[k]), float(h[k]))
            for k in range(n)]


def check_pipeline(batch, t_images, size):
    """ember's pipeline equals the torch baseline given the same draws."""
    got = ember_pipeline(size)(batch).cpu().numpy()
    want = torch_pipeline(t_images, _draw_like_ember(batch, size), size).numpy()
    _check_close(got, want)


def _check_close(got, want):
    # uint8 rounding after resize can differ by one level at .5 ties: 1/255/std ~ 0.02,
    # which contrast and saturation factors up to 1.4 each (and the hue step) amplify:
    # at 64 x 224 x 224 a few dozen elements of ~10M reach 0.06 (checked: the resized uint8
    # crops never differ by more than one level)
    diff = np.abs(got - want)
    assert diff.max() < 0.1 and np.mean(diff > 0.02) < 1e-4, \
        (diff.max(), np.mean(diff > 0.02))


if __name__ == "__main__":
    main()
