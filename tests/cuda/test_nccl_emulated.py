"""The NCCL backend's ember side on the CPU: tests/cuda/test_nccl_gpu.py's checks with
'cuda:0' in host memory (emulation.py) and a one-rank stand-in for NCCL's C calls.

What is real: init_process_group('nccl') and the unique id, c10d's routing to the NCCL
engine, device pointers and element counts, dtype/op numbers, the list forms through
flat CUDA tensors, Work and the event watchdog, DDP's CUDA buckets and hooks. What is
replaced: NCCL itself (one rank: each collective copies its send buffer to its receive
buffer, as NCCL does with one rank), CUDA streams and events (host memory is always
ready). test_nccl_gpu.py runs the same checks with the real NCCL on a GPU.
"""
import ctypes
import os

os.environ["TRITON_INTERPRET"] = "1"      # before triton is imported (see emulation.py)

import pytest  # noqa: E402

pytest.importorskip("torch")
pytest.importorskip("triton")

import ember.distributed as dist  # noqa: E402
from ember.distributed import nccl_engine  # noqa: E402
from ember.runtime.cuda import driver, stream as S  # noqa: E402

import test_nccl_gpu as gpu  # noqa: E402
from emulation import emulated_cuda  # noqa: E402

_ITEMSIZE = {0: 1, 1: 1, 2: 4, 4: 8, 6: 2, 7: 4, 8: 8, 9: 2}


class OneRankNccl:
    """nccl.bindings.nccl's calls that ember makes, for a communicator of one rank."""

    def __init__(self):
        self.calls = []
        self._grouped = None

    def get_unique_id(self):
        return b"u" * 128

    def comm_init_rank_scalable(self, nranks, rank, n_ids, ids, config):
        assert (nranks, rank, n_ids, bytes(ids), config) == (1, 0, 1, b"u" * 128, 0)
        return "comm"

    def comm_user_rank(self, comm):
        return 0

    def comm_count(self, comm):
        return 1

    def comm_split(self, comm, color, key, config):
        assert (comm, color, key, config) == ("comm", 0, 0, 0)
        self.calls.append("split")
        return "sub-comm"

    def comm_destroy(self, comm):
        self.calls.append("destroy")

    def comm_abort(self, comm):
        self.calls.append("abort")

    def comm_get_async_error(self, comm):
        return 0

    def _copy(self, name, src, dst, count, dtype, stream):
        assert stream == 77, "NCCL must run on the group's communication stream"
        self.calls.append(name)
        if src != dst:
            ctypes.memmove(dst, src, count * _ITEMSIZE[dtype])

    def all_reduce(self, src, dst, count, dtype, op, comm, stream):
        self._copy("all_reduce", src, dst, count, dtype, stream)

    def reduce(self, src, dst, count, dtype, op, root, comm, stream):
        self._copy("reduce", src, dst, count, dtype, stream)

    def broadcast(self, src, dst, count, dtype, root, comm, stream):
        self._copy("broadcast", src, dst, count, dtype, stream)

    def all_gather(self, src, dst, count, dtype, comm, stream):
        self._copy("all_gather", src, dst, count, dtype, stream)

    def reduce_scatter(self, src, dst, count, dtype, op, comm, stream):
        self._copy("reduce_scatter", src, dst, count, dtype, stream)

    def group_start(self):
        self._grouped = []

    def send(self, ptr, count, dtype, peer, comm, stream):
        assert peer == 0 and self._grouped is not None
        self._grouped.append((ptr, count, dtype))

    def recv(self, ptr, count, dtype, peer, comm, stream):
        src, n, dt = self._grouped.pop(0)
        assert (n, dt) == (count, dtype)
        self._copy("sendrecv", src, ptr, count, dtype, stream)

    def group_end(self):
        assert not self._grouped
        self._grouped = None


class _Stream:
    handle = 77

    def __init__(self, device=0, priority=0):
        pass

    def wait_event(self, event):
        pass

    def synchronize(self):
        pass


class _Event:
    def __init__(self, *args, **kwargs):
        pass

    def record(self, stream=None):
        pass

    def query(self):
        return True


@pytest.fixture(scope="module")
def fake_nccl():
    with emulated_cuda(), pytest.MonkeyPatch.context() as mp:
        fake = OneRankNccl()
        mp.setattr(nccl_engine, "nccl_bindings", lambda: fake)
        mp.setattr(nccl_engine, "local_device", lambda rank: 0)
        mp.setattr(S, "Stream", _Stream)
        mp.setattr(S, "Event", _Event)
        mp.setattr(driver, "context", lambda index=0: None)
        # the emulated current stream: host memory is always ready, nothing to wait for
        mp.setattr(type(S.current_stream()), "wait_event", lambda self, event: None,
                   raising=False)
        for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
            mp.delenv(var, raising=False)
        dist.init_process_group("nccl", rank=0, world_size=1)
        yield fake
        dist.destroy_process_group()
        assert fake.calls[-1] == "destroy"


def test_group(fake_nccl):
    gpu.test_group_is_nccl_with_one_rank(None)


@pytest.mark.parametrize("op", ["SUM", "AVG", "MAX"])
def test_all_reduce(fake_nccl, op):
    gpu.test_all_reduce_keeps_the_only_rank_values(op)
    assert fake_nccl.calls[-1] == "all_reduce"


def test_collectives_and_their_list_forms(fake_nccl):
    gpu.test_broadcast_and_reduce()
    gpu.test_all_gather_forms()
    gpu.test_scatter_and_reduce_scatter_forms()
    gpu.test_all_to_all_forms()
    gpu.test_send_and_recv_to_itself_in_one_batch()
    gpu.test_barrier_and_refusals_name_the_op()
    assert {"broadcast", "reduce", "all_gather", "reduce_scatter", "sendrecv"} <= \
        set(fake_nccl.calls)


def test_ddp_buckets_on_the_device(fake_nccl):
    gpu.test_ddp_on_one_gpu_equals_plain_training(None, True)


def test_new_group_splits_the_communicator(fake_nccl):
    gpu.test_new_group_splits_the_nccl_communicator(None)
    assert "split" in fake_nccl.calls


def test_powerSGD_on_device_buckets(fake_nccl):
    gpu.test_ddp_with_powerSGD_on_cuda_buckets_equals_plain_training()


class _NeverDone(_Event):
    def query(self):
        return False


def test_a_hung_operation_aborts_the_communicator_naming_rank_and_op(fake_nccl, monkeypatch,
                                                                      capfd):
    import time
    import ember
    monkeypatch.setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "0")    # keep pytest alive
    monkeypatch.setattr(S, "Event", _NeverDone)
    engine = nccl_engine.NCCLEngine("comm", [0], 0.05, 0, 0)
    work = engine.allreduce(ember.ones(3, device="cuda"), dist.ReduceOp.SUM)
    deadline = time.monotonic() + 5
    while "abort" not in fake_nccl.calls and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_nccl.calls[-1] == "abort" and engine.comm is None
    with pytest.raises(dist.DistBackendError, match=r"the NCCL communicator was aborted: "
                       r"\[Rank 0\] Watchdog caught collective operation timeout: "
                       r"WorkNCCL\(SeqNum=1, OpType=ALLREDUCE, NumelIn=3"):
        work.wait()
    assert "Watchdog caught collective operation timeout" in capfd.readouterr().err
    with pytest.raises(dist.DistBackendError, match="all_reduce: the process group is "
                                                    "unusable"):
        engine.allreduce(ember.ones(3, device="cuda"), dist.ReduceOp.SUM)
