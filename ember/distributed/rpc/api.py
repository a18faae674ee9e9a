"""torch.distributed.rpc's calls on ember's gRPC agent: init_rpc, rpc_sync, rpc_async,
remote and RRef, shutdown.

A call runs `func(*args, **kwargs)` on the target worker in one of its server threads;
its result (or exception, re-raised here with its type) comes back in the reply.
`remote` returns at once an RRef naming the owner and a fresh id; the owner stores the
result under that id, and `to_here()` fetches it (waiting for it to exist). The owner
counts the live references (forks) of each value on every worker and frees it when
the last one is collected (see the RRefs section). A function decorated with
`rpc.functions.async_execution` returns a Future; its callee's server thread returns
at once and the result follows in a message of its own when the Future completes.
"""
from __future__ import annotations

import functools
import itertools
import queue
import threading
from datetime import timedelta

from ...frontend.tensor import Tensor
from ...futures import Future
from .. import autograd as dist_autograd
from . import _wire
from ._agent import HANDLERS, Agent, WorkerInfo
from .functions import async_execution

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
    try:
        if graceful:
            agent.wait_pending(timeout or agent.rpc_timeout)
            agent.barrier()
    finally:
        # after the barrier: the others' calls until then may still drop forks here
        _deletions.put(None)
        agent.deleter.join(timeout=agent.rpc_timeout)
        _agent = None
        agent.stop()
        with _owned_lock:          # what is still referenced goes with the agent
            _owned.clear()
            _early_drops.clear()


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
    if _is_async(func):
        return _call_async_execution(agent, rank, func, args, kwargs, timeout)
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
    rref_id, fork = (agent.rank, next(_rref_counter)), _new_fork(agent)
    creation = agent.send(rank, ("remote", rref_id, fork, func, tuple(args or ()),
                                 dict(kwargs or {})), timeout, what="remote")
    rref = RRef._make(rank, rref_id, fork)
    rref._creation = creation
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
# Reference counting (torch.distributed.rpc's fork protocol, simplified): every RRef
# object on every worker, the owner's included, is one "fork" with an id of its own. The
# owner keeps, with each value, the set of its live forks and frees the value when the
# set is empty (and the value exists). A fork is counted before anyone can drop the
# reference it was made from:
# - remote(): the creation message carries the caller's fork;
# - an RRef sent to its owner: the owner counts the new fork when the message arrives
#   (the sender's RRef, held by the pending call, lives until the reply);
# - an RRef sent to any other worker, or in a reply: the sender has the owner count the
#   new fork (one round trip, or nothing when the sender is the owner) before the
#   message leaves.
# A collected RRef's fork is dropped through the deleter thread (a __del__ may run
# anywhere, locks held). A drop that overtakes its fork's creation message is kept and
# cancels the fork when it arrives.
class _Slot:
    """An owner's value of one RRef, possibly still being computed, and its live forks."""

    def __init__(self):
        self.ready = threading.Event()
        self.value = None
        self.error: BaseException | None = None
        self.forks: set = set()

    def get(self, timeout: float):
        if not self.ready.wait(timeout):
            raise RuntimeError(f"RRef value was not created within {timeout:.0f} s")
        if self.error is not None:
            raise self.error
        return self.value


_owned: dict[tuple, _Slot] = {}
_early_drops: dict[tuple, set] = {}    # forks dropped before the owner counted them
_owned_lock = threading.Lock()
_deletions: queue.SimpleQueue = queue.SimpleQueue()
_fork_counter = itertools.count()


def _new_fork(agent: Agent) -> tuple:
    return (agent.rank, next(_fork_counter))


def _delete_unreferenced(agent: Agent) -> None:
    """The deleter thread: drops the forks of collected RRefs on their owners."""
    while True:
        item = _deletions.get()
        if item is None:
            return
        owner, rref_id, fork = item
        try:
            if owner == agent.rank:
                _drop_fork(rref_id, fork)
            else:
                agent.send(owner, ("delete", rref_id, fork), what="RRef delete")
        except Exception:              # noqa: BLE001 - the owner is gone; nothing to free
            pass


def _add_fork(rref_id: tuple, fork: tuple) -> None:
    """On the owner: one more live reference to the value `rref_id`."""
    with _owned_lock:
        early = _early_drops.get(rref_id)
        if early is not None and fork in early:      # it was dropped already
            early.discard(fork)
            if not early:
                del _early_drops[rref_id]
            return
        slot = _owned.get(rref_id)
        if slot is None:
            slot = _owned[rref_id] = _Slot()
        slot.forks.add(fork)


def _drop_fork(rref_id: tuple, fork: tuple) -> None:
    """On the owner: a reference is gone; the last one frees the (created) value."""
    with _owned_lock:
        slot = _owned.get(rref_id)
        if slot is None or fork not in slot.forks:     # overtook its fork's creation
            _early_drops.setdefault(rref_id, set()).add(fork)
            return
        slot.forks.discard(fork)
        if not slot.forks and slot.ready.is_set():
            del _owned[rref_id]


