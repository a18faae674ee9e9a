"""Communicators over the TCP mesh (tcp_transport.py), shaped as the engine uses mpi4py's.

`MPIEngine` issues every operation through a small part of mpi4py's interface
(`comm.Allreduce(IN_PLACE, buf, op=SUM)`, `Isend`, `Request.Testall`, `Create`, ...).
This module is that interface over sockets, so a process group of independently
started processes runs the very same engine code (staging, Work, the communication
thread, timeouts) as an MPI job; the engine takes this module where it takes `MPI`.

Algorithms (buffers are contiguous numpy arrays; n ranks):
- all-reduce: below 256 KiB every rank sends its buffer to all and reduces the n
  contributions in rank order (one round trip); above, a ring (reduce-scatter, then
  all-gather of the reduced chunks: 2(n-1)/n of the buffer sent per rank). Both leave
  the same bits on every rank.
- reduce, reduce-scatter: contributions folded in rank order at their destination;
  broadcast, gather, scatter, all-gather, all-to-all: direct sends.
Sends never wait for the receiver (its reader thread drains the socket), so every
rank sends first and then receives. Collectives use a context of their own per
communicator (as MPI's), so they never match point-to-point traffic; among
collectives, the per-pair message order is the match, since every rank issues a
group's collectives in the same order (PyTorch's contract). Each collective must finish
within the communicator's `timeout_s` (TimeoutError naming the silent rank); a dead
peer fails it at once (PeerGone).
"""
from __future__ import annotations

import hashlib
import time

import numpy as np

from .tcp_transport import Mesh, PeerGone  # noqa: F401 - PeerGone is part of the interface

_SMALL_BYTES = 256 * 1024
_P2P, _COLL = 0, 1


class _Op:
    """A reduction (MPI.SUM, ...): `fold(acc, x)` combines `x` into `acc` in place."""

    def __init__(self, name: str, ufunc):
        self.name, self._ufunc = name, ufunc

    def fold(self, acc: np.ndarray, x: np.ndarray) -> None:
        with np.errstate(all="ignore"):      # overflow to inf is the result, as in MPI
            self._ufunc(acc, x, out=acc)

    def __repr__(self) -> str:
        return f"tcp_comm.{self.name}"


SUM, PROD = _Op("SUM", np.add), _Op("PROD", np.multiply)
MIN, MAX = _Op("MIN", np.minimum), _Op("MAX", np.maximum)
BAND, BOR, BXOR = _Op("BAND", np.bitwise_and), _Op("BOR", np.bitwise_or), \
    _Op("BXOR", np.bitwise_xor)
LAND, LOR, LXOR = _Op("LAND", np.logical_and), _Op("LOR", np.logical_or), \
    _Op("LXOR", np.logical_xor)
IN_PLACE = "IN_PLACE"
ANY_SOURCE = -1
COMM_NULL = None


class Status:
    def __init__(self):
        self.source = ANY_SOURCE

    def Get_source(self) -> int:
        return self.source


class Request:
    """A point-to-point request: `poll(status)` says whether it finished, `block(status,
    deadline)` waits for it (False at the deadline)."""

    def __init__(self, poll=None, block=None):
        self._poll = poll           # None: complete already (sends finish when issued)
        self._block = block

    def Test(self, status: Status | None = None) -> bool:
        if self._poll is not None and self._poll(status):
            self._poll = None
        return self._poll is None

    @staticmethod
    def Waitall_until(requests, statuses, deadline: float) -> bool:
        """Sleep until every request finished (True) or the deadline passed (False): a
        receive waits on the mailbox, with no polling (ember's, not mpi4py's)."""
        for i, req in enumerate(requests):
            status = statuses[i] if statuses else None
            if req._poll is not None and req._block is not None:
                if not req._block(status, deadline):
                    return False
                req._poll = None
        return Request.Testall(requests, statuses)

    @staticmethod
    def Testall(requests, statuses=None) -> bool:
        done = True
        for i, req in enumerate(requests):
            done = req.Test(statuses[i] if statuses else None) and done
        return done


class Group:
    """Ranks of a communicator, for `comm.Create(comm.Get_group().Incl(ranks))`."""

    def __init__(self, ranks: list[int]):
        self.ranks = list(ranks)

    def Incl(self, ranks) -> "Group":
        return Group([self.ranks[r] for r in ranks])

    def Get_size(self) -> int:
        return len(self.ranks)


