"""torch.distributed.rendezvous: a URL to (store, rank, world_size).

`rendezvous(url, rank=-1, world_size=-1, **kwargs)` returns a generator whose first item
is the store the URL names: env:// and tcp://host:port give a TCPStore (rank 0 serves it
and waits for the others), file:///path a FileStore. The scheme's handler is looked up
among those registered (`register_rendezvous_handler`); asking a generator for a second
item raises, as torch's do. ember's process groups find their peers through MPI, so this
serves scripts that use stores for their own rendezvous (and init_process_group(store=)).
"""
from __future__ import annotations

import datetime
import numbers
import os
from urllib.parse import parse_qsl, urlencode, urlparse, urlunparse

from .store import FileStore, TCPStore

_HANDLERS: dict = {}
_DEFAULT_TIMEOUT_S = 1800.0          # torch's default process-group timeout


def register_rendezvous_handler(scheme: str, handler) -> None:
    """Register `handler(url, **kwargs)`, a generator of (store, rank, world_size)."""
    if scheme in _HANDLERS:
        raise RuntimeError(f"Rendezvous handler for {scheme}:// already registered")
    _HANDLERS[scheme] = handler


def rendezvous(url: str, rank: int = -1, world_size: int = -1, **kwargs):
    if not isinstance(url, str):
        raise RuntimeError(f"`url` must be a string. {type(url)}: {url}")
    for name, value in (("rank", rank), ("world_size", world_size)):
        if not isinstance(value, numbers.Integral):
            raise RuntimeError(f"`{name}` must be an integer. {value}")
    parts = urlparse(url)
    query = dict(parse_qsl(parts.query))
    if rank != -1:
        query["rank"] = str(rank)
    if world_size != -1:
        query["world_size"] = str(world_size)
    if parts.scheme not in _HANDLERS:
        raise RuntimeError(f"No rendezvous handler for {parts.scheme}://")
    return _HANDLERS[parts.scheme](urlunparse(parts._replace(query=urlencode(query))), **kwargs)


def _error(scheme: str, what: str) -> ValueError:
    return ValueError(f"Error initializing ember.distributed using {scheme}:// rendezvous: "
                      f"{what}")


def _int_param(query: dict, name: str, scheme: str, missing: str) -> int:
    if name not in query:
        raise _error(scheme, missing)
    return int(query[name])


def _timeout(kwargs: dict) -> datetime.timedelta:
    timeout = kwargs.get("timeout")
    return datetime.timedelta(seconds=_DEFAULT_TIMEOUT_S) if timeout is None else timeout


def _once(scheme: str, store, rank: int, world_size: int):
    yield store, rank, world_size
    raise RuntimeError(f"Unable to perform re-rendezvous using {scheme}:// method")


def _tcp_handler(url: str, **kwargs):
    parts = urlparse(url)
    query = dict(parse_qsl(parts.query))
    if not parts.port and parts.port != 0:
        raise _error("tcp", "port number missing")
    rank = _int_param(query, "rank", "tcp", "rank parameter missing")
    world_size = _int_param(query, "world_size", "tcp", "world size parameter missing")
    store = TCPStore(parts.hostname, parts.port, world_size, rank == 0,
                     _timeout(kwargs), multi_tenant=True)
    return _once("tcp", store, rank, world_size)


def _env_handler(url: str, **kwargs):
    query = dict(parse_qsl(urlparse(url).query))

    def setting(name: str, query_name: str | None = None) -> str:
        if query_name and query_name in query:
            return query[query_name]
        if name not in os.environ:
            raise _error("env", f"environment variable {name} expected, but not set")
        return os.environ[name]
    rank, world_size = int(setting("RANK", "rank")), int(setting("WORLD_SIZE", "world_size"))
    addr, port = setting("MASTER_ADDR"), int(setting("MASTER_PORT"))
    store = TCPStore(addr, port, world_size, rank == 0,
                     _timeout(kwargs), multi_tenant=True)
    return _once("env", store, rank, world_size)


def _file_handler(url: str, **kwargs):
    parts = urlparse(url)
    query = dict(parse_qsl(parts.query))
    path = parts.path or parts.netloc
    rank = _int_param(query, "rank", "file", "rank parameter missing")
    world_size = _int_param(query, "world_size", "file", "world size parameter missing")
    store = FileStore(path, world_size)
    if kwargs.get("timeout") is not None:
        store.set_timeout(kwargs["timeout"])
    return _once("file", store, rank, world_size)


register_rendezvous_handler("tcp", _tcp_handler)
register_rendezvous_handler("env", _env_handler)
register_rendezvous_handler("file", _file_handler)
