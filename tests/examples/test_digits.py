"""examples/digits_cnn.py, shortened: trains, beats chance by far, save/reload is exact."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits_cnn.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("digits_cnn", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_digits_cnn_short_run(tmp_path):
    digits = _load_example()
    out = digits.main(["--epochs", "2", "--no-progress",
                       "--weights", str(tmp_path / "w.safetensors")])
    assert (tmp_path / "w.safetensors").stat().st_size > 0
    assert out["same_predictions"]
    assert (out["before"] == out["after"]).all()
    assert out["accuracy"] > 0.6, out["accuracy"]          # chance is 0.1
    assert out["compiled_agreement"] == 1.0 and out["compiled_max_diff"] < 1e-4
