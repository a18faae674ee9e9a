"""How many compile workers a cold CUDA compile starts: the CPUs the process may run on,
capped by its cgroup's CPU quota (v1 and v2 layouts, built here as directory trees)."""
import os

import pytest

from ember.codegen.triton import device_compile


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_v2_quota_of_own_group(tmp_path):
    _write(tmp_path / "proc", "0::/\n")
    _write(tmp_path / "cg" / "cpu.max", "400000 100000\n")
    assert device_compile.cgroup_cpu_quota(str(tmp_path / "proc"), str(tmp_path / "cg")) == 4.0


def test_v2_no_quota_is_none(tmp_path):
    _write(tmp_path / "proc", "0::/user.slice/app\n")
    _write(tmp_path / "cg" / "cpu.max", "max 100000\n")
    _write(tmp_path / "cg" / "user.slice" / "app" / "cpu.max", "max 100000\n")
    assert device_compile.cgroup_cpu_quota(str(tmp_path / "proc"), str(tmp_path / "cg")) is None


def test_v2_tightest_ancestor_wins(tmp_path):
    _write(tmp_path / "proc", "0::/kubepods/pod1/ctr\n")
    _write(tmp_path / "cg" / "kubepods" / "pod1" / "cpu.max", "250000 100000\n")
    _write(tmp_path / "cg" / "kubepods" / "pod1" / "ctr" / "cpu.max", "800000 100000\n")
    quota = device_compile.cgroup_cpu_quota(str(tmp_path / "proc"), str(tmp_path / "cg"))
    assert quota == 2.5


def test_v1_cfs_quota(tmp_path):
    _write(tmp_path / "proc", "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n1:cpuset:/\n")
    group = tmp_path / "cg" / "cpu,cpuacct" / "docker" / "abc"
    _write(group / "cpu.cfs_quota_us", "600000\n")
    _write(group / "cpu.cfs_period_us", "100000\n")
    quota = device_compile.cgroup_cpu_quota(str(tmp_path / "proc"), str(tmp_path / "cg"))
    assert quota == 6.0


def test_v1_unlimited_and_unreadable(tmp_path):
    _write(tmp_path / "proc", "2:cpu,cpuacct:/\n")
    _write(tmp_path / "cg" / "cpu" / "cpu.cfs_quota_us", "-1\n")
    _write(tmp_path / "cg" / "cpu" / "cpu.cfs_period_us", "100000\n")
    assert device_compile.cgroup_cpu_quota(str(tmp_path / "proc"), str(tmp_path / "cg")) is None
    assert device_compile.cgroup_cpu_quota(str(tmp_path / "missing"), str(tmp_path)) is None


@pytest.mark.parametrize("quota, expected", [(None, 16), (4.0, 4), (2.5, 3), (0.5, 1),
                                             (32.0, 16)])
def test_workers_capped_by_quota(monkeypatch, quota, expected):
    monkeypatch.delenv("EMBER_COMPILE_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    monkeypatch.setattr(device_compile, "cgroup_cpu_quota", lambda: quota)
    device_compile.usable_cpus.cache_clear()
    try:
        assert device_compile.default_workers() == expected
        assert "affinity 16" in device_compile.usable_cpus()[1]
        monkeypatch.setenv("EMBER_COMPILE_WORKERS", "5")
        assert device_compile.default_workers() == 5       # the variable wins
    finally:
        device_compile.usable_cpus.cache_clear()


def test_workers_keep_only_binaries_in_tritons_cache():
    """A compile worker sets Triton's store_binary_only (ember keeps the cubins itself),
    unless TRITON_STORE_BINARY_ONLY is in the environment."""
    knobs = pytest.importorskip("triton").knobs
    with knobs.compilation.scope():             # restores the knobs and their variables
        os.environ.pop("TRITON_STORE_BINARY_ONLY", None)
        knobs.compilation.__dict__.pop("store_binary_only", None)
        device_compile._binaries_only()
        assert knobs.compilation.store_binary_only is True
        os.environ["TRITON_STORE_BINARY_ONLY"] = "0"
        knobs.compilation.__dict__.pop("store_binary_only", None)
        device_compile._binaries_only()
        assert knobs.compilation.store_binary_only is False
