"""torch.distributed.rpc's calls on ember's gRPC agent: init_rpc, rpc_sync, rpc_async,
remote and RRef, shutdown.

A call runs `func(*args, **kwargs)` on the target worker in one of its server threads;
its result (or exception, re-raised here with its type) comes back in the reply.
`remote` returns at once an RRef naming the owner and a fresh id; the owner stores the
result under that id, and `to_here()` fetches it (waiting for it to exist). Owners keep
values until shutdown: there is no reference counting yet.
"""
from __future__ import annotations

import itertools
import queue
import threading
from datetime import timedelta

from ...frontend.tensor import Tensor
from ...futures import Future
from .. import autograd as dist_autograd
from . import _wire
from ._agent import HANDLERS, Agent, WorkerInfo

_DEFAULT_RPC_TIMEOUT_SEC = 60.0
_agent: Agent | None = None
_rref_counter = itertools.count()


class RpcBackendOptions:
    """torch.distributed.rpc.RpcBackendOptions: rpc_timeout (seconds), init_method."""

    def __init__(self, rpc_timeout: float = _DEFAULT_RPC_TIMEOUT_SEC,
                 init_method: str | None = None):
        if isinstance(rpc_timeout, timedelta):
            rpc_timeout = rpc_timeout.total_seconds()
        self.rpc_timeout = float(rpc_timeout)
        self.init_method = init_method


class TensorPipeRpcBackendOptions(RpcBackendOptions):
    """Accepted for PyTorch compatibility (the engine is gRPC): num_worker_threads and
    device_maps are ignored."""

    def __init__(self, *, num_worker_threads: int = 16,
                 rpc_timeout: float = _DEFAULT_RPC_TIMEOUT_SEC,
                 init_method: str | None = None, device_maps=None, devices=None,
                 _transports=None, _channels=None):
        super().__init__(rpc_timeout, init_method)
        self.num_worker_threads = num_worker_threads


def _require_agent(what: str) -> Agent:
    if _agent is None:
        raise RuntimeError(f"{what}: RPC has not been initialized. Call "
                           "ember.distributed.rpc.init_rpc first.")
    return _agent


def init_rpc(name: str, backend=None, rank: int = -1, world_size: int | None = None,
             rpc_backend_options: RpcBackendOptions | None = None) -> None:
    """Start this worker's agent and meet the others (blocks until all have joined)."""
    import os
    global _agent
    if _agent is not None:
        raise RuntimeError("RPC is already initialized")
    if not isinstance(name, str) or not name:
        raise ValueError(f"init_rpc: the worker name must be a non-empty string, got {name!r}")
    rank = int(os.environ.get("RANK", -1)) if rank is None or rank < 0 else rank
    if world_size is None:
        world_size = int(os.environ.get("WORLD_SIZE", 0)) or None
    if rank < 0 or world_size is None or not 0 <= rank < world_size:
        raise ValueError(f"init_rpc: need 0 <= rank < world_size, got rank={rank}, "
                         f"world_size={world_size}")
    options = rpc_backend_options or RpcBackendOptions()
    _agent = Agent(name, rank, world_size, options.rpc_timeout, options.init_method)
    _agent.deleter = threading.Thread(target=_delete_unreferenced, args=(_agent,),
                                      name="ember-rpc-rref-deleter", daemon=True)
    _agent.deleter.start()


def shutdown(graceful: bool = True, timeout: float = 0) -> None:
    """Stop the agent; graceful: first wait for this worker's outstanding calls and for
    every worker to reach shutdown (so nobody still serves another)."""
    global _agent
    agent = _require_agent("rpc.shutdown")
    _deletions.put(None)
    agent.deleter.join(timeout=agent.rpc_timeout)
    try:
        if graceful:
            agent.wait_pending(timeout or agent.rpc_timeout)
            agent.barrier()
    finally:
        _agent = None
        agent.stop()
        with _owned_lock:          # values owned through RRefs live until shutdown
            _owned.clear()
            _deleted.clear()


