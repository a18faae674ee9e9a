"""Train a small CNN on scikit-learn's digits through a compiled augmentation pipeline.

    pip install -e '.[examples]'
    python3 examples/digits_augment.py              # a few epochs, ~95% test accuracy
    python3 examples/digits_augment.py --epochs 2

The 8x8 digits are stored as uint8 CxHxW images, as ember.vision.io would decode them.
Each training batch goes through one ember.compile'd module: uint8 -> float
(ConvertImageDtype), Resize to 16x16 (antialiased bilinear), a random affine warp
(rotation, scale, shift: F.affine_grid + F.grid_sample), random brightness and contrast,
and Normalize. The randomness is drawn per image by ember's generator on the host and
passed in as tensors (the warp matrices and jitter factors), so one compiled plan serves
every batch: nothing random is baked into the trace. Test images take the deterministic
path (identity warp, factors 1) through the same compiled module.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import ember
import ember.nn as nn
import ember.nn.functional as F
import ember.optim as optim
import ember.vision.transforms as T
import ember.vision.transforms.functional as VF

SIZE = 16
MEAN, STD = [0.3], [0.35]


class Augment(nn.Module):
    """uint8 (N, 1, 8, 8) + per-image warps and factors -> normalized float (N, 1, 16, 16)."""

    def __init__(self):
        super().__init__()
        self.to_float = T.ConvertImageDtype(ember.float32)
        self.resize = T.Resize((SIZE, SIZE), antialias=True)
        self.normalize = T.Normalize(MEAN, STD)

    def forward(self, images, theta, brightness, contrast):
        x = self.resize(self.to_float(images))
        grid = F.affine_grid(theta, [int(x.shape[0]), 1, SIZE, SIZE], align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        x = VF.adjust_brightness(x, brightness)        # [N] factor tensors: one per image
        x = VF.adjust_contrast(x, contrast)
        return self.normalize(x)


def random_params(n, gen, degrees=12.0, scale=(0.9, 1.1), shift=0.1, jitter=0.3):
    """Per-image affine matrices (output -> input, normalized coords) and jitter factors."""
    def uniform(lo, hi):
        return lo + (hi - lo) * ember.rand(n, generator=gen).numpy().astype(np.float64)
    angle = np.radians(uniform(-degrees, degrees))
    s = uniform(*scale)
    tx, ty = uniform(-shift, shift), uniform(-shift, shift)
    theta = np.zeros((n, 2, 3), np.float32)
    theta[:, 0, 0], theta[:, 0, 1] = np.cos(angle) / s, -np.sin(angle) / s
    theta[:, 1, 0], theta[:, 1, 1] = np.sin(angle) / s, np.cos(angle) / s
    theta[:, 0, 2], theta[:, 1, 2] = tx, ty
    return (ember.tensor(theta), ember.tensor(uniform(1 - jitter, 1 + jitter).astype(np.float32)),
            ember.tensor(uniform(1 - jitter, 1 + jitter).astype(np.float32)))


def identity_params(n):
    theta = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (n, 1, 1))
    ones = ember.ones(n)
    return ember.tensor(theta), ones, ones


def make_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10))


def load_data(seed):
    digits = load_digits()
    images = np.round(digits.images * 255.0 / 16.0).astype(np.uint8)[:, None]
    return train_test_split(images, digits.target.astype(np.int64), test_size=0.2,
                            random_state=seed, stratify=digits.target)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    ember.manual_seed(args.seed)
    gen = ember.Generator().manual_seed(args.seed)
    x_train, x_test, y_train, y_test = load_data(args.seed)
    augment = Augment()
    compiled = ember.compile(augment)

    # the compiled pipeline equals the eager one on a random batch
    sample = ember.tensor(x_train[:args.batch_size])
    params = random_params(args.batch_size, gen)
    diff = float((compiled(sample, *params) - augment(sample, *params)).abs().max())
    print(f"compiled vs eager augmentation, max |diff| = {diff:.1e}")

    model = make_model()
    opt = optim.Adam(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    aug_s = 0.0
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(x_train))
        total, steps = 0.0, 0
        for i in range(0, len(order) - args.batch_size + 1, args.batch_size):
            idx = order[i:i + args.batch_size]
            t0 = time.perf_counter()
            batch = compiled(ember.tensor(x_train[idx]), *random_params(len(idx), gen))
            aug_s += time.perf_counter() - t0
            loss = F.cross_entropy(model(batch), ember.tensor(y_train[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total / steps:.4f}")
    train_s = time.perf_counter() - start

    model.eval()
    preds = []
    with ember.no_grad():
        for i in range(0, len(x_test), args.batch_size):
            chunk = x_test[i:i + args.batch_size]
            # a full-size batch reuses the compiled plan; the last, smaller one runs eagerly
            fn = compiled if len(chunk) == args.batch_size else augment
            x = fn(ember.tensor(chunk), *identity_params(len(chunk)))
            preds.append(model(x).argmax(1).numpy())
    acc = float((np.concatenate(preds) == y_test).mean())
    print(f"training {train_s:.1f} s ({aug_s:.1f} s in the compiled augmentation); "
          f"test accuracy {acc * 100:.2f}%")
    return {"accuracy": acc, "compiled_diff": diff, "train_s": train_s}


if __name__ == "__main__":
    main()
