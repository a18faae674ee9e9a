"""AMX tiles or VNNI per int8 convolution shape (codegen/qgemm_choice.py, codegen/quantized.py
conv_gemm_config): the choice is timed once per shape and kept (in the weight's cache, the
process and on disk), EMBER_QGEMM=amx skips it, and, since both kernels give the same int32
sums and the same epilogue, every conv path (the kernel choice, runners, the fused
residual add, a fused clamp, a converted model) gives the same bytes on either kernel."""
from __future__ import annotations

import json

import numpy as np
import pytest

import ember
from ember.codegen import qgemm_choice as QC
from ember.codegen import quantized as CQ
from ember.codegen.llvm import qgemm as Q
from ember.codegen.llvm import qgemm_amx as QA
from ember.ir.ops import OPS
from tests.quant.test_qconv_kernel_pad import _activation, _weight

pytestmark = pytest.mark.filterwarnings("ignore")
amx_only = pytest.mark.skipif(not QA.available() or CQ.gemm_config() is not QA.AMX,
                              reason="eager mode's GEMM here is not AMX tiles")


@pytest.fixture
def timings(monkeypatch, tmp_path):
    """The choice's timing replaced by set figures ({kernel: seconds}); records each
    timing asked for; choices kept on disk under tmp_path, none in the process."""
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("EMBER_QGEMM", raising=False)
    QC.forget()
    asked, figures = [], {"amx": 2.0, "vnni": 1.0}

    def fake(runs):
        asked.append(sorted(runs))
        return {name: figures[name] for name in runs}
    monkeypatch.setattr(QC, "time_kernels", fake)
    yield asked, figures
    QC.forget()


def _prefer(figures: dict, winner: str, cache_dir) -> None:
    """Timings that make `winner` the faster kernel, no choice kept anywhere."""
    figures.update(amx=1.0 if winner == "amx" else 2.0, vnni=2.0 if winner == "amx" else 1.0)
    QC.forget()
    for entry in (cache_dir / "qgemm").glob("*.json"):
        entry.unlink()


def test_a_choice_is_timed_once_then_read_from_the_process_and_disk(timings, tmp_path):
    asked, figures = timings
    runs = {"amx": lambda: None, "vnni": lambda: None}
    assert QC.choose("conv A", runs) == "vnni"
    assert QC.choose("conv A", runs) == "vnni" and len(asked) == 1
    QC.forget()                      # a new process: the disk entry, no timing
    figures["amx"] = 0.5
    assert QC.choose("conv A", runs) == "vnni" and len(asked) == 1
    assert QC.choose("conv B", runs) == "amx" and len(asked) == 2
    entries = [json.loads(p.read_text()) for p in (tmp_path / "qgemm").glob("*.json")]
    assert sorted(e["choice"] for e in entries) == ["amx", "vnni"]
    assert {e["conv"] for e in entries} == {"conv A", "conv B"}


def test_amx_keeps_a_near_tie(timings):
    """VNNI takes a shape from AMX tiles (the default) only at most MARGIN of their time."""
    _, figures = timings
    runs = {"amx": lambda: None, "vnni": lambda: None}
    figures.update(amx=1.0, vnni=QC.MARGIN * 1.05)
    assert QC.choose("conv tie", runs) == "amx"
    figures.update(vnni=QC.MARGIN * 0.95)
    assert QC.choose("conv clear", runs) == "vnni"


def test_a_damaged_entry_is_timed_again_with_a_warning(timings, tmp_path):
    asked, _ = timings
    runs = {"amx": lambda: None, "vnni": lambda: None}
    QC.choose("conv C", runs)
    (entry,) = (tmp_path / "qgemm").glob("*.json")
    entry.write_text("{not json")
    QC.forget()
    with pytest.warns(RuntimeWarning, match="damaged int8 kernel choice"):
        assert QC.choose("conv C", runs) == "vnni"
    assert len(asked) == 2 and json.loads(entry.read_text())["choice"] == "vnni"


def test_ember_qgemm_amx_takes_amx_untimed(timings, monkeypatch):
    asked, _ = timings
    monkeypatch.setenv("EMBER_QGEMM", "amx")
    assert QC.choose("conv D", {"amx": lambda: None, "vnni": lambda: None}) == "amx"
    assert asked == []


def test_the_real_timing_runs_every_kernel_and_gives_the_best_round():
    calls = {"amx": 0, "vnni": 0}

    def run(name):
        def go():
            calls[name] += 1
        return go
    best = QC.time_kernels({name: run(name) for name in calls})
    assert set(best) == {"amx", "vnni"} and all(0 <= t < 1 for t in best.values())
    assert calls["amx"] == calls["vnni"] >= 1 + QC.MIN_ROUNDS     # a warm call, rounds