def get_worker_info(worker_name: str | None = None) -> WorkerInfo:
    agent = _require_agent("get_worker_info")
    if worker_name is None:
        return agent.workers[agent.rank]
    try:
        return agent.by_name[worker_name]
    except KeyError:
        raise RuntimeError(f"Unknown destination worker {worker_name}") from None


def _rank_of(agent: Agent, to) -> int:
    if isinstance(to, WorkerInfo):
        return to.id
    if isinstance(to, str):
        return get_worker_info(to).id
    if isinstance(to, int) and to in agent.workers:
        return to
    raise RuntimeError(f"Unknown destination worker {to!r}")


def rpc_async(to, func, args=None, kwargs=None, timeout: float = -1.0) -> Future:
    """Run func(*args, **kwargs) on worker `to`; an ember.futures.Future of its result."""
    return _call(to, func, args, kwargs, timeout, blocking=False)


def _call(to, func, args, kwargs, timeout: float, blocking: bool) -> Future:
    agent = _require_agent("rpc_async")
    rank = _rank_of(agent, to)
    args, kwargs = tuple(args or ()), dict(kwargs or {})
    ctx = dist_autograd.current_context()
    message = ("call", func, args, kwargs, ctx.id if ctx is not None else None)
    if ctx is None:
        reply = agent.send(rank, message, timeout, what="rpc", blocking=blocking)
        return reply.then(lambda f: f.value()[0][0])
    tensors: list = []
    from ._wire import encode
    encode((func, args, kwargs), tensors)      # the order the callee sees them in
    sent = [t for t in tensors if t.requires_grad]
    with ctx.lock:
        ctx.workers.add(rank)
    reply = agent.send(rank, message, timeout, what="rpc", blocking=blocking)
    return reply.then(lambda f: _attach_result(ctx, rank, sent, *f.value()))


def _attach_result(ctx, rank: int, sent: list, value, tensors: list):
    result, rid = value
    if rid is None:
        return result
    outputs = [t for t, requires_grad in tensors if requires_grad]
    attached = dist_autograd._attach(ctx, rank, rid, sent, outputs)
    mapping = {id(o): a for o, a in zip(outputs, attached)}
    return _replace_tensors(result, mapping)


def _replace_tensors(obj, mapping: dict):
    if isinstance(obj, Tensor):
        return mapping.get(id(obj), obj)
    if isinstance(obj, (list, tuple)):
        items = [_replace_tensors(x, mapping) for x in obj]
        return type(obj)(items) if type(obj) in (list, tuple) else type(obj)(*items)
    if isinstance(obj, dict):
        return {k: _replace_tensors(v, mapping) for k, v in obj.items()}
    return obj


def rpc_sync(to, func, args=None, kwargs=None, timeout: float = -1.0):
    """Run func(*args, **kwargs) on worker `to` and return its result."""
    return _call(to, func, args, kwargs, timeout, blocking=True).wait()


def remote(to, func, args=None, kwargs=None, timeout: float = -1.0) -> "RRef":
    """Run func on worker `to`, keep the result there; an RRef to it, returned at once."""
    agent = _require_agent("remote")
    rank = _rank_of(agent, to)
    if dist_autograd.current_context() is not None:
        from ._wire import encode
        tensors: list = []
        encode((args, kwargs), tensors)
        if any(t.requires_grad for t in tensors):
            raise RuntimeError("remote(): arguments that require grad inside a distributed "
                               "autograd context are not supported yet (their gradients "
                               "would not flow back); use rpc_sync/rpc_async, or call "
                               "remote() outside the context")
    rref_id = (agent.rank, next(_rref_counter))
    creation = agent.send(rank, ("remote", rref_id, func, tuple(args or ()),
                                 dict(kwargs or {})), timeout, what="remote")
    rref = RRef._make(rank, rref_id)
    rref._creation = creation
    rref._deletes_on_gc = True
    return rref


def _remote_backward(info, grads: list) -> list:
    agent = _require_agent("dist_autograd.backward")
    reply = agent.send(info.rank, ("backward", info.context_id, info.rid, grads),
                       what="dist_autograd.backward").wait()
    return reply[0]


