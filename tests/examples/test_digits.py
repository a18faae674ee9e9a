"""examples/digits_cnn.py, shortened: trains, beats chance by far, save/reload is exact."""
from __future__ import annotations

import pytest

pytest.importorskip("sklearn")

from tests.examples.example_loader import load_example  # noqa: E402


@pytest.mark.slow
def test_digits_cnn_short_run(tmp_path):
    digits = load_example("digits_cnn")
    out = digits.main(["--epochs", "2", "--no-progress",
                       "--weights", str(tmp_path / "w.safetensors")])
    assert (tmp_path / "w.safetensors").stat().st_size > 0
    assert out["same_predictions"]
    assert (out["before"] == out["after"]).all()
    assert out["accuracy"] > 0.6, out["accuracy"]          # chance is 0.1
    assert out["compiled_agreement"] == 1.0 and out["compiled_max_diff"] < 1e-4
