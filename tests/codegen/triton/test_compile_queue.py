"""Cold-compile scheduling of codegen/triton/device_compile.py, without Triton or a GPU: the
worker pool is a stand-in that records what it is handed and finishes compiles when the
test says. Checked: a free worker takes the longest waiting compile (not the first handed
over); a batch's misses join the queue before any compile is waited for; a lone compile
goes to an open pool; the pool opens before a call's trace unless the call was compiled
over this cache before; the stage timer records each compile's schedule."""
import concurrent.futures
import json

import pytest

from ember.codegen.triton import device_compile as dc
from ember.codegen.triton.source import GeneratedKernel, LaunchSpec
from ember.ir import compile_times


def _job(name: str, dot: bool = False, tile: int = 0, body_lines: int = 1) -> dc.CompileJob:
    blocks = {"BLOCK_M": tile, "BLOCK_N": tile} if tile else {"XBLOCK": 64}
    params = ", ".join(f"{b}: tl.constexpr" for b in blocks)
    body = "\n".join(f"    x{i} = {i}" for i in range(body_lines))
    if dot:
        body += "\n    y = tl.dot(a, b)"
    source = f"def {name}(in0_ptr, {params}):\n{body}\n"
    spec = LaunchSpec(name, [("in0_ptr", "*fp32")], blocks, (1, 1, 1), "fixed", 4)
    return dc.CompileJob(GeneratedKernel(source, spec), (True,), 90)


class FakePool:
    """Records the jobs handed over; `finish()` completes the oldest running one."""

    def __init__(self):
        self.handed: list[str] = []
        self.running: list[tuple] = []

    def submit(self, fn, *args):
        future = concurrent.futures.Future()
        if args:                              # a compile (open_early submits a no-op)
            self.handed.append(args[0].kernel.name)
            self.running.append((args[0], future))
        else:
            future.set_result(fn())
        return future

    def finish(self):
        job, future = self.running.pop(0)
        future.set_result((dc.DeviceBinary(b"\x7fELF" + job.kernel.name.encode(),
                                           {"name": job.kernel.name}), 0.25, 1.0, 2.0, (7,)))

    def finish_all(self):
        while self.running:
            self.finish()


@pytest.fixture
def pool(monkeypatch, tmp_path):
    """A FakePool of 2 workers standing in for the process pool; an empty cubin cache."""
    monkeypatch.setenv("EMBER_CACHE_DIR", str(tmp_path))
    fake = FakePool()
    monkeypatch.setattr(dc, "_POOLS", {})
    monkeypatch.setattr(dc, "_QUEUES", {})
    monkeypatch.setattr(dc, "_STARTED", {})
    monkeypatch.setattr(dc, "_pool", lambda workers, arch=90: dc._POOLS.setdefault(workers, fake))
    return fake


def test_a_free_worker_takes_the_longest_waiting_compile(pool):
    small, long_pointwise = _job("small"), _job("long_pointwise", body_lines=40)
    gemm, big_gemm = _job("gemm", dot=True, tile=64), _job("big_gemm", dot=True, tile=128)
    first, second = _job("first", body_lines=2), _job("second", body_lines=3)
    dc.start([first, second], workers=2)                 # two workers: both run at once
    dc.start([small, long_pointwise, gemm, big_gemm], workers=2)
    assert pool.handed == ["first", "second"]            # the rest waits in the queue
    pool.finish()
    assert pool.handed[-1] == "big_gemm"                 # larger tile first
    pool.finish()
    pool.finish()
    assert pool.handed[2:] == ["big_gemm", "gemm", "long_pointwise"]
    pool.finish_all()
    assert pool.handed[-1] == "small"


def test_a_batch_joins_the_started_compiles_before_waiting(pool, monkeypatch):
    early, later = _job("early"), _job("later", dot=True, tile=128)
    dc.start([early], workers=2)
    waited = []
    original = dc._collect

    def collect(misses, others):
        waited.append(list(pool.handed))                 # what was handed over by then
        pool.finish_all()
        return original(misses, others)
    monkeypatch.setattr(dc, "_collect", collect)
    results = dc.compile_many([early, later], workers=2)
    assert waited == [["early", "later"]]
    assert [r.metadata["name"] for r in results] == ["early", "later"]


def test_a_lone_compile_goes_to_an_open_pool(pool, monkeypatch):
    monkeypatch.setenv("EMBER_COMPILE_WORKERS", "2")
    monkeypatch.setattr(dc, "compile_one", lambda job: pytest.fail("compiled in this process"))
    assert dc.open_early("call", 90)
    job = _job("lone")

    def collect(misses, others):
        pool.finish_all()
        return {key: dc._STARTED.pop(key).result() for key in misses}
    monkeypatch.setattr(dc, "_collect", collect)
    assert dc.compile_cached(job).metadata["name"] == "lone"
    assert pool.handed == ["lone"]


def test_the_pool_opens_early_once_per_call_compiled_over_the_cache(pool, monkeypatch):
    assert dc.open_early("step A", 90, workers=2)
    assert not dc.open_early("step A", 90, workers=2)    # open already
    dc.compiled_once("step A")
    monkeypatch.setattr(dc, "_POOLS", {})                # a fresh process over the cache
    assert not dc.open_early("step A", 90, workers=2)    # compiled before: likely on disk
    assert dc.open_early("step B", 90, workers=2)
    monkeypatch.setattr(dc, "_POOLS", {})
    assert not dc.open_early("step C", 90, workers=1)    # compiles run in this process


def test_the_stage_timer_records_each_compiles_schedule(pool, monkeypatch, tmp_path, capsys):
    path = tmp_path / "times.json"
    monkeypatch.setenv(compile_times.ENV, str(path))
    jobs = [_job("a"), _job("b", dot=True, tile=64)]
    with compile_times.call("demo"):
        dc.start(jobs[:1], workers=2)

        def collect(misses, others, original=dc._collect):
            pool.finish_all()
            return original(misses, others)
        monkeypatch.setattr(dc, "_collect", collect)
        dc.compile_many(jobs, workers=2)
    row = json.loads(path.read_text().splitlines()[0])
    schedule = row["records"]["compile schedule"]
    assert sorted(r["kernel"].split(" [")[0] for r in schedule) == ["a", "b"]
    assert {r["where"] for r in schedule} == {"workers (started early)", "workers"}
    for r in schedule:
        assert r["submitted_cpu"] <= r["collected_cpu"] and r["cpu"] == 0.25
    assert row["main_cpu"] >= 0 and "CPU of this thread" in capsys.readouterr().err


def test_the_stage_timer_notes_the_workers_and_their_cpus(pool, monkeypatch, tmp_path):
    path = tmp_path / "times.json"
    monkeypatch.setenv(compile_times.ENV, str(path))
    monkeypatch.setattr(dc, "usable_cpus", lambda: (2, "affinity 16, cgroup quota 2"))
    with compile_times.call("demo"):
        def collect(misses, others, original=dc._collect):
            pool.finish_all()
            return original(misses, others)
        monkeypatch.setattr(dc, "_collect", collect)
        dc.compile_many([_job("a"), _job("b", body_lines=2)], workers=2)
    row = json.loads(path.read_text().splitlines()[0])
    assert row["notes"].get("compile workers (effective CPUs)") == "2 (affinity 16, cgroup quota 2)", row["notes"]