def _free_if_unreferenced(rref_id: tuple) -> None:
    with _owned_lock:
        slot = _owned.get(rref_id)
        if slot is not None and not slot.forks and slot.ready.is_set():
            del _owned[rref_id]


def _slot(rref_id: tuple) -> _Slot:
    with _owned_lock:
        slot = _owned.get(rref_id)
        if slot is None:
            slot = _owned[rref_id] = _Slot()
        return slot


def _rref_forks(rref_id: tuple) -> int:
    """How many live references the owner counts for `rref_id` (0: freed or unknown)."""
    with _owned_lock:
        slot = _owned.get(rref_id)
        return 0 if slot is None else len(slot.forks)


class RRef:
    """torch.distributed.rpc.RRef: a reference to a value owned by one worker."""

    def __init__(self, value, type_hint=None):
        agent = _require_agent("RRef")
        self._owner_rank, self._id = agent.rank, (agent.rank, next(_rref_counter))
        self._creation, self._fork = None, _new_fork(agent)
        slot = _slot(self._id)
        slot.value = value
        slot.ready.set()
        _add_fork(self._id, self._fork)

    @classmethod
    def _make(cls, owner_rank: int, rref_id: tuple, fork: tuple | None = None) -> "RRef":
        rref = cls.__new__(cls)
        rref._owner_rank, rref._id, rref._creation, rref._fork = owner_rank, rref_id, None, fork
        return rref

    @classmethod
    def _arrive(cls, owner_rank: int, rref_id: tuple, fork: tuple, counted: bool) -> "RRef":
        """An RRef unpickled from a message: its fork, counted by the owner already or
        (sent to the owner) counted now."""
        if not counted:
            _add_fork(rref_id, fork)
        return cls._make(owner_rank, rref_id, fork)

    def __reduce__(self):
        to = _wire.destination()
        if to is None:                       # only scanned for its tensors: not shared
            return (RRef._make, (self._owner_rank, self._id))
        agent = _require_agent("RRef pickling")
        fork = _new_fork(agent)
        if to == self._owner_rank:
            return (RRef._arrive, (self._owner_rank, self._id, fork, False))
        if agent.rank == self._owner_rank:
            _add_fork(self._id, fork)
        else:
            agent.send(self._owner_rank, ("fork", self._id, fork), what="RRef fork",
                       blocking=True).wait()
        return (RRef._arrive, (self._owner_rank, self._id, fork, True))

    def __del__(self):
        fork = getattr(self, "_fork", None)
        if fork is not None and _agent is not None:
            _deletions.put((self._owner_rank, self._id, fork))

    def owner(self) -> WorkerInfo:
        return _require_agent("RRef.owner").workers[self._owner_rank]

    def owner_name(self) -> str:
        return self.owner().name

    def is_owner(self) -> bool:
        return _require_agent("RRef.is_owner").rank == self._owner_rank

    def confirmed_by_owner(self) -> bool:
        """True once the owner knows this reference (at once for forks: the owner
        counted them before they were sent; for remote(), once its creation returned)."""
        return self._creation is None or self._creation.done()

    def local_value(self):
        if not self.is_owner():
            raise RuntimeError(f"Call it on {self.owner()}: local_value() is only valid on "
                               "the RRef's owner")
        return _slot(self._id).get(_require_agent("RRef.local_value").rpc_timeout)

    def _get_type(self, timeout: float = -1.0) -> type:
        """The value's type (asked of the owner once, then kept), as PyTorch's RRef
        proxies use it to see whether a method is an @async_execution one."""
        kept = getattr(self, "_type", None)
        if kept is None:
            kept = _type_on_owner(self) if self.is_owner() else \
                rpc_sync(self._owner_rank, _type_on_owner, args=(self,), timeout=timeout)
            self._type = kept
        return kept

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
    """rref.rpc_sync().method(*args) runs value.method(*args) on the owner; a method
    decorated with @async_execution runs as one (its Future's value is the result)."""

    def __init__(self, rref: RRef, call, timeout: float):
        self._rref, self._call, self._timeout = rref, call, timeout

    def __getattr__(self, name: str):
        method = getattr(self._rref._get_type(), name, None)
        target = _invoke_async_method if _is_async(method) else _invoke_method

        def invoke(*args, **kwargs):
            return self._call(self._rref._owner_rank, target,
                              (self._rref, name, args, kwargs), timeout=self._timeout)
        return invoke


def _invoke_method(rref: RRef, name: str, args: tuple, kwargs: dict):
    return getattr(rref.local_value(), name)(*args, **kwargs)


def _type_on_owner(rref: RRef) -> type:
    return type(rref.local_value())


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
    _, rref_id, fork, func, args, kwargs = message
    _add_fork(rref_id, fork)
    slot = _slot(rref_id)
    if _is_async(func):                    # the value comes with the returned Future
        try:
            fut = _async_result(func, args, kwargs)
        except BaseException as err:      # noqa: BLE001 - kept for to_here and re-raised
            _fill_slot(rref_id, slot, functools.partial(_reraise, err))
            raise
        fut.add_done_callback(lambda done: _fill_slot(rref_id, slot, done.value))
        return None
    _fill_slot(rref_id, slot, lambda: func(*args, **kwargs))
    if slot.error is not None:
        raise slot.error
    return None


