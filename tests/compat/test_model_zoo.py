"""tools/model_zoo.py's stages on a representative pair of models (the full sweep over
torchvision's model zoo and the timm sample is the tool's job, minutes long): eager
forward, ember.fx.symbolic_trace, ember.compile and float64 gradients against torch."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
if importlib.util.find_spec("torchvision") is None:
    pytest.skip("torchvision is not installed", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import model_zoo  # noqa: E402

MODELS = ["tv:shufflenet_v2_x0_5"]           # channel shuffle, depthwise convs, chunk/cat
if importlib.util.find_spec("timm") is not None:
    MODELS.append("timm:levit_128s")         # attention biases indexed by position, BN on tokens


@pytest.mark.parametrize("key", MODELS)
def test_model_passes_every_stage_against_torch(key):
    record = model_zoo.run_one(key, model_zoo.STAGES[1:], stage_timeout=300, verbose=False)
    assert set(record["stages"].values()) <= {"pass", "n/a"}, record.get("errors")
    assert record["stages"]["eager"] == "pass" and record["stages"]["compile"] == "pass"
