"""The MPI engine: one process group's collectives as nonblocking mpi4py calls.

Buffers are the tensors' own numpy arrays, handed to MPI zero-copy. A tensor whose
array MPI cannot take as it is (non-contiguous, or bfloat16, which MPI has no type
for) goes through a contiguous staging copy (bfloat16 is reduced in float32) that is
copied back when the operation completes. Completion and timeouts are `Work`'s job.

Invariant: every rank of a group issues the group's operations in the same order
(MPI matches nonblocking collectives by issue order), exactly PyTorch's contract.
"""
from __future__ import annotations

import numpy as np

from ..ir import dtypes
from .errors import DistBackendError, DistError
from .reduce_op import ReduceOp
from .work import Work


def mpi():
    """The mpi4py MPI module, imported on first use (a dependency of ember[distributed])."""
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise DistError("the 'mpi' backend needs mpi4py and an MPI library: "
                        "pip install 'ember[distributed]'") from err
    return MPI


def _mpi_op(op: ReduceOp, is_bool: bool):
    MPI = mpi()
    if op is ReduceOp.PREMUL_SUM:
        raise DistError("ReduceOp.PREMUL_SUM is not supported by the mpi backend")
    if is_bool:   # PyTorch: SUM/MAX/BOR of bools is a logical or, PRODUCT/MIN/BAND an and
        table = {ReduceOp.SUM: MPI.LOR, ReduceOp.MAX: MPI.LOR, ReduceOp.BOR: MPI.LOR,
                 ReduceOp.PRODUCT: MPI.LAND, ReduceOp.MIN: MPI.LAND, ReduceOp.BAND: MPI.LAND,
                 ReduceOp.BXOR: MPI.LXOR}
        if op not in table:
            raise DistError(f"{op} is not supported for bool tensors")
        return table[op]
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MIN: MPI.MIN, ReduceOp.MAX: MPI.MAX, ReduceOp.BAND: MPI.BAND,
            ReduceOp.BOR: MPI.BOR, ReduceOp.BXOR: MPI.BXOR}[op]


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
    """Issues one group's operations on its MPI communicator; returns `Work` handles."""

    def __init__(self, comm, global_ranks: list[int], timeout_s: float, global_rank: int):
        self.comm = comm
        self.global_ranks = list(global_ranks)
        self.timeout_s = timeout_s
        self.global_rank = global_rank
        self.rank = comm.Get_rank()
        self.size = comm.Get_size()
        self._seq = 0
        self._broken: str | None = None
        self._inflight: list[Work] = []

    # --- Work's hooks ----------------------------------------------------------------
    def test(self, requests, statuses=None) -> bool:
        return mpi().Request.Testall(requests, statuses)

    def source_of(self, statuses) -> int:
        return self.global_ranks[statuses[0].Get_source()]

    def mark_broken(self, work) -> None:
        self._broken = repr(work)

    def progress(self) -> None:
        """Test in-flight operations once, so MPI moves them along (no progress thread).

        Only the engine's own completion steps run here (copy-backs), never a Future's
        callbacks: those may issue collectives, which must happen in program order.
        """
        self._inflight = [w for w in self._inflight if not w.is_completed()]

    def free(self) -> None:
        if self.comm is not None:
            self.comm.Free()
            self.comm = None

    # --- collectives -----------------------------------------------------------------
    def allreduce(self, tensor, op: ReduceOp) -> Work:
        s = self._stage(tensor, "all_reduce", op)
        req = self.comm.Iallreduce(mpi().IN_PLACE, s.buf, op=_mpi_op(op, s.buf.dtype == bool))
        return self._work("ALLREDUCE", [req], [s], op, tensor.numel(), tensor.numel())

    def reduce(self, tensor, root: int, op: ReduceOp) -> Work:
        s = self._stage(tensor, "reduce", op)
        mop = _mpi_op(op, s.buf.dtype == bool)
        if self.rank == root:
            req = self.comm.Ireduce(mpi().IN_PLACE, s.buf, op=mop, root=root)
            return self._work("REDUCE", [req], [s], op, tensor.numel(), tensor.numel())
        req = self.comm.Ireduce(s.buf, None, op=mop, root=root)
        return self._work("REDUCE", [req], [], None, tensor.numel(), 0)

    def broadcast(self, tensor, root: int) -> Work:
        s = self._stage(tensor, "broadcast")
        req = self.comm.Ibcast(s.buf, root=root)
        return self._work("BROADCAST", [req], [s], None, tensor.numel(), tensor.numel())

    def allgather(self, out_flat: _Staged, inp) -> Work:
        s_in = self._stage(inp, "all_gather")
        req = self.comm.Iallgather(s_in.buf, out_flat.buf)
        return self._work("ALLGATHER", [req], [out_flat], None, inp.numel(),
                          out_flat.buf.size)

    def gather(self, out_flat: _Staged | None, inp, root: int) -> Work:
        s_in = self._stage(inp, "gather")
        req = self.comm.Igather(s_in.buf, None if out_flat is None else out_flat.buf, root=root)
        outs = [] if out_flat is None else [out_flat]
        return self._work("GATHER", [req], outs, None, inp.numel(), sum(
            o.buf.size for o in outs))

    def scatter(self, out, in_flat: _Staged | None, root: int) -> Work:
        s_out = self._stage(out, "scatter", read=False)
        req = self.comm.Iscatter(None if in_flat is None else in_flat.buf, s_out.buf,
                                 root=root)
        return self._work("SCATTER", [req], [s_out], None, 0, out.numel())

    def reduce_scatter(self, out, in_flat: _Staged, op: ReduceOp) -> Work:
        s_out = self._stage(out, "reduce_scatter", op, read=False)
        req = self.comm.Ireduce_scatter_block(in_flat.buf, s_out.buf,
                                              op=_mpi_op(op, s_out.buf.dtype == bool))
        return self._work("REDUCE_SCATTER", [req], [s_out], op, in_flat.buf.size, out.numel())

    def alltoallv(self, out_flat: _Staged, out_counts, in_flat: _Staged, in_counts) -> Work:
        send = [in_flat.buf, (in_counts, _displacements(in_counts))]
        recv = [out_flat.buf, (out_counts, _displacements(out_counts))]
        req = self.comm.Ialltoallv(send, recv)
        return self._work("ALLTOALL", [req], [out_flat], None, in_flat.buf.size,
                          out_flat.buf.size)

    def barrier(self) -> Work:
        self._check_usable("barrier")
        return self._work("BARRIER", [self.comm.Ibarrier()], [], None, 0, 0)

    # --- point to point --------------------------------------------------------------
    def send(self, tensor, peer: int, tag: int) -> Work:
        s = self._stage(tensor, "send")
        req = self.comm.Isend(s.buf, dest=peer, tag=tag)
        return self._work("SEND", [req], [], None, tensor.numel(), 0, keep=[s])

    def recv(self, tensor, peer: int | None, tag: int) -> Work:
        s = self._stage(tensor, "recv", read=False)
        source = mpi().ANY_SOURCE if peer is None else peer
        req = self.comm.Irecv(s.buf, source=source, tag=tag)
        return self._work("RECV", [req], [s], None, 0, tensor.numel(),
                          statuses=[mpi().Status()])

    # --- internals -------------------------------------------------------------------
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
        return _Staged(tensor, op_name, read=read)

    def _check_usable(self, op_name: str) -> None:
        if self.comm is None:
            raise DistError(f"{op_name}: the process group has been destroyed")
        if self._broken is not None:
            raise DistBackendError(f"{op_name}: the process group is unusable after an earlier "
                                   f"operation timed out: {self._broken}")

    def _work(self, op_type, requests, outputs, op, numel_in, numel_out, *, keep=None,
              statuses=None) -> Work:
        self._seq += 1
        size = self.size

        def finish():
            for s in outputs:
                if op is ReduceOp.AVG:
                    np.divide(s.buf, size, out=s.buf, casting="unsafe")
                if s.tensor is not None:
                    s.write_back()
            if keep:
                keep.clear()      # a send's staged buffer must live until it completes

        work = Work(self, op_type, requests, seq=self._seq, numel_in=numel_in,
                    numel_out=numel_out, finish=finish, statuses=statuses,
                    outputs=[s.tensor for s in outputs if s.tensor is not None])
        if requests:     # forget finished ones (waited by their owners) as we go
            self._inflight = [w for w in self._inflight if not w._completed]
            self._inflight.append(work)
        return work


def _displacements(counts) -> list[int]:
    out, total = [], 0
    for c in counts:
        out.append(total)
        total += c
    return out
