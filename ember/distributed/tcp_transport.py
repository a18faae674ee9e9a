"""The wire under process groups of independently started processes: a mesh of TCP sockets.

MPI cannot serve processes that were not started as one MPI job (see
docs/distributed.md, "Processes started one by one"), so those groups run on this
transport instead. It only moves bytes; the collective algorithms and the
communicator interface the engine calls live in tcp_comm.py.

- **Rendezvous** through the group's store (TCPStore, FileStore, ...): every rank
  listens on an ephemeral port and publishes `host:port`; rank i connects to every
  rank below it and accepts the ranks above it, so each pair shares one socket. Each
  init round takes a fresh number from a store counter, so a store used for several
  inits (destroy, then init again) never mixes their addresses.
- **Messages** are a header (context, tag, length) and the payload. A reader thread
  per peer drains its socket into a mailbox as messages arrive, so a sender never
  waits for its peer to post a receive: every rank may send to all others before
  receiving, and no pattern of sends can deadlock. Messages between two ranks arrive
  in the order they were sent (one TCP stream), which is all the matching needs.
- **Failures**: a peer whose connection closes (it exited, crashed, was killed) is
  marked gone; whoever waits for its messages gets `PeerGone` at once instead of
  hanging, and a wait past its deadline gets TimeoutError naming the silent rank.
"""
from __future__ import annotations

import collections
import os
import socket
import struct
import threading
import time

import numpy as np

_HEADER = struct.Struct("<QqQ")          # context, tag, payload bytes
_HELLO = struct.Struct("<8sQqq")         # magic, init round, rank, world size
_MAGIC = b"embertcp"
_INLINE_BYTES = 64 * 1024                # payloads up to this go out with their header
_HELLO_WAIT_S = 10.0


class PeerGone(ConnectionError):
    """A peer's connection closed while this rank still expected messages from it."""


class Mailbox:
    """Messages that arrived, by (context, tag), each with its sender, in arrival order."""

    def __init__(self, my_rank: int):
        self._my_rank = my_rank
        self._cond = threading.Condition()
        self._queues: dict = collections.defaultdict(collections.deque)
        self._gone: dict[int, str] = {}

    def deliver(self, context: int, tag: int, src: int, payload) -> None:
        with self._cond:
            self._queues[(context, tag)].append((src, payload))
            self._cond.notify_all()

    def peer_gone(self, src: int, reason: str) -> None:
        with self._cond:
            self._gone[src] = reason
            self._cond.notify_all()

    def gone_reason(self, src: int) -> str | None:
        with self._cond:
            return self._gone.get(src)

    def poll(self, context: int, tag: int, src):
        """The first message from `src` (a rank, or a tuple of ranks: any of them), or
        None; raises PeerGone when it can no longer come."""
        with self._cond:
            return self._take_or_raise(context, tag, src)

    def take(self, context: int, tag: int, src, deadline: float):
        """Wait for the first message from `src` (as in `poll`) until `deadline`."""
        with self._cond:
            while True:
                found = self._take_or_raise(context, tag, src)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    who = f"any of ranks {list(src)}" if isinstance(src, tuple) else \
                        f"rank {src}"
                    raise TimeoutError(f"rank {self._my_rank} received nothing from {who} "
                                       "before the deadline")
                self._cond.wait(remaining)

    def _take_or_raise(self, context: int, tag: int, src):
        any_of = src if isinstance(src, tuple) else (src,)
        queue = self._queues.get((context, tag))
        if queue:
            for i, item in enumerate(queue):
                if item[0] in any_of:
                    del queue[i]
                    if not queue:          # user tags are many; keep only pending ones
                        del self._queues[(context, tag)]
                    return item
        gone = [self._gone[r] for r in any_of if r in self._gone]
        if gone and len(gone) == len(any_of):
            raise PeerGone("; ".join(gone))
        return None


class Mesh:
    """One socket to every other rank of a group, and the mailbox their readers fill."""

    def __init__(self, rank: int, size: int, sockets: dict[int, socket.socket]):
        self.rank, self.size = rank, size
        self.mailbox = Mailbox(rank)
        self._sockets = sockets
        self._send_locks = {peer: threading.Lock() for peer in sockets}
        self._closed = False
        for peer, sock in sockets.items():
            threading.Thread(target=self._read_loop, args=(peer, sock), daemon=True,
                             name=f"ember-tcp-reader-{peer}").start()

    def send(self, peer: int, context: int, tag: int, data: np.ndarray) -> None:
        """Send a contiguous array's bytes; returns once the kernel has taken them."""
        raw = data.reshape(-1).view(np.uint8)
        if peer == self.rank:
            self.mailbox.deliver(context, tag, peer, raw.copy())
            return
        sock = self._sockets.get(peer)
        if sock is None or self._closed:
            raise PeerGone(f"rank {self.rank} has no open connection to rank {peer}")
        header = _HEADER.pack(context, tag, raw.nbytes)
        try:
            with self._send_locks[peer]:
                if raw.nbytes <= _INLINE_BYTES:
                    sock.sendall(header + raw.tobytes())
                else:
                    sock.sendall(header)
                    sock.sendall(raw)
        except OSError as err:
            raise PeerGone(self.mailbox.gone_reason(peer) or
                           f"sending to rank {peer} failed: {err}") from err

    def close(self) -> None:
        """Stop sending; each reader closes its socket when the peer stops too (EOF), so
        bytes still in flight toward this rank are not turned into a reset."""
        if self._closed:
            return
        self._closed = True
        for sock in self._sockets.values():
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass        # the peer closed first: nothing left to flush toward it

    def _read_loop(self, peer: int, sock: socket.socket) -> None:
        header = bytearray(_HEADER.size)
        reason = f"rank {peer} closed its connection (it exited, crashed or destroyed " \
                 "its process group)"
        try:
            while _recv_exactly(sock, header):
                context, tag, nbytes = _HEADER.unpack(header)
                payload = np.empty(nbytes, np.uint8)      # not zero-filled, unlike bytearray
                if nbytes and not _recv_exactly(sock, payload):
                    reason = f"rank {peer}'s connection closed in the middle of a message"
                    break
                self.mailbox.deliver(context, tag, peer, payload)
        except OSError as err:
            reason = f"the connection to rank {peer} was lost ({err}): it exited, crashed " \
                     "or was killed"
        self.mailbox.peer_gone(peer, reason)
        sock.close()


