"""examples/least_squares_fit.py: gradients through ember.linalg.solve/cholesky train the
features, and the held-out error of the closed-form readout falls by 10x."""
from __future__ import annotations

from tests.examples.example_loader import load_example


def test_least_squares_fit_learns_features():
    losses = load_example("least_squares_fit").main(["--steps", "40"])["losses"]
    assert losses[-1] < losses[0] / 10, losses
    assert all(b < a * 1.5 for a, b in zip(losses, losses[1:])), "loss jumped"