def _context(path: tuple, kind: int) -> int:
    digest = hashlib.blake2b(repr((path, kind)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class SocketComm:
    """A communicator: `members` (mesh ranks, in communicator-rank order) of a Mesh."""

    def __init__(self, mesh: Mesh, members: list[int], path: tuple, timeout_s: float,
                 owns_mesh: bool = False):
        self.mesh = mesh
        self.members = list(members)
        self.rank, self.size = self.members.index(mesh.rank), len(self.members)
        self.timeout_s = timeout_s
        self._path = path
        self._p2p, self._coll = _context(path, _P2P), _context(path, _COLL)
        self._children = 0
        self._owns_mesh = owns_mesh

    def Get_rank(self) -> int:
        return self.rank

    def Get_size(self) -> int:
        return self.size

    def Get_group(self) -> Group:
        return Group(range(self.size))

    def Create(self, group: Group):
        """A communicator of `group`'s ranks, or COMM_NULL off it. Collective: every
        rank calls it in the same order, so all derive the same new context."""
        path = self._path + (self._children,)
        self._children += 1
        if self.rank not in group.ranks:
            return COMM_NULL
        return SocketComm(self.mesh, [self.members[r] for r in group.ranks], path,
                          self.timeout_s)

    def Dup(self) -> "SocketComm":
        return self.Create(self.Get_group())

    def Free(self) -> None:
        if self._owns_mesh:
            self.mesh.close()

    # --- point to point ------------------------------------------------------------
    def Isend(self, buf: np.ndarray, dest: int, tag: int = 0) -> Request:
        self.mesh.send(self.members[dest], self._p2p, tag, buf)
        return Request()

    def Irecv(self, buf: np.ndarray, source: int = ANY_SOURCE, tag: int = 0) -> Request:
        src = tuple(self.members) if source == ANY_SOURCE else self.members[source]

        def deliver(found, status) -> bool:
            if found is None:
                return False
            sender, payload = found
            _fill(buf, payload, f"recv from rank {self.members.index(sender)}",
                  allow_shorter=True)
            if status is not None:
                status.source = self.members.index(sender)
            return True

        def poll(status):
            return deliver(self.mesh.mailbox.poll(self._p2p, tag, src), status)

        def block(status, deadline: float) -> bool:
            try:
                found = self.mesh.mailbox.take(self._p2p, tag, src, deadline)
            except TimeoutError:
                return False
            return deliver(found, status)
        return Request(poll, block)

    # --- collectives ---------------------------------------------------------------
    def Barrier(self, timeout_s: float | None = None) -> None:
        deadline = self._deadline(timeout_s)
        empty = np.empty(0, np.uint8)
        for peer in self._others():
            self._send(peer, empty)
        for peer in self._others():
            self._recv(peer, deadline)

    def Bcast(self, buf: np.ndarray, root: int = 0) -> None:
        deadline = self._deadline()
        if self.rank == root:
            for peer in self._others():
                self._send(peer, buf)
        else:
            _fill(buf, self._recv(root, deadline), "broadcast")

    def Allreduce(self, sendbuf, recvbuf: np.ndarray, op: _Op = SUM) -> None:
        deadline = self._deadline()
        if sendbuf is not IN_PLACE:
            np.copyto(recvbuf, sendbuf)
        flat = recvbuf.reshape(-1)
        if self.size == 1 or flat.size == 0:
            return
        if flat.nbytes <= _SMALL_BYTES or flat.size < self.size:
            for peer in self._others():
                self._send(peer, flat)
            flat[...] = self._fold_in_rank_order(flat, op, deadline)
        else:
            self._ring_allreduce(flat, op, deadline)

    def Reduce(self, sendbuf, recvbuf, op: _Op = SUM, root: int = 0) -> None:
        deadline = self._deadline()
        if self.rank != root:
            self._send(root, sendbuf)
            return
        mine = recvbuf if sendbuf is IN_PLACE else sendbuf
        recvbuf.reshape(-1)[...] = self._fold_in_rank_order(mine.reshape(-1), op, deadline)

    def Allgather(self, sendbuf: np.ndarray, recvbuf: np.ndarray) -> None:
        deadline = self._deadline()
        blocks = _blocks(recvbuf, self.size)
        for peer in self._others():
            self._send(peer, sendbuf)
        blocks[self.rank][...] = sendbuf.reshape(-1)
        for peer in self._others():
            _fill(blocks[peer], self._recv(peer, deadline), "all_gather")

    def Gather(self, sendbuf: np.ndarray, recvbuf, root: int = 0) -> None:
        deadline = self._deadline()
        if self.rank != root:
            self._send(root, sendbuf)
            return
        blocks = _blocks(recvbuf, self.size)
        blocks[root][...] = sendbuf.reshape(-1)
        for peer in self._others():
            _fill(blocks[peer], self._recv(peer, deadline), "gather")

    def Scatter(self, sendbuf, recvbuf: np.ndarray, root: int = 0) -> None:
        deadline = self._deadline()
        if self.rank != root:
            _fill(recvbuf, self._recv(root, deadline), "scatter")
            return
        blocks = _blocks(sendbuf, self.size)
        for peer in self._others():
            self._send(peer, blocks[peer])
        recvbuf.reshape(-1)[...] = blocks[root]

    def Reduce_scatter_block(self, sendbuf: np.ndarray, recvbuf: np.ndarray,
                             op: _Op = SUM) -> None:
        deadline = self._deadline()
        blocks = _blocks(sendbuf, self.size)
        for peer in self._others():
            self._send(peer, blocks[peer])
        recvbuf.reshape(-1)[...] = self._fold_in_rank_order(blocks[self.rank], op, deadline)

    def Alltoallv(self, send_spec, recv_spec) -> None:
        """`[buf, (counts, displacements)]` for both sides, in elements."""
        deadline = self._deadline()
        (sbuf, (scounts, sdispls)), (rbuf, (rcounts, rdispls)) = send_spec, recv_spec
        sflat, rflat = sbuf.reshape(-1), rbuf.reshape(-1)
        for peer in self._others():
            self._send(peer, sflat[sdispls[peer]:sdispls[peer] + scounts[peer]])
        me = self.rank
        rflat[rdispls[me]:rdispls[me] + rcounts[me]] = \
            sflat[sdispls[me]:sdispls[me] + scounts[me]]
        for peer in self._others():
            _fill(rflat[rdispls[peer]:rdispls[peer] + rcounts[peer]],
                  self._recv(peer, deadline), "all_to_all")

    # --- helpers -------------------------------------------------------------------
    def _ring_allreduce(self, flat: np.ndarray, op: _Op, deadline: float) -> None:
        """Reduce-scatter around the ring (rank r ends owning chunk r+1 reduced), then
        pass the reduced chunks around once more."""
        n, r = self.size, self.rank
        chunks = np.array_split(flat, n)
        right, left = (r + 1) % n, (r - 1) % n
        for step in range(n - 1):
            self._send(right, chunks[(r - step) % n])
            into = chunks[(r - step - 1) % n]
            op.fold(into, _as(into, self._recv(left, deadline), "all_reduce"))
        for step in range(n - 1):
            self._send(right, chunks[(r - step + 1) % n])
            _fill(chunks[(r - step) % n], self._recv(left, deadline), "all_reduce")

    def _fold_in_rank_order(self, mine: np.ndarray, op: _Op, deadline: float) -> np.ndarray:
        """Receive one contribution from every other rank; fold all in rank order."""
        acc = None
        for peer in range(self.size):
            x = mine if peer == self.rank else _as(mine, self._recv(peer, deadline),
                                                   "reduction")
            if acc is None:
                acc = x.copy()
            else:
                op.fold(acc, x)
        return acc

    def _others(self):
        return (p for p in range(self.size) if p != self.rank)

    def _deadline(self, timeout_s: float | None = None) -> float:
        return time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)

    def _send(self, peer: int, arr: np.ndarray) -> None:
        self.mesh.send(self.members[peer], self._coll, 0, np.ascontiguousarray(arr))

    def _recv(self, peer: int, deadline: float) -> np.ndarray:
        return self.mesh.mailbox.take(self._coll, 0, self.members[peer], deadline)[1]


def _blocks(buf: np.ndarray, n: int) -> list[np.ndarray]:
    flat = buf.reshape(-1)
    return [flat[i * (flat.size // n):(i + 1) * (flat.size // n)] for i in range(n)]


def _as(like: np.ndarray, payload: np.ndarray, what: str) -> np.ndarray:
    """A received payload as an array shaped like `like` (same byte count required)."""
    if len(payload) != like.nbytes:
        raise ValueError(f"{what}: a peer sent {len(payload)} bytes where this rank expected "
                         f"{like.nbytes} ({like.size} x {like.dtype}); every rank must pass "
                         "tensors of the same size and dtype")
    return np.frombuffer(payload, like.dtype).reshape(like.shape)


def _fill(buf: np.ndarray, payload: np.ndarray, what: str, *,
          allow_shorter: bool = False) -> None:
    """Copy a received payload into `buf`; a point-to-point message may be shorter (as in
    MPI), a collective's block must match."""
    flat = buf.reshape(-1)
    if allow_shorter and len(payload) < flat.nbytes:
        flat.view(np.uint8)[:len(payload)] = np.frombuffer(payload, np.uint8)
        return
    flat[...] = _as(flat, payload, what)
