"""Generated kernels -> cubins for a GPU: one at a time, cached on disk, or many in parallel.

Cold compile is Triton's pipeline (TTIR -> TTGIR -> LLVM -> PTX -> ptxas) per kernel,
around a second each; a plan of resnet18 has dozens. Three things make it cheaper:

- **the on-disk cubin cache**: `<cache>/cubin/k.<body and alignment hash>.sm_<arch>.t<triton
  version>.{cubin,json}` (cache.cache_dir(), i.e. EMBER_CACHE_DIR/triton), the cubin and
  the launch keys of Triton's metadata (what runtime.cuda.module.LaunchMetadata reads).
  A hit needs neither Triton's compiler nor its import; writes are atomic, so processes
  share the cache safely.
- **one compile per distinct body**: jobs are keyed by the kernel's code with its name
  left out (GeneratedKernel.body_key), so kernels that differ only in their name (one per
  graph node: a resnet18 compiled training step, batch 8 at 64x64, has 257 kernels but
  177 distinct bodies) compile once, in one batch and across processes through the
  cache; a launch finds the entry point by the name in the cubin's metadata.
- **parallel compilation**: `compile_many(jobs)` compiles the cache misses in worker
  processes (a `concurrent.futures.ProcessPoolExecutor`, kept for the process's life).
  Workers are forked: they start at once with ember and Triton already imported, and
  never re-run the user's script (a 'spawn' or 'forkserver' child imports `__main__`,
  which breaks scripts without an `if __name__ == "__main__"` guard). A forked child of
  a process holding a CUDA context must not call CUDA; the workers only run Triton's
  compiler for an explicit target (no GPU, no driver), as DataLoader workers run Python.
  `EMBER_COMPILE_WORKERS` sets the pool size (default: the usable CPU count, all of
  them: a cold resnet18 training step is ~70 CPU seconds of Triton and ptxas; 0 or 1
  compiles in this process).
- **starting early**: `start(jobs)` submits the cache misses to the pool without waiting
  (a plan's kernels as the builder generates them), and `compile_many` collects those
  futures instead of compiling again, so compiles overlap the rest of the plan's build.

With EMBER_COMPILE_TIMES set (ir/compile_times.py) the lookups, compiles, the workers'
CPU seconds and each kernel's compile CPU are reported in the first call's stage table.

The cubin is the same whichever path made it (tests/codegen/triton/
test_triton_parallel_compile.py compares them). This module is codegen: it imports no
frontend and no runtime.
"""
from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import heapq
import itertools
import json
import math
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass

from ...ir import compile_times
from .cache import cache_dir, load, write_atomic
from .source import GeneratedKernel

ALIGNMENT = 16          # bytes: pointers marked divisible by this may be loaded as vectors
# what a launch needs from Triton's CompiledKernel.metadata (LaunchMetadata.from_dict)
LAUNCH_KEYS = ("name", "num_warps", "num_stages", "num_ctas", "shared", "global_scratch_size",
               "global_scratch_align", "profile_scratch_size", "profile_scratch_align",
               "launch_cooperative_grid", "launch_pdl")


@dataclass(frozen=True, eq=False)
class CompileJob:
    """One kernel for one GPU: pointer alignment as the operands have it, sm_<arch>."""
    kernel: GeneratedKernel
    alignment: tuple[bool, ...]
    arch: int                                   # 10 * major + minor: 90 for an H100

    def key(self) -> str:
        """The compiled code's identity: kernels that differ only in their function's name
        share it (GeneratedKernel.body_key), so they compile once and share the cached
        cubin, whose metadata names the entry point the first of them was compiled as.
        Computed once per job: a batch asks each job's key ~7 times (its start, the disk
        lookup, collecting, installing)."""
        found = self.__dict__.get("_key")        # frozen: the memo bypasses __setattr__
        if found is None:
            h = hashlib.sha256(self.kernel.body_key().encode())
            h.update(repr(self.alignment).encode())
            found = self.__dict__["_key"] = f"k.{h.hexdigest()[:24]}.sm_{self.arch}"
        return found


