"""examples/digits_augment.py, shortened: the compiled augmentation equals eager and the
classifier trained through it beats chance by far."""
from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from tests.examples.example_loader import load_example  # noqa: E402


@pytest.mark.slow
def test_digits_augment_short_run():
    out = load_example("digits_augment").main(["--epochs", "2"])
    assert out["compiled_diff"] < 1e-5
    assert out["accuracy"] > 0.6, out["accuracy"]          # chance is 0.1
