"""GEMM block configurations: documented defaults without a GPU, the fastest candidate kept
on disk per problem and device (the timing function is the caller's; here a stand-in)."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import triton_device  # noqa: E402,F401  (TRITON_INTERPRET before anything imports triton)

import pytest  # noqa: E402

from ember.codegen.triton import autotune  # noqa: E402
from ember.codegen.triton.gemm import GemmConfig, MatmulProblem  # noqa: E402
from ember.ir.dtypes import float16  # noqa: E402


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))


def test_defaults_follow_the_problem_size():
    big = autotune.default_config(MatmulProblem.create(4096, 4096, 4096))
    assert (big.block_m, big.block_n, big.block_k, big.num_warps) == (128, 256, 32, 8)
    small = autotune.default_config(MatmulProblem.create(8, 10, 784))
    assert (small.block_m, small.block_n, small.num_warps) == (16, 16, 4)
    half = autotune.default_config(MatmulProblem.create(100, 128, 512, dtype=float16))
    assert (half.block_m, half.block_n, half.block_k) == (128, 128, 64)


def test_without_a_gpu_nothing_is_timed():
    problem = MatmulProblem.create(300, 200, 64)
    assert autotune.current_device() == autotune.CPU_DEVICE
    assert autotune.gemm_config(problem) == autotune.default_config(problem)


def test_tuned_config_is_stored_per_problem_and_device():
    problem = MatmulProblem.create(512, 512, 512, b_layout="kmajor")
    timed = []

    def bench(config: GemmConfig) -> float:       # stand-in timing: smaller tiles "faster"
        timed.append(config)
        if config.block_m == 256:
            raise RuntimeError("out of shared memory")
        return config.block_m * config.block_n / 1e4 + config.num_stages * 1e-3

    best = autotune.autotune_gemm(problem, bench, "gpu-a")
    runnable = [c for c in timed if c.block_m != 256]
    assert best == min(runnable, key=bench)
    assert autotune.default_config(problem) in timed
    assert autotune.gemm_config(problem, "gpu-a") == best
    assert autotune.gemm_config(problem, "gpu-b") == autotune.default_config(problem)
    other = MatmulProblem.create(512, 512, 512, b_layout="row")
    assert autotune.gemm_config(other, "gpu-a") == autotune.default_config(other)


def test_damaged_entry_is_a_miss():
    problem = MatmulProblem.create(64, 64, 64)
    autotune.autotune_gemm(problem, lambda c: float(c.block_k), "gpu-a")
    path = next((Path(autotune.cache_dir()) / "autotune").glob("*.json"))
    path.write_text("{not json")
    with pytest.warns(RuntimeWarning, match="damaged autotune cache entry"):
        assert autotune.gemm_config(problem, "gpu-a") == autotune.default_config(problem)
