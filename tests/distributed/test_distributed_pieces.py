"""Single-process tests of ember.distributed's pieces: no MPI job is started."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.utils.data.distributed as torch_dist_data

import ember
import ember.distributed as dist
from ember.distributed import run
from ember.distributed.errors import DistBackendError
from ember.distributed.reducer import assign_buckets
from ember.distributed.work import Requests, ThreadOp, Work
from ember.futures import Future


@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (2, 4, False),
                                                   (9, 3, True)])
def test_sampler_shards_match_torch_without_shuffle(n, replicas, drop_last):
    data = list(range(n))
    for rank in range(replicas):
        ours = dist.DistributedSampler(data, replicas, rank, shuffle=False, drop_last=drop_last)
        theirs = torch_dist_data.DistributedSampler(data, replicas, rank, shuffle=False,
                                                    drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_sampler_shuffle_depends_on_epoch_and_covers_the_data():
    shards = [dist.DistributedSampler(range(11), 2, r, seed=4) for r in range(2)]
    first = [list(s) for s in shards]
    for s in shards:
        s.set_epoch(1)
    second = [list(s) for s in shards]
    assert first != second
    assert set(first[0] + first[1]) == set(range(11))


@pytest.mark.parametrize("n,seed", [(1, 0), (2, 9), (11, 4), (1000, 7), (37, 2**33 + 5)])
def test_sampler_shuffle_is_torchs_randperm(n, seed):
    """torch.randperm from a seeded CPU generator (the sampler's order): mt19937 draws."""
    from ember.distributed.sampler import torch_randperm
    g = torch.Generator()
    g.manual_seed(seed)
    assert torch_randperm(n, seed) == torch.randperm(n, generator=g).tolist()
    for rank in range(3):
        ours = dist.DistributedSampler(range(n), 3, rank, seed=seed)
        theirs = torch_dist_data.DistributedSampler(range(n), 3, rank, seed=seed)
        ours.set_epoch(2)
        theirs.set_epoch(2)
        assert list(ours) == list(theirs)


def test_backend_names_and_argument_errors():
    assert dist.Backend("GLOO") == dist.Backend.GLOO == "gloo" and dist.is_gloo_available()
    from ember.distributed.errors import DistArgumentError
    # PyTorch raises these from C++ (RuntimeError) or Python (ValueError): both catch it
    assert issubclass(DistArgumentError, RuntimeError) and issubclass(DistArgumentError,
                                                                      ValueError)


def test_join_refuses_what_is_not_joinable():
    from ember.distributed.algorithms import Join
    with pytest.raises(TypeError, match="Linear is not a Joinable"):
        Join([ember.nn.Linear(2, 2)])
    with pytest.raises(ValueError, match="at least one joinable"):
        Join([])


def test_sampler_rejects_a_bad_rank():
    with pytest.raises(ValueError, match="Invalid rank 3"):
        dist.DistributedSampler(range(4), num_replicas=2, rank=3)


class _Engine:
    timeout_s, global_rank, broken = 0.05, 3, None

    def mark_broken(self, work):
        self.broken = work


def test_work_timeout_names_rank_and_op():
    """A collective whose peers never join (its event is never set) times out."""
    engine = _Engine()
    work = Work(engine, "ALLREDUCE", ThreadOp(), seq=7, numel_in=4, numel_out=4)
    assert not work.is_completed()
    with pytest.raises(DistBackendError, match=r"\[Rank 3\] Watchdog caught collective "
                       r"operation timeout: WorkMPI\(SeqNum=7, OpType=ALLREDUCE"):
        work.wait()
    assert engine.broken is work


def test_requests_time_out_too():
    never = Requests(["request"], test=lambda requests, statuses: False)
    work = Work(_Engine(), "RECV", never, seq=1)
    with pytest.raises(DistBackendError, match="OpType=RECV"):
        work.wait(timeout=0.02)


def test_failed_call_raises_naming_the_op():
    op = ThreadOp()
    op.error = RuntimeError("MPI_ERR_TRUNCATE: message truncated")
    op.event.set()
    work = Work(_Engine(), "BROADCAST", op, seq=2)
    with pytest.raises(DistBackendError, match="OpType=BROADCAST.*MPI_ERR_TRUNCATE"):
        work.wait()


def test_future_then_chains_and_waits_once():
    calls = []
    fut = Future(waiter=lambda: calls.append(1) or 5)
    doubled = fut.then(lambda f: f.value() * 2)
    assert doubled.wait() == 10 and fut.value() == 5 and calls == [1]
    done = Future()
    done.set_result(3)
    assert done.then(lambda f: f.value() + 1).wait() == 4


def test_buckets_respect_caps_dtypes_and_reverse_order():
    params = [ember.zeros(100), ember.zeros(100), ember.zeros(10, dtype=ember.float64),
              ember.zeros(300)]
    buckets = assign_buckets(params, cap_bytes=800, first_cap_bytes=1200)
    # filled from the last: p3 fills the first float32 bucket (1200 B cap), p2 is
    # float64, then p1 + p0 share the next float32 bucket (800 B cap), kept in model
    # order inside it as PyTorch lays out a bucket
    assert [[id(p) for p in b] for b in buckets] == \
        [[id(params[3])], [id(params[2])], [id(params[0]), id(params[1])]]


def test_launcher_command_has_torchrun_environment_and_abort_on_error(monkeypatch):
    monkeypatch.setattr(run, "_is_open_mpi", lambda mpirun: True)
    args = run._parser().parse_args(["--nproc-per-node", "3", "--master-port", "1234",
                                     "train.py", "--lr", "0.1"])
    env = run._job_environment(args)
    cmd = run.build_command(args, "/x/mpirun", env)
    assert cmd[:3] == ["/x/mpirun", "-n", "3"] and "--oversubscribe" in cmd
    assert env["MASTER_PORT"] == "1234" and "MASTER_PORT" in cmd
    assert cmd[-7:] == ["-m", "mpi4py", "-m", "ember.distributed._worker", "train.py",
                        "--lr", "0.1"]


def test_launcher_refuses_nodes_without_hostfile(monkeypatch):
    monkeypatch.setattr(run, "_is_open_mpi", lambda mpirun: True)
    args = run._parser().parse_args(["--nnodes", "2", "train.py"])
    with pytest.raises(SystemExit, match="--hostfile"):
        run.build_command(args, "/x/mpirun", {})


def test_queries_before_init_raise_like_torch():
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="Default process group has not been initialized"):
        dist.get_rank()


