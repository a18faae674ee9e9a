"""`ember tune`: times GEMM/conv register tiles for a model's products and records the
fastest per column count in the on-disk cache (codegen/llvm/tiles.py)."""
from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

import ember
from ember.cli import main
from ember.codegen.llvm import tiles
from ember.codegen.llvm.gemm import _run, gemm_kernel, tile_for
from ember.codegen.llvm.target import host_isa
from ember.runtime.threads import default_pool


def _record_in(tmp_path, monkeypatch):
    """Tuned tiles go to a file of this test (the LLVM object cache stays shared)."""
    monkeypatch.setattr(tiles, "tuned_path", lambda isa: tmp_path / f"tiles-{isa.value}.json")


def _two_tiles():
    isa = host_isa()
    return isa, list(tiles.CANDIDATES[isa][:2])


def test_every_candidate_tile_gives_the_same_bits(rng):
    """Tuning changes speed only: each element is the same FMA chain over k."""
    isa = host_isa()
    m, n, k = 37, 70, 300
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    results = []
    for tile in tiles.CANDIDATES[isa]:
        out = np.empty((m, n), np.float32)
        _run(gemm_kernel(isa, *tile), a, b, out, m, n, k, False, default_pool(), None)
        results.append(out)
    for out in results[1:]:
        np.testing.assert_array_equal(out, results[0])
    np.testing.assert_allclose(results[0], a @ b, rtol=1e-4, atol=1e-4)


def test_tune_a_model_records_tiles(tmp_path, monkeypatch):
    _record_in(tmp_path, monkeypatch)
    isa, candidates = _two_tiles()
    spec = ",".join(f"{mr}x{nr}" for mr, nr in candidates)
    result = CliRunner().invoke(main, ["tune", "ember.models:mlp", "--input", "x:2x784",
                                       "--tiles", spec, "--repeats", "1"])
    assert result.exit_code == 0, result.output
    record = json.loads(tiles.tuned_path(isa).read_text())
    assert record["format"] == tiles.FORMAT
    assert set(record["tiles"]) == {"256", "128", "10"}         # the MLP's three products
    for n, tile in record["tiles"].items():
        assert tuple(tile) in candidates
        assert tile_for(isa, int(n)) == tuple(tile)             # compile and packaging read it
    assert "tuned tiles" in result.output


def test_tune_an_artifact_and_results_stay_equal(tmp_path, monkeypatch, rng):
    _record_in(tmp_path, monkeypatch)
    isa, candidates = _two_tiles()
    model = ember.models.mlp(in_features=12, hidden=(20,), num_classes=3, seed=1).eval()
    x = ember.tensor(rng.standard_normal((4, 12), dtype=np.float32))
    path = tmp_path / "m.ember"
    ember.aot.compile_and_package(ember.export(model, (x,)), path)
    before = ember.aot.load_package(path)(x).numpy()
    result = CliRunner().invoke(main, ["tune", str(path), "--tiles", f"{candidates[-1][0]}x"
                                       f"{candidates[-1][1]}", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    assert tile_for(isa, 20) == candidates[-1]
    ember.aot.compile_and_package(ember.export(model, (x,)), tmp_path / "tuned.ember")
    np.testing.assert_array_equal(ember.aot.load_package(tmp_path / "tuned.ember")(x).numpy(),
                                  before)


def test_bad_tiles_exit_with_one_line(tmp_path, monkeypatch):
    _record_in(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["tune", "ember.models:mlp", "--input", "x:2x784",
                                       "--tiles", "5x7"])
    assert result.exit_code == 1
    assert "--tiles: 5x7 does not fit" in result.output