def _fill_slot(rref_id: tuple, slot: _Slot, compute) -> None:
    try:
        slot.value = compute()
    except BaseException as err:          # noqa: BLE001 - kept for to_here and re-raised
        slot.error = err
    finally:
        slot.ready.set()
        _free_if_unreferenced(rref_id)    # every reference went while it was computed


def _reraise(err: BaseException):
    raise err


def _serve_fork(agent, message, tensors):
    _add_fork(message[1], message[2])


def _serve_delete(agent, message, tensors):
    _drop_fork(message[1], message[2])


def owned_count() -> int:
    """How many RRef values this worker owns (for tests and leak checks)."""
    with _owned_lock:
        return len(_owned)


# --- async_execution ---------------------------------------------------------------------
# The caller of an @async_execution function sends ("call_async", call id, ...); the
# callee starts the function in a server thread and replies at once; when the returned
# Future completes, the callee sends ("async_result", call id, outcome) to the caller,
# whose server completes the caller's Future. The caller's own deadline bounds the wait.
_async_calls: dict[tuple, tuple] = {}        # call id -> (Future, its Event, its Timer)
_async_lock = threading.Lock()
_async_counter = itertools.count()


def _is_async(func) -> bool:
    return getattr(func, "_wrapped_async_rpc_function", None) is not None


def _async_result(func, args, kwargs) -> Future:
    fut = func(*args, **kwargs)
    if not isinstance(fut, Future):
        raise TypeError(f"{getattr(func, '__qualname__', func)} is decorated with "
                        "@rpc.functions.async_execution, so it must return a Future; got "
                        f"{type(fut).__name__}")
    return fut


def _call_async_execution(agent: Agent, rank: int, func, args, kwargs,
                          timeout: float) -> Future:
    if dist_autograd.current_context() is not None:
        raise RuntimeError("rpc to an @async_execution function inside a distributed "
                           "autograd context is not supported yet (its gradients would not "
                           "flow back); call it outside the context")
    timeout = agent.rpc_timeout if timeout is None or timeout <= 0 else timeout
    call_id = (agent.rank, next(_async_counter))
    finished = threading.Event()
    future = Future(waiter=lambda: (finished.wait(), future.value())[1])
    peer = agent.workers[rank].name
    timer = threading.Timer(timeout, _async_expired, args=(call_id, peer, timeout))
    timer.daemon = True
    with _async_lock:
        _async_calls[call_id] = (future, finished, timer)
    with agent._pending_lock:
        agent._pending.add(future)
    timer.start()
    started = agent.send(rank, ("call_async", call_id, func, args, kwargs), timeout,
                         what="rpc")
    started.add_done_callback(
        lambda f: f._error is not None and _finish_async(call_id, error=f._error))
    return future


def _finish_async(call_id: tuple, value=None, error: BaseException | None = None) -> None:
    with _async_lock:
        entry = _async_calls.pop(call_id, None)
    if entry is None:                      # finished already (or timed out)
        return
    future, finished, timer = entry
    timer.cancel()
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)
    finished.set()
    agent = _agent
    if agent is not None:
        with agent._pending_lock:
            agent._pending.discard(future)


def _async_expired(call_id: tuple, peer: str, timeout: float) -> None:
    from ..errors import DistBackendError
    _finish_async(call_id, error=DistBackendError(
        f"rpc to worker {peer!r}: RPC ran for more than set timeout ({int(timeout * 1000)} "
        "ms) and will now be marked with an error (the @async_execution function's Future "
        "did not complete)"))


def _serve_call_async(agent, message, tensors):
    _, call_id, func, args, kwargs = message
    caller = call_id[0]

    def send_outcome(fut: Future) -> None:
        try:
            outcome = ("ok", fut.value())
        except BaseException as err:       # noqa: BLE001 - re-raised on the caller
            import traceback
            text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
            outcome = ("err", err, text)
        try:
            agent.send(caller, ("async_result", call_id, outcome),
                       what="async_execution result")
        except Exception:                  # noqa: BLE001 - the caller is gone or stopping
            pass

    _async_result(func, args, kwargs).add_done_callback(send_outcome)


def _serve_async_result(agent, message, tensors):
    _, call_id, outcome = message
    if outcome[0] == "ok":
        _finish_async(call_id, value=outcome[1])
        return
    err, text = outcome[1], outcome[2]
    if hasattr(err, "add_note"):
        err.add_note(f"(raised on the callee of an @async_execution rpc; remote "
                     f"traceback:)\n{text.rstrip()}")
    _finish_async(call_id, error=err)


def _invoke_async_method_impl(rref: RRef, name: str, args: tuple, kwargs: dict):
    return getattr(rref.local_value(), name)(*args, **kwargs)


_invoke_async_method = async_execution(_invoke_async_method_impl)
_invoke_async_method.__name__ = _invoke_async_method.__qualname__ = "_invoke_async_method"


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
                fork=_serve_fork, call_async=_serve_call_async,
                async_result=_serve_async_result,
                backward=_serve_backward, release_ctx=_serve_release, join=_serve_join,
                barrier=_serve_barrier)
