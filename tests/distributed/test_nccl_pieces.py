"""The NCCL backend's parts that need no GPU: argument checks, the unique id's
rendezvous, the event watchdog, and init without a GPU. Its collectives and DDP run on
a GPU in tests/cuda/test_nccl_gpu.py."""
from __future__ import annotations

import threading
import time

import pytest

import ember
import ember.distributed as dist
from ember.distributed import nccl_engine
from ember.distributed.errors import DistError
from ember.distributed.work import Work


def test_dtypes_and_ops_map_to_ncclnumbers_and_refusals_name_the_op():
    t = ember.ones(4)
    assert nccl_engine.nccl_dtype(t, "all_reduce") == 7                 # ncclFloat32
    assert nccl_engine.nccl_dtype(ember.ones(2, dtype=ember.bfloat16), "x") == 9
    assert nccl_engine.nccl_op(dist.ReduceOp.AVG, t, "all_reduce") == 4   # ncclAvg
    with pytest.raises(DistError, match="all_reduce: Cannot use ReduceOp.BAND with NCCL"):
        nccl_engine.nccl_op(dist.ReduceOp.BAND, t, "all_reduce")
    with pytest.raises(DistError, match="reduce: ReduceOp.AVG needs a floating-point"):
        nccl_engine.nccl_op(dist.ReduceOp.AVG, ember.ones(2, dtype=ember.int64), "reduce")
    flags = ember.ones(2, dtype=ember.bool)
    assert nccl_engine.nccl_op(dist.ReduceOp.SUM, flags, "all_reduce") == 2   # or: max
    with pytest.raises(DistError, match="Cannot use ReduceOp.AVG with boolean inputs"):
        nccl_engine.nccl_op(dist.ReduceOp.AVG, flags, "all_reduce")
    with pytest.raises(DistError, match="broadcast: the nccl backend does not support "
                                        "tensors of dtype ember.int16"):
        nccl_engine.nccl_dtype(ember.ones(2, dtype=ember.int16), "broadcast")


def test_cpu_tensors_are_refused_naming_the_op():
    with pytest.raises(DistError, match="all_gather_into_tensor: the nccl backend takes "
                                        "CUDA tensors, got a tensor on cpu"):
        nccl_engine.check_cuda_tensor(ember.ones(3), "all_gather_into_tensor", 0)


