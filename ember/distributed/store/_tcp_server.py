"""TCPStore's server: a listening socket in the master process, one thread per client
connection, the state in a `Table`.

Python's sockets and threads carry it (no gRPC: a get that waits for a key holds its
connection's thread asleep on the table's condition, and a fixed gRPC thread pool would
run out when more clients wait than it has threads; connections also tell the server
which clients are there, and the store works without grpcio installed).

Wire: a message is a big-endian u32 length, then fields, each a u32 length and bytes.
A request's first field names the operation; a reply's first field is b"ok", b"timeout",
b"empty" (an empty queue) or b"error" (then the exception's type name and message).
"""
from __future__ import annotations

import socket
import struct
import threading

from ._table import Table

_U32 = struct.Struct("!I")
INIT_KEY = "init/"                  # how many store users with a world_size joined


def pack(fields) -> bytes:
    body = b"".join(_U32.pack(len(f)) + f for f in fields)
    return _U32.pack(len(body)) + body


def unpack(body: bytes) -> list[bytes]:
    fields, pos = [], 0
    while pos < len(body):
        (n,) = _U32.unpack_from(body, pos)
        fields.append(body[pos + 4: pos + 4 + n])
        pos += 4 + n
    return fields


def recv_message(reader) -> list[bytes] | None:
    """One message's fields from a socket's buffered reader (`sock.makefile("rb")`: one
    recv call usually brings a whole small message); None when the peer closed."""
    head = reader.read(4)
    if len(head) < 4:
        return None
    n = _U32.unpack(head)[0]
    body = reader.read(n)
    return None if len(body) < n else unpack(body)


def dec(field: bytes) -> str:
    return field.decode("utf-8", "surrogateescape")


def enc(text) -> bytes:
    return str(text).encode("utf-8", "surrogateescape")


def _seconds(field: bytes) -> float:
    return int(field) / 1000.0


# --- the operations, on the table ------------------------------------------------------------
def _get(t: Table, f):
    values = t.wait_value([dec(f[1])], _seconds(f[0]), queues=True)
    return [b"timeout"] if values is None else [b"ok", values[0]]


def _wait(t: Table, f):
    return [b"ok"] if t.wait([dec(k) for k in f[1:]], _seconds(f[0])) else [b"timeout"]


def _multi_get(t: Table, f):
    values = t.wait_value([dec(k) for k in f[1:]], _seconds(f[0]), queues=True)
    return [b"timeout"] if values is None else [b"ok", *values]


def _multi_set(t: Table, f):
    n = (len(f)) // 2
    t.multi_set([dec(k) for k in f[:n]], f[n:])
    return [b"ok"]


def _queue_pop(t: Table, f):
    block = f[1] == b"1"
    value = t.queue_pop(dec(f[2]), block, _seconds(f[0]))
    if value is None:
        return [b"timeout" if block else b"empty"]
    return [b"ok", value]


def _barrier(t: Table, f):
    key, world_size = dec(f[2]), int(f[1])
    t.add(key, 1)
    reached = t.wait_counter(key, world_size, _seconds(f[0]), internal=False)
    return [b"ok"] if reached >= world_size else [b"timeout"]


def _wait_workers(t: Table, f):
    world_size = int(f[1])
    joined = t.wait_counter(INIT_KEY, world_size, _seconds(f[0]), internal=True)
    return [b"ok" if joined >= world_size else b"timeout", enc(joined)]


OPS = {
    "set": lambda t, f: (t.set(dec(f[0]), f[1]), [b"ok"])[1],
    "get": _get,
    "add": lambda t, f: [b"ok", enc(t.add(dec(f[0]), int(f[1])))],
    "compare_set": lambda t, f: [b"ok", t.compare_set(dec(f[0]), f[1], f[2])],
    "wait": _wait,
    "check": lambda t, f: [b"ok", b"1" if t.check([dec(k) for k in f]) else b"0"],
    "delete_key": lambda t, f: [b"ok", b"1" if t.delete(dec(f[0])) else b"0"],
    "num_keys": lambda t, f: [b"ok", enc(t.num_keys())],
    "list_keys": lambda t, f: [b"ok", *(enc(k) for k in t.list_keys())],
    "append": lambda t, f: (t.append(dec(f[0]), f[1]), [b"ok"])[1],
    "multi_get": _multi_get,
    "multi_set": _multi_set,
    "queue_push": lambda t, f: (t.queue_push(dec(f[0]), f[1]), [b"ok"])[1],
    "queue_pop": _queue_pop,
    "queue_len": lambda t, f: [b"ok", enc(t.queue_len(dec(f[0])))],
    "join": lambda t, f: [b"ok", enc(t.add_internal(INIT_KEY, 1))],
    "wait_workers": _wait_workers,
    "barrier": _barrier,
}


def serve(table: Table, fields: list[bytes]) -> list[bytes]:
    """One request's reply; a refused request (add on a non-integer) becomes an error
    reply and the connection stays usable."""
    op = dec(fields[0])
    handler = OPS.get(op)
    if handler is None:
        return [b"error", b"ValueError", enc(f"TCPStore server: unknown operation {op!r}")]
    try:
        return handler(table, fields[1:])
    except (ValueError, TypeError) as err:
        return [b"error", enc(type(err).__name__), enc(err)]


class Server:
    """The listening socket and its accept thread; `close()` stops both and drops every
    client connection (their next call fails, as torch's do when the master is gone)."""

    def __init__(self, port: int, listen_fd: int | None):
        self.table = Table()
        self.sock = _listening_socket(port, listen_fd)
        self.port = self.sock.getsockname()[1]
        self.conns: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.closed = False
        threading.Thread(target=self._accept, name=f"ember-tcpstore-{self.port}",
                         daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return                              # closed
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                if self.closed:
                    conn.close()
                    return
                self.conns.add(conn)
            threading.Thread(target=self._client, args=(conn,), daemon=True,
                             name=f"ember-tcpstore-{self.port}-client").start()

    def _client(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while (request := recv_message(reader)) is not None:
                conn.sendall(pack(serve(self.table, request)))
        except OSError:
            pass
        finally:
            with self.lock:
                self.conns.discard(conn)
            reader.close()
            conn.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            conns, self.conns = list(self.conns), set()
        for s in [self.sock, *conns]:
            try:
                s.shutdown(socket.SHUT_RDWR)        # wakes the threads blocked on it
            except OSError:
                pass
            s.close()
        self.table.close()      # then the requests waiting in it, whose replies now fail


def _listening_socket(port: int, listen_fd: int | None) -> socket.socket:
    if listen_fd is not None:
        sock = socket.socket(fileno=listen_fd)
        sock.listen(128)
        return sock
    # every local address, as torch's server listens (IPv4 and IPv6 where the host has both)
    if socket.has_dualstack_ipv6():
        return socket.create_server(("", port), family=socket.AF_INET6, backlog=128,
                                    reuse_port=False, dualstack_ipv6=True)
    return socket.create_server(("", port), backlog=128)

