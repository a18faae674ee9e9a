"""examples/spectral_fit.py: Adam fits frequency weights through ember.fft's gradients."""
from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "spectral_fit.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("spectral_fit", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_spectral_fit_learns_the_target_filter():
    out = _load_example().train(steps=120, n=32, batch=16, log_every=0)
    losses = out["losses"]
    assert losses[0] > 0.1, losses[0]                    # the zero filter is far off
    assert losses[-1] < 1e-4 * losses[0], (losses[0], losses[-1])
    assert out["weight_error"] < 1e-2, out["weight_error"]   # W -> rfft(target kernel)
