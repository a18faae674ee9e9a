"""examples/least_squares_fit.py: gradients through ember.linalg.solve/cholesky train the
features, and the held-out error of the closed-form readout falls by 10x."""
from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "least_squares_fit.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("least_squares_fit", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_least_squares_fit_learns_features():
    losses = _load_example().main(["--steps", "40"])["losses"]
    assert losses[-1] < losses[0] / 10, losses
    assert all(b < a * 1.5 for a, b in zip(losses, losses[1:])), "loss jumped"