def _recv_exactly(sock: socket.socket, buf) -> bool:
    """Fill `buf`; False on a clean end of stream before its first byte."""
    view, got = memoryview(buf), 0
    while got < len(buf):
        n = sock.recv_into(view[got:])
        if n == 0:
            if got == 0:
                return False
            raise ConnectionError(f"connection closed after {got} of {len(buf)} bytes")
        got += n
    return True


# --- rendezvous ------------------------------------------------------------------------
def connect_mesh(store, rank: int, size: int, timeout_s: float,
                 master_host: str | None = None) -> Mesh:
    """Connect the `size` ranks that call this with the same store into a Mesh."""
    if size == 1:
        return Mesh(0, 1, {})
    round_no = (store.add("round", 1) - 1) // size
    prefix = f"round{round_no}/"
    listener = socket.create_server(("", 0), backlog=size)
    try:
        port = listener.getsockname()[1]
        store.set(f"{prefix}addr{rank}", f"{_advertised_host(master_host)}:{port}")
        # every lookup happens before the first connect, so once rank 0 has heard from
        # all (and may go on and exit, ending a TCPStore it serves), nobody needs the store
        lower = [store.get(f"{prefix}addr{peer}").decode() for peer in range(rank)]
        deadline = time.monotonic() + timeout_s
        sockets = {peer: _connect(addr, round_no, rank, size, peer, deadline)
                   for peer, addr in enumerate(lower)}
        sockets.update(_accept(listener, round_no, rank, size, deadline))
    finally:
        listener.close()
    return Mesh(rank, size, sockets)


def _advertised_host(master_host: str | None) -> str:
    """The address peers should dial: EMBER_TCP_HOST, else the interface that routes
    to the store's host (one host: loopback), else this host's name's address, else
    loopback."""
    chosen = os.environ.get("EMBER_TCP_HOST")
    if chosen:
        return chosen
    if master_host:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((master_host, 9))      # no packet is sent for UDP
                return probe.getsockname()[0]
        except OSError:
            pass        # no route to the store's host from here: try this host's name
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


def _tune(sock: socket.socket) -> socket.socket:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(None)
    return sock


def _connect(addr: str, round_no: int, rank: int, size: int, peer: int,
             deadline: float) -> socket.socket:
    host, port = addr.rsplit(":", 1)
    while True:
        try:
            sock = socket.create_connection((host, int(port)),
                                            timeout=max(deadline - time.monotonic(), 0.1))
            break
        except OSError as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"rank {rank} could not connect to rank {peer} at "
                                   f"{addr}: {err}") from err
            time.sleep(0.05)
    sock.sendall(_HELLO.pack(_MAGIC, round_no, rank, size))
    return _tune(sock)


def _accept(listener: socket.socket, round_no: int, rank: int, size: int,
            deadline: float) -> dict[int, socket.socket]:
    """Accept a connection from every rank above `rank`, each introducing itself."""
    accepted: dict[int, socket.socket] = {}
    while len(accepted) < size - rank - 1:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            missing = sorted(set(range(rank + 1, size)) - set(accepted))
            raise TimeoutError(f"rank {rank} waited for ranks {missing} to connect and timed "
                               "out")
        listener.settimeout(remaining)
        try:
            sock, _ = listener.accept()
        except socket.timeout:
            continue
        hello = bytearray(_HELLO.size)
        # a peer says hello right after connecting; a silent stray must not hold us long
        sock.settimeout(min(max(deadline - time.monotonic(), 0.1), _HELLO_WAIT_S))
        try:
            ok = _recv_exactly(sock, hello)
        except OSError:
            ok = False
        magic, their_round, their_rank, their_size = _HELLO.unpack(hello) if ok else \
            (b"", -1, -1, -1)
        if magic != _MAGIC or their_round != round_no:
            sock.close()          # a stray connection, or a process of another init round
            continue
        if their_size != size or not rank < their_rank < size or their_rank in accepted:
            sock.close()
            raise ValueError(f"rank {rank}: a process connected as rank {their_rank} of "
                             f"{their_size}, but this group has world_size {size}; every "
                             "process must pass the same world_size and a distinct rank")
        accepted[their_rank] = _tune(sock)
    return accepted
