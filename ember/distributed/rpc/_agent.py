"""The RPC agent of one worker: a gRPC server, channels to the peers, rendezvous.

Every message is one unary gRPC call of a generic raw-bytes method (no .proto code):
the request and the reply are `_wire` messages. A request is a tuple `(kind, ...)`;
handlers for each kind are registered by the modules above (rpc calls, RRefs,
distributed autograd). A reply is `("ok", value)` or `("err", exception, text)`.

Rendezvous: through the MPI process group when one is initialized (all_gather_object of
every worker's name and address), else rank 0 serves the worker table on
MASTER_ADDR:MASTER_PORT and the others join it there.

Every call carries a deadline (the agent's rpc_timeout or the call's own timeout), so a
dead or hung peer turns into an error, never a hang; gRPC reports an unreachable peer as
UNAVAILABLE at once.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import traceback
from concurrent import futures as _cf

from ...futures import Future
from . import _wire

_SERVICE = "ember.rpc.Agent"
_METHOD = f"/{_SERVICE}/Call"
_MAX_MESSAGE = 2 ** 31 - 1
_OPTIONS = [("grpc.max_send_message_length", _MAX_MESSAGE),
            ("grpc.max_receive_message_length", _MAX_MESSAGE),
            ("grpc.so_reuseport", 0)]
_SERVER_THREADS = 32

# kind -> handler(agent, request tuple, tensors) -> value; filled by rpc/api.py etc.
HANDLERS: dict = {}


class WorkerInfo:
    """torch.distributed.rpc.WorkerInfo: a worker's name and id (its rank)."""

    __slots__ = ("name", "id")

    def __init__(self, name: str, id: int):  # noqa: A002 - PyTorch's field name
        self.name, self.id = name, id

    def __repr__(self) -> str:
        return f"WorkerInfo(id={self.id}, name={self.name})"

    def __eq__(self, other) -> bool:
        return isinstance(other, WorkerInfo) and (self.name, self.id) == (other.name, other.id)

    def __hash__(self) -> int:
        return hash((self.name, self.id))

    def __reduce__(self):
        return (WorkerInfo, (self.name, self.id))


def _grpc():
    try:
        import grpc
    except ImportError:
        raise RuntimeError("ember.distributed.rpc needs grpcio: pip install "
                           "'ember[distributed]'") from None
    return grpc


class _Rendezvous:
    """Rank 0's worker table when rendezvous goes through MASTER_ADDR:MASTER_PORT."""

    def __init__(self, world_size: int):
        self.world_size = world_size
        self.workers: dict[int, tuple[str, str]] = {}
        self.arrived: set[int] = set()       # ranks at the shutdown barrier
        self.cond = threading.Condition()

    def join(self, rank: int, name: str, address: str, timeout: float) -> dict:
        with self.cond:
            for other_rank, (other_name, _) in self.workers.items():
                if other_name == name and other_rank != rank:
                    raise RuntimeError(f"init_rpc: worker name {name!r} is used by rank "
                                       f"{other_rank} and rank {rank}")
            self.workers[rank] = (name, address)
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: len(self.workers) >= self.world_size, timeout):
                missing = sorted(set(range(self.world_size)) - set(self.workers))
                raise RuntimeError(f"init_rpc: ranks {missing} did not join within "
                                   f"{timeout:.0f} s")
            return dict(self.workers)

    def barrier(self, rank: int, timeout: float) -> None:
        with self.cond:
            self.arrived.add(rank)
            self.cond.notify_all()
            if not self.cond.wait_for(lambda: len(self.arrived) >= self.world_size, timeout):
                missing = sorted(set(range(self.world_size)) - self.arrived)
                raise RuntimeError(f"rpc.shutdown: ranks {missing} did not reach shutdown "
                                   f"within {timeout:.0f} s")