def test_unknown_backend_is_refused():
    with pytest.raises(ValueError, match="Invalid backend"):
        dist.c10d._check_backend("carrier-pigeon")
    with pytest.raises(dist.DistError, match="not available"):
        dist.c10d._check_backend("cpu:carrier-pigeon")
    assert dist.c10d._check_backend("nccl") == "nccl"
    assert dist.c10d._check_backend("cpu:gloo,cuda:nccl") == "nccl"


def test_max_restarts_reruns_a_failed_job_with_the_attempt_number(monkeypatch, capsys):
    attempts = []

    def fake_call(cmd, env):
        attempts.append(env["TORCHELASTIC_RESTART_COUNT"])
        return 1 if len(attempts) < 3 else 0

    monkeypatch.setattr(run, "_is_open_mpi", lambda mpirun: True)
    monkeypatch.setattr(run.subprocess, "call", fake_call)
    assert run.main(["--mpirun", "/x/mpirun", "--max-restarts", "5", "train.py"]) == 0
    assert attempts == ["0", "1", "2"]
    assert "restarting (4 restarts left)" in capsys.readouterr().err
    attempts.clear()
    monkeypatch.setattr(run.subprocess, "call", lambda cmd, env: attempts.append(1) or 7)
    assert run.main(["--mpirun", "/x/mpirun", "--max-restarts", "1", "train.py"]) == 7
    assert len(attempts) == 2


