"""ember.utils.benchmark against torch.utils.benchmark.

Layout and statistics are compared exactly on synthetic Measurements (same raw
times into both), so nothing depends on the machine's speed. Real timings are
checked on a sleep-based statement whose time has a known lower bound, and only for
structure and agreement within a generous factor: timing is never asserted tightly.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch.utils.benchmark as TB

import ember
from ember.utils import benchmark as EB


def _measurements(mod, seed: int, threads=(1, 2), envs=(None,), descs=("d1", "d2")):
    """The same random Measurements built with torch's or ember's classes."""
    state = np.random.RandomState(seed)
    out = []
    for label in ("conv", "matmul"):
        for env in envs:
            for n_threads in threads:
                for sub in ("small", "large"):
                    for desc in descs:
                        base = state.choice([3e-7, 2e-6, 5e-5, 1e-3, 0.02, 1.3])
                        spread = state.choice([0.001, 0.05, 0.3])
                        n = int(state.choice([1, 3, 7, 20]))
                        times = list(base * (1 + spread * state.rand(n)))
                        spec = mod.TaskSpec("f(x)", "pass", label=label, sub_label=sub,
                                            description=desc, num_threads=n_threads, env=env)
                        out.append(mod.Measurement(int(state.choice([1, 10])), times, spec))
    return out


OPTIONS = {"plain": (), "trim": ("trim",), "colour": ("colour",), "rowwise": ("rowwise",),
           "warnings": ("warn",), "all": ("trim", "colour", "warn")}


def _render(mod, results, options) -> str:
    compare = mod.Compare(results)
    if "trim" in options:
        compare.trim_significant_figures()
    if "colour" in options:
        compare.colorize()
    if "rowwise" in options:
        compare.colorize(rowwise=True)
    if "warn" in options:
        compare.highlight_warnings()
    return str(compare)


@pytest.mark.parametrize("layout", [{}, {"envs": ("cpu", "avx512")}, {"threads": (4,)},
                                    {"descs": ("only",)}],
                         ids=["threads", "envs", "one-thread", "one-column"])
@pytest.mark.parametrize("option", OPTIONS, ids=list(OPTIONS))
def test_compare_prints_torch_layout(option, layout):
    for seed in range(6):
        want = _render(TB, _measurements(TB, seed, **layout), OPTIONS[option])
        got = _render(EB, _measurements(EB, seed, **layout), OPTIONS[option])
        assert got == want, f"seed {seed}\n{want}\n{got}"


def test_measurement_statistics_and_repr_match_torch():
    for seed in range(40):
        want, got = _measurements(TB, seed)[0], _measurements(EB, seed)[0]
        for name in ("median", "mean", "iqr", "significant_figures", "has_warnings",
                     "number_per_run", "title", "as_row_name"):
            assert getattr(got, name) == pytest.approx(getattr(want, name)), name
        assert got.meets_confidence(0.05) == want.meets_confidence(0.05)
        assert repr(got).split("\n", 1)[1] == repr(want).split("\n", 1)[1]
    for mod in (TB, EB):   # multi-line stmt and setup headers
        spec = mod.TaskSpec("a = 1\nb = 2", "import math\nx = 3", sub_label="s")
        m = mod.Measurement(4, [1e-3, 1.2e-3, 1.1e-3, 0.9e-3], spec)
        if mod is TB:
            want = repr(m).split("\n", 1)[1]
    assert repr(m).split("\n", 1)[1] == want


def test_merge_pools_times_like_torch():
    results = {mod: _measurements(mod, 3, threads=(1,)) for mod in (TB, EB)}
    doubled = {mod: r + _measurements(mod, 4, threads=(1,)) for mod, r in results.items()}
    want = TB.Measurement.merge(doubled[TB])
    got = EB.Measurement.merge(doubled[EB])
    assert [m.number_per_run for m in got] == [m.number_per_run for m in want]
    for g, w in zip(got, want, strict=True):
        assert g.task_spec.title == w.task_spec.title
        assert g.times == pytest.approx(w.times)


def test_blocked_autorange_agrees_with_torch_on_sleep():
    """time.sleep(2 ms) takes at least 2 ms: both timers must say so, and agree."""
    kwargs = dict(stmt="time.sleep(0.002)", setup="import time", label="sleep", sub_label="2ms")
    got = EB.Timer(**kwargs, description="ember").blocked_autorange(min_run_time=0.05)
    want = TB.Timer(**kwargs, description="torch").blocked_autorange(min_run_time=0.05)
    for m in (got, want):
        assert m.median >= 0.002
        assert len(m.times) * m.number_per_run * m.mean >= 0.05 * 0.99
    # block size depends on the timer's own overhead (~1 us) relative to 2 ms: 1 or 10
    assert got.number_per_run in (1, 10) and want.number_per_run in (1, 10)
    assert 1 / 3 < got.median / want.median < 3      # generous: machine load, not a bound
    table = str(EB.Compare([got, EB.Measurement(1, want.raw_times, want.task_spec)]))
    assert "[" in table and "ember" in table and "torch" in table and "Times are in" in table


def test_timeit_and_adaptive_autorange_structure():
    x = ember.ones(64)
    m = EB.Timer("x + x", globals={"x": x}).timeit(7)
    assert m.number_per_run == 7 and len(m.raw_times) == 1 and m.median > 0
    assert repr(m).splitlines()[-1] == "  1 measurement, 7 runs , 1 thread"
    seen = []
    m = EB.Timer("x.sum()", globals={"x": x}).adaptive_autorange(
        threshold=0.5, max_run_time=0.2, callback=lambda n, t: seen.append((n, t)))
    assert len(seen) == len(m.raw_times) >= 1
    assert m.meets_confidence(0.5) or sum(m.raw_times) > 0.2


def test_num_threads_caps_ember_kernels_while_timing():
    seen = []
    before = ember.get_num_threads()
    EB.Timer("seen.append(ember.get_num_threads())", globals={"seen": seen},
             num_threads=1).timeit(3)
    assert set(seen) == {1}
    assert ember.get_num_threads() == before


def test_fuzzer_is_seeded_and_respects_constraints():
    def draw(seed):
        fuzzer = EB.Fuzzer(
            parameters=[EB.FuzzedParameter("k", 1, 64, distribution="loguniform"),
                        EB.FuzzedParameter("n", 2, 9, distribution="uniform"),
                        EB.FuzzedParameter("step", distribution={1: 0.5, 2: 0.5})],
            tensors=[EB.FuzzedTensor("x", size=("k", "n"), steps=("step", 1),
                                     probability_contiguous=0.5, max_elements=256)],
            constraints=[lambda k, n, step: k * n % 2 == 0], seed=seed)
        return list(fuzzer.take(12))
    first, again = draw(7), draw(7)
    layouts = set()
    for (tensors, props, params), (tensors2, _, params2) in zip(first, again):
        x = tensors["x"]
        assert params == params2 and np.array_equal(x.numpy(), tensors2["x"].numpy())
        assert tuple(x.shape) == (params["k"], params["n"])
        assert params["k"] * params["n"] % 2 == 0 and x.numel() <= 256
        assert props["x"]["is_contiguous"] == x.is_contiguous()
        assert props["x"]["numel"] == x.numel()
        layouts.add(x.is_contiguous())
    assert layouts == {True, False}
    with pytest.raises(ValueError, match="distribution"):
        EB.FuzzedParameter("bad", 1, 2, distribution="normal")
