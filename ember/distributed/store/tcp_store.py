"""torch.distributed.TCPStore: a store served by the master process over TCP.

The master runs the server (`_tcp_server.Server`: an accept thread and one thread per
client connection) and reaches its table directly; clients keep one connection each and
send one request at a time. Waiting happens in the server (on the table's condition), so
a blocked get sleeps on both sides until the key is set or its timeout passes.
"""
from __future__ import annotations

import datetime
import math
import socket
import threading
import time
import weakref

from ..errors import DistNetworkError, DistStoreError, QueueEmptyError
from . import _tcp_server as wire
from ._base import (Store, as_amount, as_key, as_keys, as_seconds, as_value,
                    check_same_length, timeout_ms)

_RETRY_S = 0.05
_SLACK_S = 30.0                 # beyond a request's own wait, before the link counts as dead
_TENANTS: dict[int, "weakref.ref"] = {}     # port -> the multi_tenant server of this process
_TENANTS_LOCK = threading.Lock()


class _Owner:
    """Keeps the server alive while any store (or clone) of the master refers to it."""

    def __init__(self, server: wire.Server):
        self.server = server
        self._finalizer = weakref.finalize(self, server.close)


class _Local:
    """The master's own link: requests served in this thread, on the table itself."""

    def __init__(self, owner: _Owner):
        self.owner = owner

    def call(self, fields, wait_s: float) -> list[bytes]:
        return wire.serve(self.owner.server.table, fields)


class _Remote:
    """A client's connection; one request at a time (a clone per thread avoids waiting
    behind another thread's blocked get, as in torch)."""

    def __init__(self, host: str, port: int, timeout_s: float):
        self.where = f"({host}, {port})"
        self.sock = _connect(host, port, timeout_s)
        self.reader = self.sock.makefile("rb")
        self.lock = threading.Lock()
        weakref.finalize(self, _close, self.reader, self.sock)

    def call(self, fields, wait_s: float) -> list[bytes]:
        with self.lock:
            try:
                self.sock.settimeout(wait_s + _SLACK_S)
                self.sock.sendall(wire.pack(fields))
                reply = wire.recv_message(self.reader)
            except OSError as err:
                raise DistNetworkError(f"TCPStore: the connection to the server {self.where} "
                                       f"failed: {err}") from None
        if reply is None:
            raise DistNetworkError(f"TCPStore: the server {self.where} closed the connection "
                                   "(did the master store's process end or drop its store?)")
        return reply


def _close(*files) -> None:
    for f in files:
        f.close()