def test_watchdog_fires_once_an_operation_stays_running_past_its_timeout():
    import threading
    import time
    from ember.distributed.watchdog import Watchdog
    running = {"op": None}            # what the caller's thread runs: (seq, timeout) or None
    fired, done = [], threading.Event()
    dog = Watchdog(lambda: running["op"],
                   lambda seq, ran_s: (fired.append((seq, ran_s)), done.set()), 0.05)
    dog.start()
    for seq in range(1, 40):          # many quick operations, each shorter than the timeout
        running["op"] = (seq, 0.05)
        time.sleep(0.002)
        running["op"] = None
    assert not fired
    start = time.monotonic()
    running["op"] = (40, 0.05)        # this one hangs
    assert done.wait(5.0)
    took = time.monotonic() - start
    assert [seq for seq, _ in fired] == [40] and fired[0][1] >= 0.05
    assert took >= 0.05               # never early
    dog.stop()


def test_watchdog_samples_faster_for_a_shorter_timeout_and_spares_a_call_that_returned():
    import threading
    import time
    from ember.distributed.watchdog import Watchdog
    verdicts, fired = [], threading.Event()

    def on_timeout(seq, ran_s):
        verdicts.append(seq)
        if seq == 1:                  # it had just returned, and the next op started
            running["op"] = (2, 0.05)
            return False              # the watchdog keeps watching
        fired.set()
        return None

    running = {"op": (1, 0.05)}
    dog = Watchdog(lambda: running["op"], on_timeout, 1000.0)   # would sample every 60 s
    dog.expect(0.05)                                            # now every 5 ms
    assert fired.wait(5.0) and verdicts == [1, 2]
    dog.stop()


def test_launcher_ulfm_flag_turns_on_open_mpis_fault_tolerance(monkeypatch):
    monkeypatch.setattr(run, "_is_open_mpi", lambda mpirun: True)
    args = run._parser().parse_args(["--ulfm", "--nproc-per-node", "3", "train.py"])
    cmd = run.build_command(args, "/x/mpirun", run._job_environment(args))
    assert cmd[3:5] == ["--with-ft", "ulfm"]
    monkeypatch.setattr(run, "_is_open_mpi", lambda mpirun: False)
    with pytest.raises(SystemExit, match="--ulfm needs Open MPI"):
        run.build_command(args, "/x/mpiexec", {})


def test_shrink_group_checks_ranks_to_exclude_like_torch():
    check = dist.c10d._check_ranks_to_exclude
    assert check([3, 1], 4) == [1, 3]
    for ranks, message in (([], "cannot be empty"), ([1, 1], "has duplicates"),
                           ([4], r"ranks \[4\] are outside the group of size 4"),
                           ([0, 1], "cannot exclude every rank")):
        with pytest.raises(ValueError, match=message):
            check(ranks, 4 if ranks != [0, 1] else 2)


class _FakeComm:
    """The communicator calls the blocking all_reduce path makes (2 ranks, no MPI)."""

    def __init__(self, fail: bool = False):
        self.fail, self.calls = fail, 0

    def Get_rank(self):
        return 0

    def Get_size(self):
        return 2

    def Allreduce(self, sendbuf, recvbuf, op=None):
        self.calls += 1
        if self.fail:
            raise RuntimeError("MPI_ERR_OTHER: known error not in list")
        if isinstance(recvbuf, tuple):    # the direct path's (buffer, count, datatype)
            from mpi4py.util import dtlib
            recvbuf = np.frombuffer(recvbuf[0], dtlib.to_numpy_dtype(recvbuf[2]))
        recvbuf *= 2                      # what a SUM over two equal ranks gives


