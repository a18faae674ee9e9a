"""Fit a spectral convolution layer with gradients flowing through ember.fft.

A 1-D spectral layer filters a signal in the frequency domain:

    y = irfft(rfft(x) * W, n)        W: complex64[n // 2 + 1], one weight per frequency

which is a circular convolution with the kernel irfft(W). We draw a random target
kernel h, make (x, h (*) x) pairs, and learn W with ember.optim.Adam until the layer
reproduces the target filter. The exact answer is W* = rfft(h), so the script also
reports how far the learned weights are from it.

    python examples/spectral_fit.py [--steps 300] [--lr 0.05] [--n 64]
"""
from __future__ import annotations

import argparse

import numpy as np

import ember
import ember.fft as efft
import ember.nn as nn


class SpectralConv1d(nn.Module):
    """Circular convolution of the last dim, parametrized by complex frequency weights.

    The weights are kept as real and imaginary parts: ember.optim.Adam does not yet treat
    a complex parameter as a pair of reals (as torch's view_as_real does)."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.weight_real = nn.Parameter(ember.zeros(n // 2 + 1))
        self.weight_imag = nn.Parameter(ember.zeros(n // 2 + 1))

    @property
    def weight(self):
        return self.weight_real + self.weight_imag * 1j

    def forward(self, x):
        return efft.irfft(efft.rfft(x) * self.weight, n=self.n)


def make_data(rng, n: int, batch: int):
    """Random signals and their circular convolution with a smooth random kernel."""
    kernel = rng.standard_normal(n) * np.exp(-np.arange(n) / 6.0)
    x = rng.standard_normal((batch, n))
    y = np.fft.irfft(np.fft.rfft(x) * np.fft.rfft(kernel), n=n)
    return (ember.tensor(x.astype(np.float32)), ember.tensor(y.astype(np.float32)),
            np.fft.rfft(kernel))


def train(steps: int = 300, lr: float = 0.05, n: int = 64, batch: int = 32, seed: int = 0,
          log_every: int = 50) -> dict:
    rng = np.random.default_rng(seed)
    x, y, exact = make_data(rng, n, batch)
    layer = SpectralConv1d(n)
    opt = ember.optim.Adam(layer.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        opt.zero_grad()
        loss = ((layer(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
        if log_every and (step % log_every == 0 or step == steps - 1):
            print(f"step {step:4d}  mse {losses[-1]:.3e}")
    learned = layer.weight.detach().numpy()
    weight_error = float(np.abs(learned - exact).max() / np.abs(exact).max())
    return {"losses": losses, "weight_error": weight_error}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--n", type=int, default=64)
    args = parser.parse_args(argv)
    out = train(args.steps, args.lr, args.n)
    print(f"first mse {out['losses'][0]:.3e} -> final mse {out['losses'][-1]:.3e}; "
          f"max |W - rfft(h)| / max |rfft(h)| = {out['weight_error']:.2e}")
    return out


if __name__ == "__main__":
    main()