def _connect(host: str, port: int, timeout_s: float) -> socket.socket:
    """Connect, retrying while the server is not up yet, until the store's timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            sock = socket.create_connection((host, port), timeout=max(timeout_s, 0.001))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as err:
            if time.monotonic() + _RETRY_S >= deadline:
                raise DistNetworkError(
                    f"TCPStore: the client socket has timed out after {timeout_ms(timeout_s)}"
                    f"ms while trying to connect to ({host}, {port}): {err}") from None
            time.sleep(_RETRY_S)


def _shown(keys) -> str:
    # torch names keys as its server stores them, with a leading "/"
    return ", ".join("/" + k for k in keys)


class TCPStore(Store):
    """TCPStore(host_name, port, world_size=None, is_master=False,
    timeout=timedelta(seconds=300), wait_for_workers=True, multi_tenant=False,
    master_listen_fd=None, use_libuv=True).

    The master serves the store on `port` (0: a free port, see `.port`); with a
    `world_size` and `wait_for_workers`, it returns once world_size - 1 clients with a
    world_size joined. `use_libuv` is recorded (`libuvBackend`); ember has one engine.
    """

    def __init__(self, host_name: str, port: int, world_size: int | None = None,
                 is_master: bool = False, timeout=datetime.timedelta(seconds=300),
                 wait_for_workers: bool = True, multi_tenant: bool = False,
                 master_listen_fd: int | None = None, use_libuv: bool = True):
        super().__init__()
        _check_args(host_name, port, world_size)
        self._timeout_s = as_seconds(timeout, "TCPStore")
        self._host, self._use_libuv = host_name, bool(use_libuv)
        self._world_size = world_size
        if is_master:
            self._owner = _server_for(int(port), multi_tenant, master_listen_fd)
            self._port = self._owner.server.port
            self._link = _Local(self._owner)
        else:
            self._owner, self._port = None, int(port)
            self._link = _Remote(host_name, self._port, self._timeout_s)
        if world_size is not None and (wait_for_workers or not is_master):
            self._link.call([b"join"], self._timeout_s)
        if is_master and world_size is not None and wait_for_workers:
            self._wait_for_workers(world_size)

    def _wait_for_workers(self, world_size: int) -> None:
        start = time.monotonic()
        reply = self._link.call([b"wait_workers", wire.enc(timeout_ms(self._timeout_s)),
                                 wire.enc(world_size)], self._timeout_s)
        if reply[0] != b"ok":
            took = math.ceil(time.monotonic() - start)
            raise DistStoreError(f"TCPStore: Timed out after {took} seconds waiting for "
                                 f"clients. {int(reply[1])}/{world_size} clients joined.")

    # --- attributes ------------------------------------------------------------------------
    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def libuvBackend(self) -> bool:  # noqa: N802 - torch's name
        return self._use_libuv

    # --- requests ----------------------------------------------------------------------------
    def _call(self, op: str, *fields, wait_s: float = 0.0) -> list[bytes]:
        reply = self._link.call([op.encode(), *fields], wait_s)
        if reply[0] == b"error":
            kind = wire.dec(reply[1])
            raise {"ValueError": ValueError, "TypeError": TypeError}.get(
                kind, DistStoreError)(wire.dec(reply[2]))
        return reply

    def _waiting(self, op: str, keys: list[str], seconds: float, *extra) -> list[bytes]:
        reply = self._call(op, wire.enc(timeout_ms(seconds)), *extra,
                           *(wire.enc(k) for k in keys), wait_s=seconds)
        if reply[0] == b"timeout":
            raise DistStoreError(f"TCPStore.{op}: wait timeout after {timeout_ms(seconds)}ms, "
                                 f"keys: {_shown(keys)}")
        return reply

    def set(self, key, value, /) -> None:
        self._call("set", wire.enc(as_key(key, "set")), as_value(value, "set"))

    def get(self, key, /) -> bytes:
        return self._waiting("get", [as_key(key, "get")], self._timeout_s)[1]

    def add(self, key, amount, /) -> int:
        reply = self._call("add", wire.enc(as_key(key, "add")), wire.enc(as_amount(amount, "add")))
        return int(reply[1])

    def compare_set(self, key, expected_value, desired_value, /) -> bytes:
        return self._call("compare_set", wire.enc(as_key(key, "compare_set")),
                          as_value(expected_value, "compare_set"),
                          as_value(desired_value, "compare_set"))[1]

    def wait(self, keys, timeout=None, /) -> None:
        keys = as_keys(keys, "wait")
        self._waiting("wait", keys,
                      self._timeout_s if timeout is None else as_seconds(timeout, "wait"))

    def check(self, keys, /) -> bool:
        return self._call("check", *(wire.enc(k) for k in as_keys(keys, "check")))[1] == b"1"

    def delete_key(self, key, /) -> bool:
        return self._call("delete_key", wire.enc(as_key(key, "delete_key")))[1] == b"1"

    def num_keys(self) -> int:
        return int(self._call("num_keys")[1])

    def list_keys(self) -> list[str]:
        return [wire.dec(k) for k in self._call("list_keys")[1:]]

    def append(self, key, value, /) -> None:
        self._call("append", wire.enc(as_key(key, "append")), as_value(value, "append"))

    def multi_get(self, keys, /) -> list[bytes]:
        return self._waiting("multi_get", as_keys(keys, "multi_get"), self._timeout_s)[1:]

    def multi_set(self, keys, values, /) -> None:
        keys = as_keys(keys, "multi_set")
        values = [as_value(v, "multi_set") for v in values]
        check_same_length(keys, values)
        self._call("multi_set", *(wire.enc(k) for k in keys), *values)

    def has_extended_api(self) -> bool:
        return True

    def queue_push(self, key, value, /) -> None:
        self._call("queue_push", wire.enc(as_key(key, "queue_push")),
                   as_value(value, "queue_push"))

    def queue_pop(self, key, block: bool = True) -> bytes:
        key = as_key(key, "queue_pop")
        reply = self._call("queue_pop", wire.enc(timeout_ms(self._timeout_s)),
                           b"1" if block else b"0", wire.enc(key), wait_s=self._timeout_s)
        if reply[0] == b"empty":
            raise QueueEmptyError(f"TCPStore.queue_pop({key!r}): queue is empty")
        if reply[0] == b"timeout":
            raise DistStoreError(f"TCPStore.queue_pop: wait timeout after "
                                 f"{timeout_ms(self._timeout_s)}ms, keys: {_shown([key])}")
        return reply[1]

    def queue_len(self, key, /) -> int:
        return int(self._call("queue_len", wire.enc(as_key(key, "queue_len")))[1])

    def barrier(self, key, world_size, timeout=None) -> None:
        """Count this caller in at `key` and wait until `world_size` callers did."""
        key = as_key(key, "barrier")
        seconds = self._timeout_s if timeout is None else as_seconds(timeout, "barrier")
        reply = self._call("barrier", wire.enc(timeout_ms(seconds)), wire.enc(int(world_size)),
                           wire.enc(key), wait_s=seconds)
        if reply[0] == b"timeout":
            raise DistStoreError(f"TCPStore.barrier: barrier timeout after "
                                 f"{timeout_ms(seconds)}ms, key: {key}")

    def clone(self) -> "TCPStore":
        """Another handle on the same store with its own connection (one per thread)."""
        twin = TCPStore.__new__(TCPStore)
        twin.__dict__.update(self.__dict__)
        if self._owner is None:
            twin._link = _Remote(self._host, self._port, self._timeout_s)
        return twin

    def __repr__(self) -> str:
        role = "server" if self._owner is not None else "client"
        return f"TCPStore({role}, host={self._host!r}, port={self._port})"


def _check_args(host_name, port, world_size) -> None:
    if not isinstance(host_name, str):
        raise TypeError(f"TCPStore: host_name must be a str, got {type(host_name).__name__}")
    if not hasattr(port, "__index__") or not 0 <= port.__index__() <= 65535:
        raise TypeError(f"TCPStore: port must be an int in [0, 65535], got {port!r}")
    if world_size is not None and not hasattr(world_size, "__index__"):
        raise TypeError(f"TCPStore: world_size must be an int or None, got {world_size!r}")


def _server_for(port: int, multi_tenant: bool, listen_fd) -> _Owner:
    """A new server on `port`, or with multi_tenant this process's server already there."""
    with _TENANTS_LOCK:
        if multi_tenant and port and (owner := _TENANTS.get(port, lambda: None)()):
            return owner
        try:
            owner = _Owner(wire.Server(port, listen_fd))
        except OSError as err:
            raise DistNetworkError(f"TCPStore: the server socket has failed to listen on "
                                   f"port {port}: {err.strerror or err}") from None
        if multi_tenant:
            _TENANTS[owner.server.port] = weakref.ref(owner)
        return owner
