"""AOT int8 artifacts on AMX hosts: each conv step takes the kernel eager mode takes for its
shape (AMX tiles or VNNI, codegen/qgemm_choice.py), decided at packaging on the packaging
host, so one artifact may link both; results stay the eager model's bit for bit. The
choice is made deterministic here by replacing the timing with a rule."""
from __future__ import annotations

import numpy as np
import pytest

import ember
from ember.codegen import qgemm_choice as QC
from ember.codegen import quantized as CQ
from tests.quant.test_qcompile import converted

pytestmark = [pytest.mark.filterwarnings("ignore"),
              pytest.mark.skipif(CQ.gemm_config() is None or CQ.gemm_config().name != "amx",
                                 reason="AMX tiles are not usable here")]


def _by_rule(description, runs):
    """VNNI for the residual-add convs, AMX tiles for the others (a rule, not a timing)."""
    return "vnni" if " add True " in description else "amx"


def _package(model, x, path):
    with ember.no_grad():
        run = ember.aot.load_package(
            ember.aot.compile_and_package(ember.export(model, (x,)), path))
    return run, [d for d in run.lite.plan["steps"] if d.get("gemm") == "conv"]


def test_conv_steps_take_the_per_shape_choice_and_stay_exact(rng, tmp_path, monkeypatch):
    monkeypatch.setattr(QC, "choose", _by_rule)
    model, x = converted("resnetish", rng)
    run, convs = _package(model, x, tmp_path / "q.ember")
    chosen = {("residual" in d, d["config"].split("_")[0]) for d in convs}
    assert chosen == {(True, "vnni"), (False, "amx")}, chosen
    for d in convs:         # the VNNI steps: the tile for their channels, padding in kernel
        if d["config"] != "amx":
            assert d["symbol"].endswith("qgemm_u8_add") and d.get("pad") == "kernel"
    need = set(run.manifest["target"]["required_features"])
    assert {"avx512_vnni", "amx_int8", "amx_tile"} <= need
    with ember.no_grad():
        for _ in range(2):
            np.testing.assert_array_equal(run(x).numpy(), model(x).numpy())
            x = ember.tensor(rng.standard_normal(tuple(x.shape)).astype(np.float32))


@pytest.mark.parametrize("forced", ["amx", "every conv on vnni"])
def test_forced_or_unanimous_choice(rng, tmp_path, monkeypatch, forced):
    """EMBER_QGEMM=amx packages every conv on AMX tiles (no timing, the artifacts before
    the per-shape choice); where every shape chose VNNI no conv step is on AMX tiles."""
    if forced == "amx":
        monkeypatch.setenv("EMBER_QGEMM", "amx")
    else:
        monkeypatch.setattr(QC, "choose", lambda description, runs: "vnni")
    model, x = converted("resnetish", rng)
    run, convs = _package(model, x, tmp_path / "q.ember")
    configs = {d["config"] for d in convs}
    assert configs == ({"amx"} if forced == "amx" else configs - {"amx"}) and configs
    with ember.no_grad():
        np.testing.assert_array_equal(run(x).numpy(), model(x).numpy())


def test_amx_artifact_on_a_cpu_without_amx_is_refused_with_advice(rng, tmp_path):
    """Loading checks the CPU flags before any code runs: an artifact with AMX steps on a
    VNNI-only CPU is refused, saying how to package one for it (EMBER_QGEMM=vnni, which
    ember.aot honours: no AMX step, no AMX flag required)."""
    from ember.runtime import lite
    model, x = converted("mlp", rng)
    with ember.no_grad():
        path = ember.aot.compile_and_package(ember.export(model, (x,)), tmp_path / "a.ember")
    run = ember.aot.load_package(path)
    vnni_only = lite.host_cpu_flags() - {"amx_int8", "amx_tile", "amx_bf16"}
    with pytest.raises(ember.ArtifactError, match="lacks .*amx.*EMBER_QGEMM=vnni"):
        lite.check_cpu(run.manifest, path, vnni_only)
