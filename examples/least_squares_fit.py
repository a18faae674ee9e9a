"""Learn random features whose closed-form least-squares readout fits a 1-D function.

The features are tanh(x W + b) with learned W, b. For each step the readout weights are
the ridge solution w = (F^T F + lam I)^-1 F^T y on the training points, computed with
ember.linalg.solve; the loss is the readout's error on held-out points, so gradients
flow through the solve (and through cholesky-based logdet as a small regularizer).

    python examples/least_squares_fit.py [--steps 60]
"""
from __future__ import annotations

import argparse

import numpy as np

import ember
import ember.linalg as LA


def make_data(rng, n):
    x = rng.uniform(-3, 3, size=(n, 1))
    return x, np.sin(2 * x) + 0.3 * x


class RidgeFeatures(ember.nn.Module):
    def __init__(self, width: int, lam: float = 1e-2):
        super().__init__()
        rng = np.random.default_rng(0)
        self.W = ember.nn.Parameter(ember.tensor(rng.standard_normal((1, width)) * 0.3))
        self.b = ember.nn.Parameter(ember.tensor(rng.standard_normal(width) * 0.3))
        self.lam = lam

    def features(self, x):
        return ember.tanh(x @ self.W + self.b)

    def readout(self, x, y):
        """Ridge weights: solve (F^T F + lam I) w = F^T y."""
        F = self.features(x)
        gram = F.transpose(0, 1) @ F + ember.tensor(self.lam * np.eye(F.shape[1]))
        return LA.solve(gram, F.transpose(0, 1) @ y), gram

    def forward(self, x_train, y_train, x_val):
        w, gram = self.readout(x_train, y_train)
        # a log-det barrier keeps the features from collapsing onto each other
        logdet = 2 * ember.log(ember.diagonal(LA.cholesky(gram), 0, 0, 1)).sum()
        return self.features(x_val) @ w, logdet


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--width", type=int, default=8)
    args = p.parse_args(argv)
    rng = np.random.default_rng(1)
    xt, yt = (ember.tensor(a) for a in make_data(rng, 64))
    xv, yv = (ember.tensor(a) for a in make_data(rng, 64))
    model = RidgeFeatures(args.width)
    opt = ember.optim.Adam(model.parameters(), lr=0.05)
    losses = []
    for step in range(args.steps):
        pred, logdet = model(xt, yt, xv)
        mse = ((pred - yv) ** 2).mean()
        loss = mse - 1e-4 * logdet
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(mse.item()))
        if step % 10 == 0 or step == args.steps - 1:
            print(f"step {step:3d}  validation mse {losses[-1]:.5f}")
    return {"losses": losses}


if __name__ == "__main__":
    main()