@dataclass(frozen=True)
class DeviceBinary:
    cubin: bytes
    metadata: dict                              # LAUNCH_KEYS of Triton's metadata


# --- one kernel ---------------------------------------------------------------------------
def compile_one(job: CompileJob) -> DeviceBinary:
    """Triton's compiler in this process, for the job's explicit target (no GPU needed)."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource
    spec = job.kernel.launch
    fn = load(job.kernel)
    attrs = spec.divisibility_attrs(job.alignment)     # pointers, then the bound sizes
    source = ASTSource(fn, spec.signature(), constexprs=dict(spec.constexprs), attrs=attrs)
    compiled = triton.compile(source, target=GPUTarget("cuda", job.arch, 32),
                              options={"num_warps": spec.num_warps,
                                       "num_stages": spec.num_stages})
    meta = compiled.metadata
    meta = meta._asdict() if hasattr(meta, "_asdict") else dict(meta)
    return DeviceBinary(compiled.asm["cubin"], {k: meta[k] for k in LAUNCH_KEYS if k in meta})


@functools.lru_cache(maxsize=None)
def _triton_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("triton")
    except metadata.PackageNotFoundError:
        return "none"


def _paths(job: CompileJob):
    stem = cache_dir() / "cubin" / f"{job.key()}.t{_triton_version()}"
    return stem.with_name(stem.name + ".cubin"), stem.with_name(stem.name + ".json")


@compile_times.timed("cubin cache lookups (disk)")
def cached(job: CompileJob) -> DeviceBinary | None:
    """The job's cubin from the disk cache, or None: a missing entry silently, a damaged
    one (unreadable metadata, a cubin whose hash is not the recorded one) with a warning;
    either way the kernel is compiled again and the entry rewritten."""
    cubin_path, meta_path = _paths(job)
    try:
        meta = json.loads(meta_path.read_text())
        binary = cubin_path.read_bytes()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        return _damaged(meta_path, f"{type(err).__name__}: {err}")
    if not isinstance(meta, dict) or \
            hashlib.sha256(binary).hexdigest() != meta.pop("cubin_sha256", None):
        return _damaged(cubin_path, "its hash is not the one recorded beside it")
    return DeviceBinary(binary, meta)


def _damaged(path, why: str) -> None:
    import warnings
    warnings.warn(f"ember: ignoring a damaged entry of the Triton kernel cache ({path}: "
                  f"{why}); the kernel is compiled again", RuntimeWarning, stacklevel=3)
    return None


def store(job: CompileJob, result: DeviceBinary) -> None:
    cubin_path, meta_path = _paths(job)
    write_atomic(cubin_path, result.cubin)
    meta = dict(result.metadata, cubin_sha256=hashlib.sha256(result.cubin).hexdigest())
    write_atomic(meta_path, json.dumps(meta).encode())


def compile_cached(job: CompileJob) -> DeviceBinary:
    """From the disk cache, else compiled and stored: by a worker where the pool is open
    (its first-compile cost, ~0.5 CPU s, was paid when it started: _warm_worker), else
    here. Raises what stopped the compile."""
    workers = default_workers()
    if workers > 1 and workers in _POOLS:
        result = compile_many([job], workers)[0]
        if isinstance(result, CompileFailure):
            raise result
        return result
    found = cached(job)
    if found is None:
        with compile_times.stage("cubin compiles (this process)"):
            found = compile_one(job)
            store(job, found)
        compile_times.note("cubins compiled in this process", 1)
        compile_times.item("kernels compiled one at a time in this process", job.kernel.name, 1)
    return found


# --- many kernels ---------------------------------------------------------------------------
class CompileFailure(Exception):
    """A worker's Triton error, carried back as text (Triton's errors do not all pickle)."""


# job key -> its compile in a worker, started by `start` before compile_many collects it
_STARTED: dict[str, concurrent.futures.Future] = {}


def start(jobs: list[CompileJob], workers: int | None = None) -> int:
    """Start compiling the jobs that miss the disk cache in the worker pool now, without
    waiting (a plan's kernels as it generates them, so the compiles overlap the rest of
    its build); `compile_many` collects them. Returns how many started. Nothing starts
    where compile_many would compile in this process (`workers` <= 1)."""
    workers = default_workers() if workers is None else workers
    if workers <= 1:
        return 0
    started = 0
    for job in jobs:
        key = job.key()
        if key in _STARTED or _paths(job)[1].exists():
            continue
        _STARTED[key] = _queue(workers, job.arch).submit(job)
        _submitted(key)
        started += 1
    return started


def running(jobs: list[CompileJob]) -> int:
    """How many of `jobs` were started (`start`) and are still compiling: 0 once each is
    done, on disk, or was never started (a later compile_many then compiles it here)."""
    return sum(1 for job in jobs
               if job.key() in _STARTED and not _STARTED[job.key()].done())


class _LongestFirst:
    """The worker pool fed from a priority queue: a free worker takes the longest waiting
    compile (_expected_cost), not the first handed over. A plan's kernels are handed over
    as they are generated and its eager steps' after its dry run, and these hold its
    longest compiles (the weight-gradient GEMMs, 3-5 s each where a pointwise kernel takes
    0.1-0.5 s): in a first-in-first-out pool they waited behind every kernel handed over
    before them and ended the batch alone (resnet18's training step on 16 workers: 11.0 s
    modelled first-in-first-out, 7.8 longest-first; benchmarks/cuda_compile_model.py).
    The pool holds at most one compile per worker; each one done (a callback on the
    pool's own thread) hands the next over."""

    def __init__(self, pool: concurrent.futures.ProcessPoolExecutor, workers: int):
        self.pool, self.workers = pool, workers
        self.lock = threading.Lock()
        self.waiting: list = []                # heap of (-expected cost, order, job, future)
        self.running = 0
        self.order = itertools.count()

    def submit(self, job: CompileJob) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self.lock:
            heapq.heappush(self.waiting, (_priority(job), next(self.order), job, future))
        self._feed()
        return future

    def _feed(self) -> None:
        while True:
            with self.lock:
                if self.running >= self.workers or not self.waiting:
                    return
                _, _, job, future = heapq.heappop(self.waiting)
                self.running += 1
            try:
                inner = self.pool.submit(_compile_and_store, job)
            except Exception as err:  # noqa: BLE001 - a pool shut down or broken
                self._done(future, None, err)
                continue
            inner.add_done_callback(functools.partial(self._done, future))

    def _done(self, future, inner, error=None) -> None:
        with self.lock:
            self.running -= 1
        error = error or inner.exception()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(inner.result())
        self._feed()


_QUEUES: dict[int, _LongestFirst] = {}


def _queue(workers: int, arch: int) -> _LongestFirst:
    queue = _QUEUES.get(workers)
    if queue is None:
        queue = _QUEUES[workers] = _LongestFirst(_pool(workers, arch), workers)
    return queue


def open_early(what: str, arch: int, workers: int | None = None) -> bool:
    """Before a compile whose kernels are not known yet (a call about to be traced, its
    passes run and its plan built): open the worker pool now, so its workers' start and
    first-compile costs (_warm_worker: ~0.5-1 s each) overlap the trace and passes
    instead of the first compiles. Not when `what` (the call: its function and guard, as
    text) was compiled before over this cache (a marker written by `compiled_once`): its
    kernels are then likely on disk, and a pool would only cost forks and imports. Not
    where compiles run in this process (`workers` <= 1). Returns whether it opened one."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or workers in _POOLS or _marker(what).exists():
        return False
    _pool(workers, arch).submit(os.getpid)      # a fork pool starts every worker at once
    return True


def compiled_once(what: str) -> None:
    """Mark `what` compiled over this cache (see open_early)."""
    path = _marker(what)
    if not path.exists():
        try:
            write_atomic(path, b"")
        except OSError:
            pass                               # a read-only cache: the pool opens early


def _marker(what: str):
    return cache_dir() / "compiled" / hashlib.sha256(what.encode()).hexdigest()[:24]


def compile_many(jobs: list[CompileJob], workers: int | None = None) -> list:
    """Each job's DeviceBinary, or the CompileFailure that stopped it, in order: disk hits
    first, then the compiles `start` began, the other misses in the worker processes too
    (in this process where `workers` <= 1, or for a lone miss while no pool is open)."""
    workers = default_workers() if workers is None else workers
    found: dict = {}                       # one disk lookup per distinct compiled code
    for job in jobs:
        if job.key() not in found:
            found[job.key()] = cached(job)
    results: list = [found[job.key()] for job in jobs]
    misses: dict = {}                      # deduplicated: the first job of each key compiles
    for job, r in zip(jobs, results):
        if r is None:
            misses.setdefault(job.key(), job)
    # the misses not started join the workers' queue (longest first) before any is waited for
    others = [job for key, job in misses.items() if key not in _STARTED]
    if len(others) > 1 or (others and (workers in _POOLS or len(others) < len(misses))):
        start(others, workers)
    outcomes = _collect(misses, others)
    rest = {key: job for key, job in misses.items() if key not in outcomes}
    if rest:
        with compile_times.stage("cubin compiles (this process)"):
            here = {key: _compile_and_store(job) for key, job in rest.items()}
        _note(here, rest, "this process")
        outcomes.update(here)
    compiled = {key: outcome[0] for key, outcome in outcomes.items()}
    return [r if r is not None else _as_result(compiled[job.key()])
            for job, r in zip(jobs, results)]


def _collect(misses: dict, others: list) -> dict:
    """key -> outcome (_compile_and_store's) of each miss compiling in the workers, waited
    for; the stage timer tells those started before this batch from the `others`."""
    futures = {key: _STARTED.pop(key) for key in list(misses) if key in _STARTED}
    if not futures:
        return {}
    with compile_times.stage("cubin compiles (waiting for the workers)"):
        outcomes = {key: future.result() for key, future in futures.items()}
    joined = {job.key() for job in others}
    for size in _POOLS:
        compile_times.fact("compile workers (effective CPUs)",
                           f"{size} ({usable_cpus()[1]})")
    for where, chosen in (("workers (started early)", False), ("workers", True)):
        part = {key: value for key, value in outcomes.items() if (key in joined) == chosen}
        _note(part, misses, where)
    return outcomes


def _submitted(key: str) -> None:
    """When a compile was handed to the workers, for the stage timer's schedule: the
    call's wall clock and its main thread's CPU seconds (nothing when the timer is off)."""
    if compile_times.recording():
        _SUBMITS[key] = (time.monotonic(), time.thread_time())


# job key -> (monotonic seconds, this thread's CPU seconds) when it was handed to the workers
_SUBMITS: dict[str, tuple] = {}


def _note(outcomes: dict, jobs: dict, where: str) -> None:
    """The stage timer's figures of these compiles (compile_times: nothing when off):
    counts, CPU seconds per kernel, and each compile's schedule (submitted, began and
    ended in a worker, collected) for benchmarks/cuda_compile_model.py."""
    if not outcomes:
        return
    compile_times.note(f"cubins compiled in {where}", len(outcomes))
    compile_times.note(f"CPU seconds of compiles in {where}",
                       sum(outcome[1] for outcome in outcomes.values()))
    collected = time.monotonic(), time.thread_time()
    for key, (_, cpu, began, ended, worker) in outcomes.items():
        job = jobs[key]
        label = f"{job.kernel.name} [{_kind(job)}]"
        compile_times.item("kernel compiles (CPU s)", label, cpu)
        submit = _SUBMITS.pop(key, collected)
        compile_times.record("compile schedule", {
            "kernel": label, "key": key, "expected": list(_expected_cost(job)), "cpu": cpu,
            "where": where, "worker": worker,
            "submitted": submit[0], "submitted_cpu": submit[1], "began": began,
            "ended": ended, "collected": collected[0], "collected_cpu": collected[1]})


def _kind(job: CompileJob) -> str:
    dot = "dot" if "tl.dot" in job.kernel.source else "no dot"
    return f"{dot}, {job.kernel.launch.num_warps} warps, {job.kernel.launch.num_stages} stages"


def _expected_cost(job: CompileJob) -> tuple:
    """What orders the compiles, longest first: kernels with `tl.dot` (a GEMM/conv compiles
    3-10x longer than a pointwise or reduction kernel), among them the larger output
    tile (resnet18's convs, CPU s: BLOCK_M x BLOCK_N 128x256 2.3-5.3, 128x128 1.1-1.4,
    64x64 0.9-1.1), then the longer source."""
    kernel = job.kernel
    dot = "tl.dot" in kernel.source
    blocks = kernel.launch.constexprs
    tile = blocks.get("BLOCK_M", 0) * blocks.get("BLOCK_N", 0) if dot else 0
    return (dot, tile, len(kernel.source))


def _priority(job: CompileJob) -> tuple:
    """_expected_cost as a min-heap's key (the longest comes out first)."""
    return tuple(-value for value in _expected_cost(job))


def _compile_and_store(job: CompileJob) -> tuple:
    """Runs in a worker: (the binary or the error as text, CPU seconds it took with
    ptxas, the child process Triton runs; monotonic seconds it began and ended; the
    worker's process id and when it started and was ready: _warm_worker)."""
    began, begin = time.monotonic(), _cpu_seconds()
    try:
        result = compile_one(job)
    except Exception as err:  # noqa: BLE001 - Triton's errors have no common base
        result = f"{type(err).__name__}: {str(err)[:2000]}"
    else:
        store(job, result)
    return result, _cpu_seconds() - begin, began, time.monotonic(), (os.getpid(),) + _READY


def _cpu_seconds() -> float:
    """This process's CPU time and its reaped children's (ptxas)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _as_result(value):
    return CompileFailure(value) if isinstance(value, str) else value


def default_workers() -> int:
    """EMBER_COMPILE_WORKERS, else the CPUs this process may really use (usable_cpus)."""
    value = os.environ.get("EMBER_COMPILE_WORKERS")
    if value:
        return int(value)
    return usable_cpus()[0]


@functools.lru_cache(maxsize=None)
def usable_cpus() -> tuple[int, str]:
    """(CPUs this process can keep busy, how that was found). The CPUs it may run on
    (sched_getaffinity), capped by its cgroup's CPU quota where one is set: a container
    given 8 CPUs' worth of time on a 64-core host sees 64 CPUs in its affinity mask, and
    64 compile workers there would each get an eighth of a core, so every compile of a
    cold call, the longest included, would take 8x its CPU time."""
    usable = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    cpus = len(usable) if usable else (os.cpu_count() or 1)
    quota = cgroup_cpu_quota()
    if quota is None or quota >= cpus:
        return cpus, f"affinity {cpus}" + ("" if quota is None else f", cgroup quota {quota:g}")
    return max(1, math.ceil(quota)), f"affinity {cpus}, cgroup quota {quota:g}"


def cgroup_cpu_quota(proc_cgroup: str = "/proc/self/cgroup",
                     root: str = "/sys/fs/cgroup") -> float | None:
    """CPUs' worth of time the cgroup hierarchy of this process allows per period (the
    tightest of its own group and its ancestors'), or None where no quota is set or none
    can be read. cgroup v2: `cpu.max` ("<quota> <period>" or "max <period>"); v1: the cpu
    controller's `cpu.cfs_quota_us` (-1: none) over `cpu.cfs_period_us`."""
    try:
        lines = open(proc_cgroup).read().splitlines()
    except OSError:
        return None
    limits = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":                                  # v2: the unified hierarchy
            limits += _quotas(root, path, _v2_quota)
        elif "cpu" in controllers.split(","):                 # v1: the cpu controller's
            mount = next((os.path.join(root, name) for name in
                          (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu")
                          if os.path.isdir(os.path.join(root, name))), None)
            if mount is not None:
                limits += _quotas(mount, path, _v1_quota)
    return min(limits) if limits else None


def _quotas(mount: str, path: str, read) -> list[float]:
    """The quotas set on the group at `path` under `mount` and on its ancestors. Inside
    a container's cgroup namespace the path is "/" and the mount is its own group."""
    found = []
    parts = [x for x in path.strip("/").split("/") if x]
    for depth in range(len(parts), -1, -1):
        quota = read(os.path.join(mount, *parts[:depth]))
        if quota is not None:
            found.append(quota)
    return found


def _v2_quota(group: str) -> float | None:
    try:
        quota, period = open(os.path.join(group, "cpu.max")).read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def _v1_quota(group: str) -> float | None:
    try:
        quota = int(open(os.path.join(group, "cpu.cfs_quota_us")).read())
        period = int(open(os.path.join(group, "cpu.cfs_period_us")).read())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


_POOLS: dict[int, concurrent.futures.ProcessPoolExecutor] = {}


def _pool(workers: int, arch: int = 90) -> concurrent.futures.ProcessPoolExecutor:
    """The pool of `workers` processes, started (warming up for sm_`arch`) on first use."""
    pool = _POOLS.get(workers)
    if pool is None:
        context = multiprocessing.get_context("fork")
        pool = _POOLS[workers] = concurrent.futures.ProcessPoolExecutor(
            workers, context, initializer=_warm_worker, initargs=(arch,))
    return pool


# in a worker: monotonic seconds when it started and when _warm_worker was done
_READY: tuple = ()


def _warm_worker(arch: int) -> None:
    """A new worker makes its first compile at once, of a kernel of its own: when `start`
    opened the pool while the plan is still being built, what a process's first compile
    costs beyond the kernel's own work overlaps the build instead of delaying the worker's
    first real compile: importing Triton's compiler and code generator, hashing Triton's
    sources and library for its cache key, asking ptxas its version (~0.5 CPU s, against
    ~0.05 s for a small kernel after it). Nothing is stored in ember's cubin cache."""
    global _READY
    began = time.monotonic()
    _binaries_only()
    try:
        compile_one(CompileJob(_WARM_UP, (True, True), arch))
    except Exception:  # noqa: BLE001 - the real compiles report what is wrong
        pass
    _READY = (began, time.monotonic())


def _binaries_only() -> None:
    """In a worker, Triton's own cache keeps each compile's cubin and metadata only, not
    its source, TTIR, TTGIR, LLVM IR and PTX (TRITON_STORE_BINARY_ONLY): ember keeps the
    cubins in its own cache, and each file Triton stores is a temporary directory made,
    written, renamed and removed (~2 ms of system CPU a compile here, more wall time on a
    slow file system). A worker's compiles return the cubin only, so nothing else reads
    them; TRITON_STORE_BINARY_ONLY=0 in the environment keeps them all."""
    if os.environ.get("TRITON_STORE_BINARY_ONLY") is None:
        try:
            from triton import knobs
            knobs.compilation.store_binary_only = True
        except (ImportError, AttributeError):
            pass                        # another Triton: its own default


def _warm_up_kernel() -> GeneratedKernel:
    from .source import LaunchSpec
    name = "ember_compile_worker_warm_up"
    source = (f"@triton.jit\ndef {name}(in0_ptr, out0_ptr, XBLOCK: tl.constexpr):\n"
              "    x = tl.arange(0, XBLOCK)\n"
              "    tl.store(out0_ptr + x, tl.load(in0_ptr + x) + 1.0)\n")
    spec = LaunchSpec(name, [("in0_ptr", "*fp32"), ("out0_ptr", "*fp32")], {"XBLOCK": 128},
                      (1, 1, 1), "fixed", 4)
    return GeneratedKernel(source, spec)


_WARM_UP = _warm_up_kernel()