def test_blocking_all_reduce_runs_in_place_and_names_the_op_when_mpi_fails():
    from ember.distributed.mpi_engine import MPIEngine
    engine = MPIEngine(_FakeComm(), [0, 1], 60.0, global_rank=5)
    t = ember.ones(4)
    version = t._version
    engine.allreduce_now(t, dist.ReduceOp.AVG)          # (1 + 1) / 2
    assert t.numpy().tolist() == [1.0] * 4 and t._version == version + 1
    engine.allreduce_now(t, dist.ReduceOp.SUM)
    assert t.numpy().tolist() == [2.0] * 4 and engine.comm.calls == 2
    broken = MPIEngine(_FakeComm(fail=True), [0, 1], 60.0, global_rank=5)
    with pytest.raises(DistBackendError, match=r"\[Rank 5\] WorkMPI\(SeqNum=1, "
                       r"OpType=ALLREDUCE, NumelIn=4.*failed: RuntimeError: MPI_ERR_OTHER"):
        broken.allreduce_now(ember.ones(4), dist.ReduceOp.SUM)
    with pytest.raises(DistBackendError, match="unusable after an earlier operation"):
        broken.allreduce_now(ember.ones(4), dist.ReduceOp.SUM)


def test_a_hung_blocking_call_is_reported_as_its_operation():
    """The engine's verdict names the op its caller's thread runs: a direct all-reduce
    (which makes no Work) becomes a WorkMPI line only when it times out."""
    from ember.distributed import mpi_engine
    engine = mpi_engine.MPIEngine(_FakeComm(), [0, 1], 60.0, global_rank=5)
    engine._watchdog.stop()
    reports = []
    saved = mpi_engine.report_and_abort
    mpi_engine.report_and_abort = lambda message, abort: reports.append(message)
    try:
        assert engine._probe_running() is None
        assert engine._blocking_call_timed_out(3, 61.0) is False    # returned meanwhile
        engine._seq, engine._running = 3, ember.ones(6)
        assert engine._probe_running() == (3, 60.0)
        engine._blocking_call_timed_out(3, 61.0)
    finally:
        mpi_engine.report_and_abort = saved
    assert "[Rank 5] Watchdog caught collective operation timeout: WorkMPI(SeqNum=3, " \
        "OpType=ALLREDUCE, NumelIn=6, NumelOut=6, Timeout(ms)=60000) ran for 61000 " \
        "milliseconds" in reports[0]
    assert "unusable" in str(pytest.raises(DistBackendError,
                                           engine.allreduce_now, ember.ones(2),
                                           dist.ReduceOp.SUM).value)


def test_direct_all_reduce_of_the_default_group_and_its_fallbacks(monkeypatch):
    """dist.all_reduce's direct path calls MPI in place on the tensor's own array; a
    strided, bool or bfloat16 tensor, another op or async_op take the general path."""
    from ember.distributed import c10d
    from ember.distributed.mpi_engine import MPIEngine
    comm = _FakeComm()
    engine = MPIEngine(comm, [0, 1], 60.0, global_rank=0)
    engine._watchdog.stop()
    monkeypatch.setattr(c10d._State, "default", c10d.ProcessGroup(engine, "mpi", "fake"))
    monkeypatch.setattr(c10d._State, "direct", engine)
    t = ember.arange(6, dtype=ember.float32)
    array, version = t._array, t._version
    dist.all_reduce(t)
    assert t._array is array and t._version == version + 1 and engine._running is None
    assert t.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0] and engine._seq == 1
    assert engine._direct_ref() is array                 # its spec is kept for next time
    dist.all_reduce(t)
    assert t.tolist() == [0.0, 4.0, 8.0, 12.0, 16.0, 20.0] and engine._seq == 2
    strided = ember.ones(4, 4)[:, ::2]
    for x, direct in ((strided, False), (ember.ones(3, dtype=ember.bfloat16), False),
                      (ember.ones(3, dtype=ember.bool), False), (ember.ones(0), False),
                      (ember.ones(3, dtype=ember.int64), True)):
        assert (engine.direct_spec(x._array) is not None) is direct
    del array
    t = ember.arange(6, dtype=ember.float32)     # a new array: checked and cached anew
    dist.all_reduce(strided)                         # staged: copied back into the view
    assert strided.tolist() == [[2.0, 2.0]] * 4
    dist.all_reduce(t, op=dist.ReduceOp.AVG)       # (x + x) / 2 through the general path
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] and comm.calls == 4
    comm.fail = True
    with pytest.raises(DistBackendError, match=r"\[Rank 0\] WorkMPI\(SeqNum=5, "
                       r"OpType=ALLREDUCE, NumelIn=6.*failed: RuntimeError: MPI_ERR_OTHER"):
        dist.all_reduce(t)
    assert engine._running is None
    with pytest.raises(DistBackendError, match="unusable after an earlier operation"):
        dist.all_reduce(t)


