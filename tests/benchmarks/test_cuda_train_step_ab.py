"""benchmarks/cuda_train_step_ab.py without a GPU: the arms run interleaved round by
round, each under its own environment, and the table takes each arm's medians (the step
processes stand in here; nothing is timed)."""
from __future__ import annotations

import json

from benchmarks import cuda_train_step_ab as ab


def test_arms_interleave_and_medians_come_from_their_own_runs(monkeypatch, tmp_path, capsys):
    calls = []
    times = {"a": iter([3.0, 1.0, 2.0]), "b": iter([5.0, 7.0, 6.0])}

    def fake(env, step_args):
        name = env["ARM"]
        calls.append(name)
        assert step_args == ["--model", "small_cnn"]
        return {"GPU": "NVIDIA H100 80GB HBM3", "ember_compiled_ms": next(times[name]),
                "torch_eager_ms": 4.0}
    monkeypatch.setattr(ab, "run_arm", fake)
    out = tmp_path / "ab.json"
    assert ab.main(["--rounds", "3", "--arm", "a=ARM=a", "--arm", "b=ARM=b,X=1",
                    "--out", str(out), "--", "--model", "small_cnn"]) == 0
    assert calls == ["a", "b"] * 3
    table = json.loads(out.read_text())["arms"]
    assert table["a"]["ember_compiled_ms"] == 2.0 and table["b"]["ember_compiled_ms"] == 6.0
    assert table["b"]["env"] == {"ARM": "b", "X": "1"}
    assert "2.000" in capsys.readouterr().out


def test_default_arms_switch_the_kernel_choices():
    assert ab.ARMS["old"] == {"EMBER_WGRAD_NCHW": "always", "EMBER_SPLIT_FINAL_FORWARD": "1"}
    assert ab.ARMS["new"] == {} and "resnet18" in ab.STEP_ARGS
