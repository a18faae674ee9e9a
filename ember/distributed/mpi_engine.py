"""The MPI engine: one process group's collectives as nonblocking mpi4py calls.

Collectives are blocking MPI calls run in issue order on one communication thread per
group (see `MPIEngine`); point-to-point operations are nonblocking requests.
Buffers are the tensors' own numpy arrays, handed to MPI zero-copy. A tensor whose
array MPI cannot take as it is (non-contiguous, or bfloat16, which MPI has no type
for) goes through a contiguous staging copy (bfloat16 is reduced in float32) that is
copied back when the operation completes. Completion and timeouts are `Work`'s job.

Invariant: every rank of a group issues the group's operations in the same order
(MPI matches nonblocking collectives by issue order), exactly PyTorch's contract.
"""
from __future__ import annotations

import queue
import threading
import weakref

import numpy as np

from ..ir import dtypes
from .errors import DistBackendError, DistError
from .reduce_op import ReduceOp
from .watchdog import Watchdog, report_and_abort
from .work import Finished, Requests, ThreadOp, Work



_MPI = None
# numpy dtypes MPI reduces as they are (bool needs logical ops; bfloat16 has no MPI type)
_DIRECT_DTYPES = frozenset(np.dtype(t) for t in (
    np.float16, np.float32, np.float64, np.complex64, np.complex128, np.int8, np.int16,
    np.int32, np.int64, np.uint8))


class _Gone:
    pass


_NO_ARRAY = weakref.ref(_Gone())     # a dead reference: no array is cached yet


def mpi():
    """The mpi4py MPI module, imported on first use (a dependency of ember[distributed])."""
    global _MPI
    if _MPI is None:
        try:
            from mpi4py import MPI
        except ImportError as err:
            raise DistError("the 'mpi' backend needs mpi4py and an MPI library: "
                            "pip install 'ember[distributed]'") from err
        _MPI = MPI
    return _MPI


_BITWISE = (ReduceOp.BAND, ReduceOp.BOR, ReduceOp.BXOR)
_OP_TABLES: dict = {}      # (api, is_bool) -> {ReduceOp: MPI.Op}, built on first use


def _op_tables(MPI) -> dict:
    if (MPI, True) not in _OP_TABLES:
        # PyTorch: SUM/MAX/BOR of bools is a logical or, PRODUCT/MIN/BAND an and
        _OP_TABLES[(MPI, True)] = {
            ReduceOp.SUM: MPI.LOR, ReduceOp.MAX: MPI.LOR, ReduceOp.BOR: MPI.LOR,
            ReduceOp.PRODUCT: MPI.LAND, ReduceOp.MIN: MPI.LAND, ReduceOp.BAND: MPI.LAND,
            ReduceOp.BXOR: MPI.LXOR}
        _OP_TABLES[(MPI, False)] = {
            ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
            ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}
    return _OP_TABLES


def _mpi_op(MPI, op: ReduceOp, is_bool: bool):
    if op is ReduceOp.PREMUL_SUM:
        raise DistError("ReduceOp.PREMUL_SUM is not supported by the mpi backend")
    mpi_op = _op_tables(MPI)[(MPI, is_bool)].get(op)
    if mpi_op is None:
        raise DistError(f"{op} is not supported for bool tensors")
    return mpi_op


class _Staged:
    """A tensor's array as MPI can take it, and how to copy results back into the tensor."""

    def __init__(self, tensor, op_name: str, *, read: bool = True):
        if tensor.is_cuda:
            raise DistError(f"{op_name}: the mpi backend takes CPU tensors only, got a tensor "
                            f"on {tensor.device}")
        self.tensor = tensor
        arr = tensor._array
        is_bf16 = tensor.dtype == dtypes.bfloat16
        if arr.flags.c_contiguous and not is_bf16:
            self.buf, self.staged = arr, False
        else:
            dtype = np.float32 if is_bf16 else arr.dtype
            self.buf = np.array(arr, dtype=dtype, order="C") if read else \
                np.empty(arr.shape, dtype)
            self.staged = True

    def write_back(self) -> None:
        if self.staged:
            np.copyto(self.tensor._array, self.buf, casting="unsafe")
        self.tensor._bump_version()