CONVS = [  # input shape, oc, kernel, padding, stride, channels-last input
    ((3, 1, 12, 12), 16, 3, 1, 1, False),       # the digits CNN's first layer
    ((3, 16, 7, 7), 32, 3, 1, 1, True),         # its second
    ((2, 64, 9, 9), 64, 3, 1, 2, True),         # strided, 64-byte runs (AMX pads in kernel)
    ((2, 24, 5, 6), 40, 1, 0, 1, True),         # 1x1, a ragged column block
]


def _conv_args(rng, shape, oc, k, pad, stride, channels_last):
    x = _activation(rng, shape, 117, channels_last)
    return [x, _weight(rng, oc, shape[1], k, k), rng.standard_normal(oc).astype(np.float32),
            [stride, stride], [pad, pad], [1, 1], 1, 0.06, 70, True]


@amx_only
@pytest.mark.parametrize("shape, oc, k, pad, stride, channels_last", CONVS)
def test_either_kernel_gives_the_same_bytes(rng, timings, tmp_path, shape, oc, k, pad, stride,
                                            channels_last):
    """conv2d, its runner, the fused residual add and a fused clamp on AMX tiles and on
    the VNNI kernels, each chosen through conv_gemm_config: one set of integers, the
    reference's."""
    _, figures = timings
    args = _conv_args(rng, shape, oc, k, pad, stride, channels_last)
    out_shape = OPS["quantized_conv2d"].reference(*args).int_repr.shape
    other = _activation(rng, out_shape, 33, True)
    want = OPS["quantized_conv2d"].reference(*args).int_repr
    want_add = OPS["quantized_conv2d_add"].reference(*args, other, 0.08, 50, False).int_repr
    want_clamp = np.clip(want, 80, 200)
    got = {}
    for winner in ("amx", "vnni"):
        _prefer(figures, winner, tmp_path)
        cache = {}
        assert CQ.conv_gemm_config(QA.AMX, args, cache).name.startswith(winner)
        plain = CQ.kernel_for("quantized_conv2d", args, cache)()
        runner = CQ.conv_runner(args, cache)(args[0].int_repr, args[2])
        added = CQ.kernel_for("quantized_conv2d_add", args + [other, 0.08, 50, False], cache)()
        fused = CQ.conv_runner(args, cache, residual=(other, 0.08, 50, False))(
            args[0].int_repr, args[2], other.int_repr)
        clamped = CQ.kernel_for("quantized_conv2d", args, cache, clamp=(80, 200))()
        got[winner] = [plain, runner, added, fused, clamped]
        for value, ref in zip(got[winner], (want, want, want_add, want_add, want_clamp)):
            np.testing.assert_array_equal(value.int_repr, ref)
        # the loser's packed weight is not kept
        loser = Q.tile_for(Q.VNNI if winner == "amx" else QA.AMX, oc).name
        assert f"conv-{loser}" not in cache
    for a, v in zip(got["amx"], got["vnni"]):
        assert a.int_repr.tobytes() == v.int_repr.tobytes()


@amx_only
def test_a_converted_cnn_gives_the_same_bytes_on_either_choice(timings, tmp_path):
    """The digits CNN converted (prepare_fx / convert_fx), eager and through ember.compile,
    with its convs on AMX tiles and on VNNI: the same output bytes."""
    import ember.ao.quantization as eq
    import ember.ao.quantization.quantize_fx as eqfx
    asked, figures = timings
    nn = ember.nn
    outs = []
    for winner in ("amx", "vnni"):
        _prefer(figures, winner, tmp_path)
        ember.manual_seed(5)        # the same weights both times
        model = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 10)).eval()
        x = ember.tensor(np.random.default_rng(5).standard_normal((4, 1, 16, 16))
                         .astype(np.float32))
        with ember.no_grad():
            prepared = eqfx.prepare_fx(model, eq.get_default_qconfig_mapping("x86"), (x,))
            prepared(x)
            q = eqfx.convert_fx(prepared)
            eager = [q(x).numpy() for _ in range(3)]       # the full path, then runners
            compiled = ember.compile(q)(x).numpy()
        assert all(e.tobytes() == eager[0].tobytes() for e in eager + [compiled])
        outs.append(eager[0])
        assert len(asked) == 2 * len(outs)        # each conv's shape timed (once)
    assert outs[0].tobytes() == outs[1].tobytes()
