"""examples/spectral_fit.py: Adam fits frequency weights through ember.fft's gradients."""
from __future__ import annotations

from tests.examples.example_loader import load_example


def test_spectral_fit_learns_the_target_filter():
    out = load_example("spectral_fit").train(steps=120, n=32, batch=16, log_every=0)
    losses = out["losses"]
    assert losses[0] > 0.1, losses[0]                    # the zero filter is far off
    assert losses[-1] < 1e-4 * losses[0], (losses[0], losses[-1])
    assert out["weight_error"] < 1e-2, out["weight_error"]   # W -> rfft(target kernel)