class Agent:
    """One worker's RPC endpoint (torch's TensorPipeAgent, on gRPC)."""

    def __init__(self, name: str, rank: int, world_size: int, rpc_timeout: float,
                 init_method: str | None):
        grpc = _grpc()
        self.grpc = grpc
        self.name, self.rank, self.world_size = name, rank, world_size
        self.rpc_timeout = rpc_timeout
        self.rendezvous = _Rendezvous(world_size) if rank == 0 else None
        self._pending: set = set()
        self._pending_lock = threading.Lock()
        self._channels: dict[int, object] = {}
        self._stubs: dict[int, object] = {}
        self._server = grpc.server(_cf.ThreadPoolExecutor(max_workers=_SERVER_THREADS,
                                                          thread_name_prefix="ember-rpc"),
                                   options=_OPTIONS)
        handler = grpc.method_handlers_generic_handler(_SERVICE, {
            "Call": grpc.unary_unary_rpc_method_handler(self._serve)})
        self._server.add_generic_rpc_handlers((handler,))
        self._use_mpi = _mpi_group_initialized()
        master_addr, master_port = _master_endpoint(init_method)
        if rank == 0 and not self._use_mpi:
            try:
                port = self._server.add_insecure_port(f"0.0.0.0:{master_port}")
            except RuntimeError:
                port = 0
            if port == 0:
                from ..errors import DistNetworkError
                raise DistNetworkError(f"init_rpc: rank 0 could not listen on MASTER_PORT "
                                       f"{master_port}: the port is in use (pick another "
                                       "with MASTER_PORT or the launcher's --master-port)")
        else:
            port = self._server.add_insecure_port("0.0.0.0:0")
        self._server.start()
        self.address = f"{_advertised_host(master_addr)}:{port}"
        try:
            table = self._rendezvous(master_addr, master_port)
        except BaseException:
            self._server.stop(0)               # a failed init_rpc leaves nothing listening
            raise
        self.workers = {r: WorkerInfo(n, r) for r, (n, _) in table.items()}
        self.addresses = {r: a for r, (_, a) in table.items()}
        self.by_name = {info.name: info for info in self.workers.values()}

    # --- rendezvous ------------------------------------------------------------------
    def _rendezvous(self, master_addr: str, master_port: int) -> dict:
        if self._use_mpi:
            from ..object_collectives import all_gather_object
            gathered = [None] * self.world_size
            all_gather_object(gathered, (self.rank, self.name, self.address))
            table = {r: (n, a) for r, n, a in gathered}
            names = [n for n, _ in table.values()]
            if len(set(names)) != len(names) or len(table) != self.world_size:
                raise RuntimeError(f"init_rpc: worker names and ranks must be unique, got "
                                   f"{sorted(table.items())}")
            return table
        if self.rank == 0:
            return self.rendezvous.join(0, self.name, self.address, self.rpc_timeout)
        master = self._channel_to(f"{master_addr}:{master_port}")
        call = master.unary_unary(_METHOD)
        request = _wire.encode(("join", self.rank, self.name, self.address))
        # wait_for_ready: rank 0 may not be listening yet; the deadline bounds the wait.
        try:
            reply = call(request, timeout=self.rpc_timeout, wait_for_ready=True)
        except self.grpc.RpcError as err:
            from ..errors import DistNetworkError
            raise DistNetworkError(
                f"init_rpc: rank 0 at {master_addr}:{master_port} (MASTER_ADDR:MASTER_PORT) "
                f"did not complete the rendezvous within {self.rpc_timeout:.0f} s "
                f"(gRPC {err.code().name}: {err.details()})") from None
        finally:
            master.close()
        return self._unpack(reply, "init_rpc")[0]

    def _channel_to(self, address: str):
        return self.grpc.insecure_channel(address, options=_OPTIONS)

    # --- serving ---------------------------------------------------------------------
    def _serve(self, request: bytes, context) -> bytes:
        try:
            message, tensors = _wire.decode(request)
            value = HANDLERS[message[0]](self, message, tensors)
            return _wire.encode(("ok", value), to=_wire.UNKNOWN_PEER)
        except BaseException as err:           # noqa: BLE001 - sent back to the caller
            text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            try:
                return _wire.encode(("err", err, text), to=_wire.UNKNOWN_PEER)
            except Exception:                  # noqa: BLE001 - the exception won't pickle
                return _wire.encode(("err", None, f"{type(err).__name__}: {err}\n{text}"))

    # --- calling ---------------------------------------------------------------------
    def _stub(self, rank: int):
        stub = self._stubs.get(rank)
        if stub is None:
            with self._pending_lock:           # one channel per peer, even when racing
                stub = self._stubs.get(rank)
                if stub is None:
                    channel = self._channel_to(self.addresses[rank])
                    self._channels[rank] = channel
                    stub = self._stubs[rank] = channel.unary_unary(_METHOD)
        return stub

    def send(self, rank: int, message: tuple, timeout: float | None = None,
             what: str = "rpc", blocking: bool = False) -> Future:
        """Send `message` to worker `rank`; a Future of the reply's (value, tensors).
        blocking: make the call in this thread and return a completed Future (no hand-off
        between gRPC's callback thread and the caller: about half the small-call latency)."""
        timeout = self.rpc_timeout if timeout is None or timeout <= 0 else timeout
        peer = self.workers[rank].name
        if blocking:
            return self._send_blocking(rank, message, timeout, what, peer)
        call = self._stub(rank).future(_wire.encode(message, to=rank), timeout=timeout)
        future = Future()
        future._keepalive = message          # RRefs sent to their owner live until done
        finished = threading.Event()
        future._waiter = lambda: (finished.wait(), future.value())[1]
        with self._pending_lock:
            self._pending.add(future)

        def done(grpc_future):
            try:
                try:
                    reply = grpc_future.result()
                except self.grpc.RpcError as err:
                    raise _transport_error(self.grpc, err, what, peer, timeout) from None
                result = self._unpack(reply, what, peer, timeout)
            except BaseException as err:       # noqa: BLE001 - handed to the waiter
                future.set_exception(err)
            else:
                future.set_result(result)
            finally:
                future._keepalive = None
                finished.set()
                with self._pending_lock:
                    self._pending.discard(future)

        call.add_done_callback(done)
        return future

    def _send_blocking(self, rank: int, message: tuple, timeout: float, what: str,
                       peer: str) -> Future:
        future = Future()
        try:
            try:
                reply = self._stub(rank)(_wire.encode(message, to=rank), timeout=timeout)
            except self.grpc.RpcError as err:
                raise _transport_error(self.grpc, err, what, peer, timeout) from None
            result = self._unpack(reply, what, peer, timeout)
        except BaseException as err:           # noqa: BLE001 - raised by wait()
            future.set_exception(err)
        else:
            future.set_result(result)
        return future

    def _unpack(self, reply_or_error, what: str, peer: str = "rank 0",
                timeout: float | None = None):
        return unpack_reply(self.grpc, reply_or_error, what, peer, timeout)

    def wait_pending(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with self._pending_lock:
                pending = list(self._pending)
            if not pending or time.monotonic() > deadline:
                return
            for f in pending:
                try:
                    f.wait()
                except BaseException:          # noqa: BLE001 - the caller sees it
                    pass

    def barrier(self) -> None:
        """Every worker arrives (through rank 0) before any leaves."""
        if self.rank == 0:
            self.rendezvous.barrier(0, self.rpc_timeout)
        else:
            self.send(0, ("barrier", self.rank), what="rpc.shutdown").wait()

    def stop(self) -> None:
        self._server.stop(grace=2).wait()
        for channel in self._channels.values():
            channel.close()


def unpack_reply(grpc, reply_or_error, what: str, peer: str, timeout: float | None):
    """A reply's value, or the remote exception / transport failure raised here."""
    if isinstance(reply_or_error, BaseException):
        raise reply_or_error
    (status, *rest), tensors = _wire.decode(reply_or_error)
    if status == "ok":
        return rest[0], tensors
    err, text = rest
    if err is None:
        raise RuntimeError(f"{what} on worker {peer!r} failed with\n{text}")
    if hasattr(err, "add_note"):
        err.add_note(f"(raised on worker {peer!r}; remote traceback:)\n{text.rstrip()}")
    raise err


def _transport_error(grpc, err, what: str, peer: str, timeout: float) -> Exception:
    from ..errors import DistBackendError, DistNetworkError
    code = err.code()
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DistBackendError(f"{what} to worker {peer!r}: RPC ran for more than set timeout "
                                f"({int(timeout * 1000)} ms) and will now be marked with an "
                                "error")
    if code == grpc.StatusCode.UNAVAILABLE:
        return DistNetworkError(f"{what} to worker {peer!r} failed: the worker is unreachable "
                                f"(it may have exited or crashed): {err.details()}")
    return DistBackendError(f"{what} to worker {peer!r} failed: gRPC {code.name}: "
                            f"{err.details()}")


def _mpi_group_initialized() -> bool:
    from .. import c10d
    return c10d.is_initialized()


def _master_endpoint(init_method: str | None) -> tuple[str, int]:
    if init_method and init_method.startswith("tcp://"):
        host, _, port = init_method[len("tcp://"):].rpartition(":")
        return host, int(port)
    host = os.environ.get("MASTER_ADDR", "127.0.0.1")
    port = os.environ.get("MASTER_PORT")
    if port is None and not _mpi_group_initialized():
        raise ValueError("init_rpc: MASTER_PORT is not set; set MASTER_ADDR/MASTER_PORT, pass "
                         "init_method='tcp://host:port' in rpc_backend_options, or initialize "
                         "a process group first")
    return host, int(port or 0)


def _advertised_host(master_addr: str) -> str:
    explicit = os.environ.get("EMBER_RPC_ADDR")
    if explicit:
        return explicit
    if master_addr in ("127.0.0.1", "localhost", "::1"):
        return "127.0.0.1"
    return socket.gethostbyname(socket.gethostname())