def _release_context_on(ranks, context_id: int) -> None:
    agent = _agent
    if agent is None:
        return
    for rank in ranks:
        try:
            agent.send(rank, ("release_ctx", context_id), what="release context").wait()
        except Exception:          # noqa: BLE001 - the worker is gone; nothing to release
            pass


# --- RRefs -------------------------------------------------------------------------------
class _Slot:
    """An owner's value of one RRef, possibly still being computed."""

    def __init__(self):
        self.ready = threading.Event()
        self.value = None
        self.error: BaseException | None = None

    def get(self, timeout: float):
        if not self.ready.wait(timeout):
            raise RuntimeError(f"RRef value was not created within {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.value


_owned: dict[tuple, _Slot] = {}
_deleted: set = set()          # ids whose delete arrived before their creation finished
_owned_lock = threading.Lock()
_deletions: queue.SimpleQueue = queue.SimpleQueue()


def _delete_unreferenced(agent: Agent) -> None:
    """The deleter thread: tells owners to drop values whose creating RRef is gone."""
    while True:
        item = _deletions.get()
        if item is None:
            return
        owner, rref_id = item
        try:
            if owner == agent.rank:
                _drop_owned(rref_id)
            else:
                agent.send(owner, ("delete", rref_id), what="RRef delete")
        except Exception:              # noqa: BLE001 - the owner is gone; nothing to free
            pass


def _drop_owned(rref_id: tuple) -> None:
    with _owned_lock:
        slot = _owned.get(rref_id)
        if slot is not None and slot.ready.is_set():
            del _owned[rref_id]
        else:
            _deleted.add(rref_id)      # the creation is still running or not arrived yet


def _slot(rref_id: tuple) -> _Slot:
    with _owned_lock:
        slot = _owned.get(rref_id)
        if slot is None:
            slot = _owned[rref_id] = _Slot()
        return slot


class RRef:
    """torch.distributed.rpc.RRef: a reference to a value owned by one worker."""

    def __init__(self, value, type_hint=None):
        agent = _require_agent("RRef")
        self._owner_rank, self._id = agent.rank, (agent.rank, next(_rref_counter))
        self._creation = None
        self._deletes_on_gc = True
        slot = _slot(self._id)
        slot.value = value
        slot.ready.set()

    @classmethod
    def _make(cls, owner_rank: int, rref_id: tuple) -> "RRef":
        rref = cls.__new__(cls)
        rref._owner_rank, rref._id, rref._creation = owner_rank, rref_id, None
        rref._deletes_on_gc = False
        return rref

    def __reduce__(self):
        to = _wire.destination()
        if to is not None and to != self._owner_rank:
            self._deletes_on_gc = False        # shared: its value lives until shutdown
        return (RRef._make, (self._owner_rank, self._id))

    def __del__(self):
        if getattr(self, "_deletes_on_gc", False) and _agent is not None:
            _deletions.put((self._owner_rank, self._id))

    def owner(self) -> WorkerInfo:
        return _require_agent("RRef.owner").workers[self._owner_rank]

    def owner_name(self) -> str:
        return self.owner().name

    def is_owner(self) -> bool:
        return _require_agent("RRef.is_owner").rank == self._owner_rank

    def confirmed_by_owner(self) -> bool:
        return self._creation is None or self._creation.done()

    def local_value(self):
        if not self.is_owner():
            raise RuntimeError(f"Call it on {self.owner()}: local_value() is only valid on "
                               "the RRef's owner")
        return _slot(self._id).get(_require_agent("RRef.local_value").rpc_timeout)

    def to_here(self, timeout: float = -1.0):
        agent = _require_agent("RRef.to_here")
        if self._creation is not None:
            self._creation.wait()          # re-raises the remote function's error
        if self.is_owner():
            return self.local_value()
        ctx = dist_autograd.current_context()
        message = ("fetch", self._id, ctx.id if ctx is not None else None)
        (value, rid), tensors = agent.send(self._owner_rank, message, timeout,
                                           what="RRef.to_here", blocking=True).wait()
        if ctx is None:
            return value
        with ctx.lock:
            ctx.workers.add(self._owner_rank)
        return _attach_result(ctx, self._owner_rank, [], (value, rid), tensors)

    def rpc_sync(self, timeout: float = -1.0):
        return _Proxy(self, rpc_sync, timeout)

    def rpc_async(self, timeout: float = -1.0):
        return _Proxy(self, rpc_async, timeout)

    def remote(self, timeout: float = -1.0):
        return _Proxy(self, remote, timeout)

    def __repr__(self) -> str:
        return f"RRef(owner={self._owner_rank}, id={self._id})"


class _Proxy:
    """rref.rpc_sync().method(*args) runs value.method(*args) on the owner."""

    def __init__(self, rref: RRef, call, timeout: float):
        self._rref, self._call, self._timeout = rref, call, timeout

    def __getattr__(self, name: str):
        def invoke(*args, **kwargs):
            return self._call(self._rref._owner_rank, _invoke_method,
                              (self._rref, name, args, kwargs), timeout=self._timeout)
        return invoke


def _invoke_method(rref: RRef, name: str, args: tuple, kwargs: dict):
    return getattr(rref.local_value(), name)(*args, **kwargs)


# --- handlers (run on the callee) ---------------------------------------------------------
def _serve_call(agent, message, tensors):
    _, func, args, kwargs, context_id = message
    if context_id is None:
        return func(*args, **kwargs), None
    ctx = dist_autograd._create(context_id)
    leaves = [t.requires_grad_() for t, requires_grad in tensors if requires_grad]
    previous = dist_autograd.current_context()
    dist_autograd._local.context = ctx
    try:
        from ...frontend.autograd.grad_mode import enable_grad
        with enable_grad():
            result = func(*args, **kwargs)
    finally:
        dist_autograd._local.context = previous
    from ..rpc._wire import encode
    out_tensors: list = []
    encode(result, out_tensors)
    outputs = [t for t in out_tensors if t.requires_grad]
    if not outputs:
        return result, None
    return result, ctx.record(leaves, outputs)


def _serve_remote(agent, message, tensors):
    _, rref_id, func, args, kwargs = message
    slot = _slot(rref_id)
    try:
        slot.value = func(*args, **kwargs)
    except BaseException as err:          # noqa: BLE001 - kept for to_here and re-raised
        slot.error = err
        raise
    finally:
        slot.ready.set()
        with _owned_lock:
            if rref_id in _deleted:           # its creator was collected meanwhile
                _deleted.discard(rref_id)
                _owned.pop(rref_id, None)
    return None


def _serve_delete(agent, message, tensors):
    _drop_owned(message[1])


def owned_count() -> int:
    """How many RRef values this worker owns (for tests and leak checks)."""
    with _owned_lock:
        return len(_owned)


def _serve_fetch(agent, message, tensors):
    """The owner's value; inside a context its tensors that require grad are recorded
    as outputs, so backward reaches the owner's graph (its parameters)."""
    _, rref_id, context_id = message
    value = _slot(rref_id).get(agent.rpc_timeout)
    if context_id is None:
        return value, None
    from ._wire import encode
    out_tensors: list = []
    encode(value, out_tensors)
    outputs = [t for t in out_tensors if t.requires_grad]
    if not outputs:
        return value, None
    return value, dist_autograd._create(context_id).record([], outputs)


def _serve_backward(agent, message, tensors):
    _, context_id, rid, grads = message
    ctx = dist_autograd._retrieve(context_id)
    leaves, outputs = ctx.records[rid]
    return ctx.run_backward(outputs, grads, leaves, retain_graph=True)


def _serve_release(agent, message, tensors):
    dist_autograd._release(message[1], propagate=True)


def _serve_join(agent, message, tensors):
    _, rank, name, address = message
    return agent.rendezvous.join(rank, name, address, agent.rpc_timeout)


def _serve_barrier(agent, message, tensors):
    agent.rendezvous.barrier(message[1], agent.rpc_timeout)


HANDLERS.update(call=_serve_call, remote=_serve_remote, fetch=_serve_fetch, delete=_serve_delete,
                backward=_serve_backward, release_ctx=_serve_release, join=_serve_join,
                barrier=_serve_barrier)