def test_unique_id_goes_through_a_file_to_every_rank(tmp_path):
    url = f"file://{tmp_path / 'rendezvous'}"
    got = {}

    def rank(r):
        got[r] = nccl_engine.exchange_unique_id(r, 2, lambda: b"id-of-rank-0" * 10,
                                                init_method=url, timeout_s=10)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (1, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == {0: b"id-of-rank-0" * 10, 1: b"id-of-rank-0" * 10}


def test_unique_id_rendezvous_errors(tmp_path):
    assert nccl_engine.exchange_unique_id(0, 1, lambda: b"solo") == b"solo"
    with pytest.raises(DistError, match="rank 0 did not write the NCCL unique id"):
        nccl_engine.exchange_unique_id(1, 2, lambda: b"", init_method=f"file://{tmp_path}/x",
                                       timeout_s=0.05)
    with pytest.raises(DistError, match="exchanged over MPI"):
        nccl_engine.exchange_unique_id(1, 2, lambda: b"", init_method="env://")


class _Event:
    def __init__(self, done):
        self.done = done

    def query(self):
        return self.done


class _Engine:
    timeout_s, global_rank = 0.05, 1
    failed = None

    def mark_broken(self, work):
        pass

    def _fail(self, work, message):
        self.failed = (work, message)


def _work(engine, done, seq):
    return Work(engine, "ALLREDUCE", nccl_engine._EventPending(_Event(done)), seq=seq,
                numel_in=8, numel_out=8)


def test_event_watchdog_drops_finished_work_and_reports_a_hung_one():
    engine, fired = _Engine(), threading.Event()
    verdicts = []
    dog = nccl_engine.EventWatchdog(lambda w, s: (verdicts.append((w, s)), fired.set()),
                                    lambda: None, poll_s=0.001)
    finished, hung = _work(engine, True, 1), _work(engine, False, 2)
    dog.watch(finished)
    dog.watch(hung)
    assert fired.wait(5.0)
    assert [w for w, _ in verdicts] == [hung] and verdicts[0][1] > 0.05
    assert dog.in_flight() == 1                                # the finished one is gone
    assert "[Rank 1] Watchdog caught collective operation timeout: WorkMPI(SeqNum=2" in \
        hung.timeout_message(verdicts[0][1])
    dog.stop()


def test_event_watchdog_reports_nccl_async_errors():
    engine = _Engine()
    engine.timeout_s = 60.0
    dog = nccl_engine.EventWatchdog(lambda w, s: None, lambda: "NCCL error: remote process "
                                    "exited", poll_s=0.001)
    work = _work(engine, False, 3)
    dog.watch(work)
    deadline = time.monotonic() + 5
    while engine.failed is None and time.monotonic() < deadline:
        time.sleep(0.005)
    assert engine.failed == (work, "NCCL error: remote process exited")
    dog.stop()


def test_nccl_init_without_a_gpu_says_so(monkeypatch):
    if ember.cuda.is_available():
        pytest.skip("a GPU is present: tests/cuda/test_nccl_gpu.py covers init")
    if not dist.is_nccl_available():
        pytest.skip("nccl4py is not installed (pip install 'nccl4py[cu13]')")
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DistError, match="needs a CUDA GPU"):
        dist.init_process_group("nccl", rank=0, world_size=1)
    assert not dist.is_initialized()
    with pytest.raises(ValueError, match="needs rank and world_size"):
        dist.init_process_group("nccl", rank=2, world_size=2)


def test_split_color_and_key_keep_the_members_order():
    assert nccl_engine.split_color_key([1, 3], 3) == (0, 1)
    assert nccl_engine.split_color_key([1, 3], 1) == (0, 0)
    assert nccl_engine.split_color_key([1, 3], 2) == (nccl_engine.NCCL_SPLIT_NOCOLOR, 0)


class _SplitBindings:
    """What ncclCommSplit is called with, without a GPU."""

    def __init__(self):
        self.calls = []

    def comm_split(self, comm, color, key, config):
        self.calls.append((comm, color, key, config))
        return 0 if color == nccl_engine.NCCL_SPLIT_NOCOLOR else 4242


def _engine_without_gpu(rank, size):
    engine = object.__new__(nccl_engine.NCCLEngine)
    engine._nccl, engine.comm, engine._broken = _SplitBindings(), 7, None
    engine.rank, engine.size, engine.global_rank, engine.device_index = rank, size, rank, 0
    engine.global_ranks = list(range(size))
    return engine


def test_nccl_split_makes_a_sub_communicator_of_the_members_only(monkeypatch):
    made = []
    monkeypatch.setattr(nccl_engine.NCCLEngine, "__init__",
                        lambda self, comm, global_ranks, timeout_s, global_rank, device, *,
                        cpu_engine=None: made.append((comm, global_ranks, global_rank,
                                                      cpu_engine)))
    member = _engine_without_gpu(rank=2, size=4)
    sub = member.split([0, 2, 3], 5.0, cpu_engine="cpu")
    assert member._nccl.calls == [(7, 0, 1, 0)] and made == [(4242, [0, 2, 3], 2, "cpu")]
    assert isinstance(sub, nccl_engine.NCCLEngine)
    outsider = _engine_without_gpu(rank=1, size=4)
    assert outsider.split([0, 2, 3], 5.0) is None
    assert outsider._nccl.calls == [(7, nccl_engine.NCCL_SPLIT_NOCOLOR, 0, 0)]
    outsider._broken = "WorkNCCL(SeqNum=3, ...)"
    with pytest.raises(dist.DistBackendError, match="new_group: the nccl process group is "
                                                    "unusable"):
        outsider.split([0], 5.0)