class MPIEngine:
    """Issues one group's operations on its MPI communicator; returns `Work` handles.

    Collectives run as blocking MPI calls on the group's communication thread, one at
    a time in issue order (MPI matches collectives by order); the thread sleeps on its
    queue when idle, and mpi4py releases the GIL inside MPI, so the caller computes
    meanwhile. Point-to-point operations are nonblocking requests from the caller.

    `api` is the module the communicator's constants and requests come from: mpi4py's
    MPI (the default), or tcp_comm for groups of independently started processes,
    whose communicators keep their own deadlines (no watchdog, no direct path).
    """

    def __init__(self, comm, global_ranks: list[int], timeout_s: float, global_rank: int,
                 api=None):
        self.comm = comm
        self.api = MPI = mpi() if api is None else api
        # a communicator that times its own calls out (tcp_comm) needs no watchdog
        self.self_timed = hasattr(comm, "timeout_s")
        self.work_label = "WorkTCP" if self.self_timed else "WorkMPI"
        self.global_ranks = list(global_ranks)
        self.timeout_s = timeout_s
        self.global_rank = global_rank
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._seq = 0
        self._broken: str | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._submitted = 0          # ops queued to the thread (issuing thread only)
        self._finished = 0           # ops the thread has returned from
        self._requests_inflight: list[Work] = []
        # what the caller's thread runs as a blocking MPI call, for the watchdog: a Work,
        # or the tensor of a direct all-reduce (which makes no Work); None when idle
        self._running = None
        self._running_timeout_s: float | None = None    # a barrier's own timeout
        # the direct all-reduce's call and arguments, looked up once
        self._allreduce, self._in_place, self._sum_op = comm.Allreduce, MPI.IN_PLACE, MPI.SUM
        # the last array the direct path checked, weakly held, and its message spec
        self._direct_ref, self._direct_spec = _NO_ARRAY, None
        self._watchdog = Watchdog(self._probe_running, self._blocking_call_timed_out,
                                  timeout_s)
        if self.size > 1 and not self.self_timed:
            self._watchdog.start()

    # --- Work's hooks ----------------------------------------------------------------
    def test(self, requests, statuses=None) -> bool:
        return self.api.Request.Testall(requests, statuses)

    def source_of(self, statuses) -> int:
        return self.global_ranks[statuses[0].Get_source()]

    def mark_broken(self, work) -> None:
        self._broken = repr(work)

    def progress(self) -> None:
        """Test the caller-issued requests once, so MPI moves them along.

        Collectives on the thread progress by themselves; point-to-point requests only
        move when tested. Only the
        engine's own completion steps run here (copy-backs), never a Future's callbacks,
        which may issue collectives and must run in program order.
        """
        self._requests_inflight = [w for w in self._requests_inflight
                                   if not w.is_completed()]

    def free(self) -> None:
        """Stop the communication thread and free the communicator (unless an op hangs)."""
        self._watchdog.stop()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=1.0)
            if self._thread.is_alive():       # stuck in a collective that timed out
                self.comm = None
                return
            self._thread = None
        if self.comm is not None:
            self.comm.Free()
            self.comm = None

    def abandon(self) -> None:
        """Stop the threads and drop (never free) a revoked communicator: freeing one
        with failed members is a collective that may wait on the dead."""
        self._watchdog.stop()
        if self._thread is not None:
            self._queue.put(None)
            self._thread = None
        self.comm = None

    def shrink(self):
        """ULFM: revoke the communicator, shrink it to the live processes.

        Returns (the survivors' communicator, the group ranks that failed). Collective
        over the survivors; needs an MPI with fault tolerance (Open MPI 5 started with
        `--with-ft ulfm`, the launcher's --ulfm).
        """
        MPI = self.api
        comm = self.comm
        if comm is None:
            raise DistError("shrink_group: the process group has been destroyed")
        if self.self_timed:
            raise DistError("shrink_group needs MPI's fault tolerance (ULFM); this group's "
                            "processes were started one by one and connect by TCP: start "
                            "them with `python -m ember.distributed.run --ulfm`")
        if not hasattr(comm, "Shrink"):
            raise DistError("shrink_group needs MPI's fault tolerance (ULFM): mpi4py >= 4 "
                            "with Open MPI 5")
        try:
            comm.Revoke()             # anyone still waiting in a collective gets out
        except MPI.Exception as err:
            if err.Get_error_class() != MPI.ERR_REVOKED:
                raise DistError("shrink_group needs MPI's fault tolerance (ULFM): start the "
                                "job with `python -m ember.distributed.run --ulfm` (Open "
                                f"MPI's mpirun --with-ft ulfm); MPI said: {err}") from err
        survivors = comm.Shrink()
        failed_group = comm.Get_failed()
        failed = MPI.Group.Translate_ranks(failed_group, list(range(failed_group.Get_size())),
                                           comm.Get_group())
        self._broken = self._broken or "the group was shrunk"
        return survivors, sorted(failed)

    # --- collectives -----------------------------------------------------------------
    def allreduce(self, tensor, op: ReduceOp, *, blocking: bool = False) -> Work:
        return self._submit_allreduce(self._stage(tensor, "all_reduce", op), tensor, op,
                                      blocking=blocking)

    def _submit_allreduce(self, s: _Staged, tensor, op: ReduceOp, *, blocking: bool) -> Work:
        mop = _mpi_op(self.api, op, s.buf.dtype.kind == "b")
        in_place = self.api.IN_PLACE
        return self._submit("ALLREDUCE", lambda c: c.Allreduce(in_place, s.buf, op=mop),
                            [s], op, tensor.numel(), tensor.numel(), blocking=blocking)

    def allreduce_now(self, tensor, op: ReduceOp) -> None:
        """all_reduce(async_op=False) off the direct path: MPI's blocking call through
        `_run_blocking` (or the thread, when it is busy)."""
        self._submit_allreduce(self._stage(tensor, "all_reduce", op), tensor, op,
                               blocking=True).wait()

    def direct_spec(self, arr):
        """MPI's message spec for all-reducing `arr` in place, or None (general path).

        The direct path of `c10d.all_reduce` (inlined there, for speed): a writable,
        C-contiguous CPU array of a dtype MPI reduces as it is (not bool or bfloat16),
        while the communication thread has nothing queued or running (issue order) and
        the group is usable. The spec (buffer, count, MPI datatype) is built once per
        array and kept with a weak reference to it, so the array's own checks and
        mpi4py's buffer export (~200 ns of a 1.5 us all-reduce) are not paid per call.
        """
        if (self._submitted != self._finished or self._broken is not None
                or self.comm is None or self.self_timed):
            return None
        if self._direct_ref() is arr:
            return self._direct_spec
        if not (type(arr) is np.ndarray and arr.dtype in _DIRECT_DTYPES and arr.size
                and arr.flags.c_contiguous and arr.flags.writeable):
            return None
        MPI = self.api
        # by address, so the cache never keeps the array alive; the weak reference
        # says when the address is still this array's
        buf = MPI.buffer.fromaddress(arr.ctypes.data, arr.nbytes)
        self._direct_spec = (buf, arr.size, MPI._typedict[arr.dtype.char])
        self._direct_ref = weakref.ref(arr)
        return self._direct_spec

    def direct_allreduce(self, tensor, spec) -> None:
        """SUM-all-reduce `tensor` in place through `spec`, as c10d's direct path does.

        No Work, no lock, no clock read: the watchdog samples `_seq` and `_running`
        (see watchdog.py).
        """
        self._seq += 1
        self._running = tensor
        try:
            self._allreduce(self._in_place, spec, self._sum_op)
        except BaseException as err:     # noqa: BLE001 - named like Work.wait names it
            self._running = None
            raise self.direct_failed(tensor, err) from err
        self._running = None
        tensor._bump_version()

    def direct_failed(self, tensor, err: BaseException) -> DistBackendError:
        work = self.describe_direct(tensor, self._seq)
        self.mark_broken(work)
        return DistBackendError(f"[Rank {self.global_rank}] {work!r} failed: "
                                f"{type(err).__name__}: {err}")

    def describe_direct(self, tensor, seq: int) -> Work:
        n = tensor.numel()
        return Work(self, "ALLREDUCE", Finished(), seq=seq, numel_in=n, numel_out=n)

    def reduce(self, tensor, root: int, op: ReduceOp, *, blocking: bool = False) -> Work:
        s = self._stage(tensor, "reduce", op)
        mop = _mpi_op(self.api, op, s.buf.dtype == bool)
        in_place = self.api.IN_PLACE
        if self.rank == root:
            return self._submit("REDUCE", lambda c: c.Reduce(in_place, s.buf, op=mop,
                                                             root=root),
                                [s], op, tensor.numel(), tensor.numel(), blocking=blocking)
        return self._submit("REDUCE", lambda c: c.Reduce(s.buf, None, op=mop, root=root),
                            [], None, tensor.numel(), 0, blocking=blocking)

    def broadcast(self, tensor, root: int, *, blocking: bool = False) -> Work:
        s = self._stage(tensor, "broadcast")
        return self._submit("BROADCAST", lambda c: c.Bcast(s.buf, root=root), [s], None,
                            tensor.numel(), tensor.numel(), blocking=blocking)

    def allgather(self, out_flat: _Staged, inp, *, blocking: bool = False) -> Work:
        s_in = self._stage(inp, "all_gather")
        return self._submit("ALLGATHER", lambda c: c.Allgather(s_in.buf, out_flat.buf),
                            [out_flat], None, inp.numel(), out_flat.buf.size,
                            blocking=blocking)

    def gather(self, out_flat: _Staged | None, inp, root: int, *,
               blocking: bool = False) -> Work:
        s_in = self._stage(inp, "gather")
        recv = None if out_flat is None else out_flat.buf
        outs = [] if out_flat is None else [out_flat]
        return self._submit("GATHER", lambda c: c.Gather(s_in.buf, recv, root=root), outs,
                            None, inp.numel(), 0 if recv is None else recv.size,
                            blocking=blocking)

    def scatter(self, out, in_flat: _Staged | None, root: int, *,
                blocking: bool = False) -> Work:
        s_out = self._stage(out, "scatter", read=False)
        send = None if in_flat is None else in_flat.buf
        return self._submit("SCATTER", lambda c: c.Scatter(send, s_out.buf, root=root),
                            [s_out], None, 0, out.numel(), blocking=blocking)

    def reduce_scatter(self, out, in_flat: _Staged, op: ReduceOp, *,
                       blocking: bool = False) -> Work:
        s_out = self._stage(out, "reduce_scatter", op, read=False)
        mop = _mpi_op(self.api, op, s_out.buf.dtype == bool)
        return self._submit("REDUCE_SCATTER",
                            lambda c: c.Reduce_scatter_block(in_flat.buf, s_out.buf, op=mop),
                            [s_out], op, in_flat.buf.size, out.numel(), blocking=blocking)

    def alltoallv(self, out_flat: _Staged, out_counts, in_flat: _Staged, in_counts, *,
                  blocking: bool = False) -> Work:
        self._check_usable("all_to_all")
        send = [in_flat.buf, (in_counts, _displacements(in_counts))]
        recv = [out_flat.buf, (out_counts, _displacements(out_counts))]
        return self._submit("ALLTOALL", lambda c: c.Alltoallv(send, recv), [out_flat], None,
                            in_flat.buf.size, out_flat.buf.size, blocking=blocking)

    def barrier(self, *, blocking: bool = False, timeout_s: float | None = None) -> Work:
        self._check_usable("barrier")
        if self.self_timed and timeout_s is not None:
            call = lambda c: c.Barrier(timeout_s=timeout_s)     # noqa: E731
        else:
            call = lambda c: c.Barrier()                         # noqa: E731
        return self._submit("BARRIER", call, [], None, 0, 0,
                            blocking=blocking, timeout_s=timeout_s)

    # --- point to point --------------------------------------------------------------
    def send(self, tensor, peer: int, tag: int) -> Work:
        s = self._stage(tensor, "send")
        req = self.comm.Isend(s.buf, dest=peer, tag=tag)
        # `s` is held by the finish closure: the staged buffer lives until the send is done
        return self._work("SEND", Requests([req], self.test), [], None, tensor.numel(), 0,
                          keep=[s])

    def recv(self, tensor, peer: int | None, tag: int) -> Work:
        s = self._stage(tensor, "recv", read=False)
        source = self.api.ANY_SOURCE if peer is None else peer
        req = self.comm.Irecv(s.buf, source=source, tag=tag)
        pending = Requests([req], self.test, statuses=[self.api.Status()],
                           wait_until=getattr(self.api.Request, "Waitall_until", None))
        return self._work("RECV", pending, [s], None, 0, tensor.numel())

    # --- staging ---------------------------------------------------------------------
    def stage(self, tensor, op_name: str, *, read: bool = True) -> _Staged:
        return self._stage(tensor, op_name, read=read)

    def stage_array(self, arr: np.ndarray) -> _Staged:
        """A fresh contiguous buffer (used for lists of tensors gathered into one)."""
        s = object.__new__(_Staged)
        s.tensor, s.buf, s.staged = None, arr, True
        return s

    def _stage(self, tensor, op_name, op=None, *, read=True) -> _Staged:
        self._check_usable(op_name)
        if op is ReduceOp.AVG and not tensor.dtype.is_floating_point:
            raise DistError(f"{op_name}: ReduceOp.AVG needs a floating-point tensor, got "
                            f"{tensor.dtype}")
        if op in _BITWISE and (tensor.dtype.is_floating_point or tensor.dtype.is_complex):
            # refused before MPI sees it: MPI's own error would leave the group unusable
            raise DistError(f"{op_name}: cannot use {op} with non-integral dtype "
                            f"{tensor.dtype}")
        return _Staged(tensor, op_name, read=read)

    def _check_usable(self, op_name: str) -> None:
        if self.comm is None:
            raise DistError(f"{op_name}: the process group has been destroyed")
        if self._broken is not None:
            raise DistBackendError(f"{op_name}: the process group is unusable after an earlier "
                                   f"operation failed or timed out: {self._broken}")

    # --- the communication thread ----------------------------------------------------
    def _submit(self, op_type, call, outputs, op, numel_in, numel_out, *,
                blocking: bool = False, timeout_s: float | None = None) -> Work:
        """Queue `call(comm)` for the communication thread; its Work waits on an Event.

        A group of one process runs the call inline: nothing can hang without peers,
        and the thread hand-off (~20 us) would be the whole cost. A blocking caller
        (async_op=False) whose thread is idle runs the call itself, under the watchdog.
        """
        if self.size == 1:
            call(self.comm)
            return self._work(op_type, None, outputs, op, numel_in, numel_out)
        if blocking and self._submitted == self._finished:
            return self._run_blocking(op_type, call, outputs, op, numel_in, numel_out,
                                      self.timeout_s if timeout_s is None else timeout_s)
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="ember-mpi-comm",
                                            daemon=True)
            self._thread.start()
        pending = ThreadOp()
        work = self._work(op_type, pending, outputs, op, numel_in, numel_out)
        self._submitted += 1
        self._queue.put((call, pending))
        return work

    def sub_comm(self, ranks: list[int]):
        """The communicator of `ranks` (ranks of this one), None outside them.
        Collective over this communicator."""
        comm = self.comm.Create(self.comm.Get_group().Incl(ranks))
        return None if comm == self.api.COMM_NULL else comm

    def _run_blocking(self, op_type, call, outputs, op, numel_in, numel_out,
                      timeout_s: float) -> Work:
        """Run `call(comm)` on this thread as MPI's blocking call, under the watchdog.

        Only while the communication thread has nothing queued or running, so issue
        order is kept (and the two never call MPI on the communicator at once). The
        returned Work is complete (its wait() raises if MPI failed).
        """
        pending = Finished()
        work = self._work(op_type, pending, outputs, op, numel_in, numel_out)
        if timeout_s != self.timeout_s:
            self._watchdog.expect(timeout_s)
            self._running_timeout_s = timeout_s
        self._running = work
        try:
            call(self.comm)
        except BaseException as err:     # noqa: BLE001 - reported by Work.wait
            pending.error = err
        finally:
            self._running = None
            self._running_timeout_s = None
        return work

    def _probe_running(self):
        """For the watchdog: (sequence number, timeout) of the running blocking call."""
        if self._running is None:
            return None
        return self._seq, self._running_timeout_s or self.timeout_s

    def _blocking_call_timed_out(self, seq: int, ran_s: float) -> bool:
        """The watchdog's verdict: a blocking call passed its deadline; end the job."""
        running = self._running
        if running is None:          # returned just after the watchdog's last look
            return False
        work = running if isinstance(running, Work) else self.describe_direct(running, seq)
        self.mark_broken(work)
        report_and_abort(
            f"DistBackendError: {work.timeout_message(ran_s)} The hung MPI call cannot be "
            "interrupted, so the job is aborted (as PyTorch's NCCL watchdog does).",
            lambda: mpi().COMM_WORLD.Abort(1))

    def _serve(self) -> None:
        comm = self.comm
        while True:
            item = self._queue.get()
            if item is None:
                return
            call, pending = item
            try:
                call(comm)
            except BaseException as err:     # noqa: BLE001 - reported by Work.wait
                pending.error = err
            self._finished += 1
            pending.event.set()

    def _work(self, op_type, pending, outputs, op, numel_in, numel_out, *,
              keep=None) -> Work:
        self._seq += 1
        size = self.size

        def finish():
            for s in outputs:
                if op is ReduceOp.AVG:
                    np.divide(s.buf, size, out=s.buf, casting="unsafe")
                if s.tensor is not None:
                    s.write_back()
            if keep:
                keep.clear()

        work = Work(self, op_type, pending, seq=self._seq, numel_in=numel_in,
                    numel_out=numel_out, finish=finish,
                    outputs=[s.tensor for s in outputs if s.tensor is not None])
        if isinstance(pending, Requests):     # forget those their owners already waited
            self._requests_inflight = [w for w in self._requests_inflight
                                       if not w._completed]
            self._requests_inflight.append(work)
        return work


def _displacements(counts) -> list[int]:
    out, total = [], 0
    for c in counts:
        out.append(total)
        total += c
    return out