def test_future_then_runs_when_the_future_completes_like_torch():
    import torch.futures
    for F in (Future, torch.futures.Future):
        seen = []
        fut = F()
        chained = fut.then(lambda f: seen.append(f.value()) or f.value() + 1)
        assert seen == [] and not chained.done()
        fut.set_result(3)
        assert seen == [3] and chained.done() and chained.wait() == 4   # ran eagerly, once
        assert seen == [3]
        failing = F()
        out = failing.then(lambda f: f.value())
        failing.set_exception(ValueError("boom"))
        with pytest.raises(Exception, match="boom"):    # torch wraps it in a RuntimeError
            out.wait()


class _Bucket:
    """A GradBucket of one flat tensor holding a 16x6 and a 3x16 matrix and a bias."""

    def __init__(self, flat):
        self.flat = flat
        self.grads = [flat[0:96].reshape(16, 6), flat[96:144].reshape(3, 16), flat[144:147]]

    def buffer(self):
        return self.flat

    def gradients(self):
        return list(self.grads)

    def index(self):
        return 0

    def is_last(self):
        return True


def test_powerSGD_on_tensors_matches_the_numpy_path(monkeypatch):
    """The device path (what CUDA buckets run, here on CPU tensors) computes what the
    numpy path computes: the same P, Q, error feedback and warm start, over 3 steps of
    a 1-process group (the all-reduces are monkeypatched to a group of one)."""
    from ember.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powerSGD

    def all_reduce(tensor, op=None, group=None, async_op=False):
        work = Work(_Engine(), "ALLREDUCE", None, seq=0)     # complete at once
        return work if async_op else None

    monkeypatch.setattr(powerSGD.c10d, "all_reduce", all_reduce)
    monkeypatch.setattr(powerSGD.c10d, "get_world_size", lambda group=None: 1)
    states = [powerSGD.PowerSGDState(None, matrix_approximation_rank=2, start_powerSGD_iter=2,
                                     random_seed=3) for _ in range(2)]
    for s in states:
        s.iter = 2
    rng = np.random.default_rng(0)
    for step in range(3):
        grads = rng.standard_normal(147).astype(np.float32)
        numpy_out = powerSGD.powerSGD_hook(states[0], _Bucket(ember.tensor(grads))).wait()
        tensor_out = powerSGD._powerSGD_on_tensors(states[1], _Bucket(ember.tensor(grads)))
        tensor_out = tensor_out.wait()
        np.testing.assert_allclose(tensor_out.numpy(), numpy_out.numpy(), rtol=1e-5,
                                   atol=1e-5)
        assert not np.allclose(numpy_out.numpy()[:96], grads[:96])    # rank 2: compressed
        np.testing.assert_allclose(numpy_out.numpy()[144:], grads[144:])  # bias: as it is
    np.testing.assert_allclose(states[1].error_dict[0].numpy(), states[0].error_dict[0],
                               rtol=1e-5, atol=1e-5)
    assert states[0].compression_stats() == states[1].compression_stats()