class _NcclWorld:
    """A default nccl group's engine, as new_group sees it."""
    is_device, timeout_s, cpu_engine, rank, size = True, 30.0, None, 0, 2

    def __init__(self):
        self.splits = []

    def split(self, ranks, timeout_s, cpu_engine=None):
        self.splits.append((ranks, timeout_s, cpu_engine))
        return None if self.rank not in ranks else _NcclWorld()


def test_new_group_of_an_nccl_group_splits_its_communicator(monkeypatch):
    from ember.distributed import c10d
    world = _NcclWorld()
    monkeypatch.setattr(c10d._State, "default", c10d.ProcessGroup(world, "nccl", "world"))
    monkeypatch.setattr(c10d._State, "groups", [c10d._State.default])
    sub = dist.new_group([1, 0])
    assert dist.get_backend(sub) == "nccl" and world.splits == [([0, 1], 30.0, None)]
    assert dist.new_group([1]) is dist.GroupMember.NON_GROUP_MEMBER
    import datetime
    dist.new_group([0], timeout=datetime.timedelta(seconds=4))
    assert world.splits[-1] == ([0], 4.0, None)
    with pytest.raises(DistError, match=r"new_group\(backend='mpi'\): an mpi sub-group of "
                                        "an nccl default group needs the job started by "
                                        "the launcher"):
        dist.new_group([0], backend="gloo")


# --- nccl among processes started one by one ---------------------------------------------
class _NcclStandIn:
    """The NCCL calls init and CPU-tensor routing make (no GPU: NCCL itself is not run)."""

    def __init__(self, rank: int, world: int):
        self.rank, self.world, self.init_args = rank, world, None

    def get_unique_id(self):
        return f"unique id of rank {self.rank}".encode().ljust(128, b".")

    def comm_init_rank_scalable(self, nranks, rank, n_ids, ids, config):
        self.init_args = (nranks, rank, bytes(ids).rstrip(b"."))
        return "comm"

    def comm_user_rank(self, comm):
        return self.rank

    def comm_count(self, comm):
        return self.world

    def comm_destroy(self, comm):
        pass


class _NoStream:
    def __init__(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass


def _nccl_rank(rank: int, world: int, port: int, results) -> None:
    import os
    import traceback
    from ember.runtime.cuda import driver, stream
    try:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world))
        for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
            os.environ.pop(var, None)
        stand_in = _NcclStandIn(rank, world)
        nccl_engine.nccl_bindings = lambda: stand_in
        nccl_engine.local_device = lambda r: 0
        driver.context = lambda index=0: None
        stream.Stream = _NoStream
        dist.init_process_group("nccl")                        # env://, torchrun's way
        t = ember.tensor([rank + 1.0])
        dist.all_reduce(t)                                     # a CPU tensor: over TCP
        names = [None] * world
        dist.all_gather_object(names, f"rank{rank}")
        results.put((rank, stand_in.init_args, t.item(), names, dist.get_backend()))
        dist.destroy_process_group()
    except BaseException:                  # noqa: BLE001 - the parent shows it
        results.put((rank, traceback.format_exc(), None, None, None))


def test_nccl_ranks_started_one_by_one_share_rank0s_unique_id_and_a_cpu_group():
    """torchrun-style ranks with init_process_group("nccl") and env://: rank 0's NCCL
    unique id reaches every rank through the rendezvous store, and CPU tensors (and
    object collectives) run on a TCP group beside NCCL. NCCL is a stand-in here."""
    import multiprocessing
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_nccl_rank, args=(r, 2, port, results)) for r in range(2)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(10)
    failed = [args for _, args, total, _, _ in got if total is None]
    assert not failed, "\n".join(failed)
    for rank, init_args, total, names, backend in got:
        assert init_args == (2, rank, b"unique id of rank 0"), init_args
        assert (total, names, backend) == (3.0, ["rank0", "rank1"], "nccl")
