"""RPC among 3 workers: RRef forks between users with the owner's reference counting,
and @rpc.functions.async_execution (chained futures, callee threads not held).

worker0 creates a value on worker1 (the owner) and shares it with worker2 (a
user -> user fork); the owner keeps the value while any fork lives anywhere and frees
it when the last one is collected.
"""
import gc
import os
import time

import ember
import ember.distributed.rpc as rpc
from ember.distributed.rpc.api import _rref_forks, owned_count
from ember.futures import Future

R = int(os.environ["RANK"])
rpc.init_rpc(f"worker{R}", rank=R, world_size=3,
             rpc_backend_options=rpc.TensorPipeRpcBackendOptions(rpc_timeout=30))


class Counter:
    def __init__(self, start):
        self.value = start

    def add(self, n):
        self.value += n
        return self.value


KEPT = []          # RRefs a worker holds on to between calls


def keep(rref):
    """On worker2: hold a fork of an RRef owned by worker1; use it through the owner."""
    assert not rref.is_owner() and rref.owner_name() == "worker1"
    assert rref.confirmed_by_owner()
    KEPT.append(rref)
    return rref.rpc_sync().add(1), rref.to_here().value


def give_back():
    """On worker2: hand the kept RRef back in a reply (a fork made for the caller)."""
    return KEPT[0]


def drop_kept():
    KEPT.clear()
    gc.collect()


def owner_view(rref):
    """On worker1, the owner: local_value and is_owner."""
    assert rref.is_owner() and rref.confirmed_by_owner()
    return rref.local_value().value


def forks_of(rref_id):
    return _rref_forks(rref_id)


def wait_for(fn, done, limit_s=20.0):
    deadline = time.monotonic() + limit_s
    while True:
        value = fn()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.02)


@rpc.functions.async_execution
def async_add_chained(to, x, y, z):
    # PyTorch's documented example: the callee's thread returns at once
    return rpc.rpc_async(to, ember.add, args=(x, y)).then(lambda fut: fut.wait() + z)


PENDING = []


@rpc.functions.async_execution
def wait_for_release(i):
    fut = Future()
    PENDING.append((i, fut))
    return fut


def release_all():
    for i, fut in PENDING:
        fut.set_result(i * 10)
    PENDING.clear()


class AsyncExecutionClass:
    """PyTorch's documented forms: static, class and bound @async_execution methods."""

    @staticmethod
    @rpc.functions.async_execution
    def static_async_add(to, x, y, z):
        return rpc.rpc_async(to, ember.add, args=(x, y)).then(lambda fut: fut.wait() + z)

    @classmethod
    @rpc.functions.async_execution
    def class_async_add(cls, to, x, y, z):
        ret_fut = Future()
        rpc.rpc_async(to, ember.add, args=(x, y)).then(
            lambda fut: ret_fut.set_result(fut.wait() + z))
        return ret_fut

    @rpc.functions.async_execution
    def bound_async_add(self, to, x, y, z):
        return rpc.rpc_async(to, ember.add, args=(x, y)).then(lambda fut: fut.wait() + z)


@rpc.functions.async_execution
def async_fail():
    return rpc.rpc_async("worker2", int, args=("not a number",))


def forks():
    before = wait_for(lambda: rpc.rpc_sync(1, owned_count), lambda n: True)
    rref = rpc.remote("worker1", Counter, args=(10,))
    rref_id = rref._id
    assert rpc.rpc_sync("worker2", keep, args=(rref,)) == (11, 11)
    assert rpc.rpc_sync("worker1", owner_view, args=(rref,)) == 11
    assert rpc.rpc_sync(1, forks_of, args=(rref_id,)) >= 2     # worker0's and worker2's
    del rref
    gc.collect()
    # worker0's fork is gone; worker2's keeps the value alive on the owner
    assert wait_for(lambda: rpc.rpc_sync(1, forks_of, args=(rref_id,)), lambda n: n == 1) == 1
    back = rpc.rpc_sync("worker2", give_back)                  # a fork made for worker0
    assert back.owner_name() == "worker1" and back.confirmed_by_owner()
    rpc.rpc_sync("worker2", drop_kept)
    assert wait_for(lambda: rpc.rpc_sync(1, forks_of, args=(rref_id,)), lambda n: n == 1) == 1
    assert back.rpc_sync().add(5) == 16 and back.to_here().value == 16
    del back
    gc.collect()
    assert wait_for(lambda: rpc.rpc_sync(1, owned_count), lambda n: n == before) == before
    assert rpc.rpc_sync(1, forks_of, args=(rref_id,)) == 0
    print(f"rank {R}: RRef forks and reference counting OK", flush=True)


def async_execution():
    x = ember.ones(2)
    got = rpc.rpc_sync("worker1", async_add_chained, args=("worker2", x, 1, 2))
    assert got.tolist() == [4.0, 4.0], got
    assert rpc.rpc_async("worker1", async_add_chained, args=("worker2", x, 2, 3)).wait() \
        .tolist() == [6.0, 6.0]
    assert rpc.remote("worker1", async_add_chained, args=("worker2", x, 0, 1)).to_here() \
        .tolist() == [2.0, 2.0]
    # more pending calls than the callee has server threads (32): none is held
    futs = [rpc.rpc_async("worker1", wait_for_release, args=(i,)) for i in range(40)]
    time.sleep(0.2)
    assert not any(f.done() for f in futs)
    rpc.rpc_sync("worker1", release_all)
    assert [f.wait() for f in futs] == [i * 10 for i in range(40)]
    two = ember.ones(2)
    assert rpc.rpc_sync("worker1", AsyncExecutionClass.static_async_add,
                        args=("worker2", two, 1, 2)).tolist() == [4.0, 4.0]
    assert rpc.rpc_sync("worker1", AsyncExecutionClass.class_async_add,
                        args=("worker2", two, 1, 2)).tolist() == [4.0, 4.0]
    rref = rpc.remote("worker1", AsyncExecutionClass)
    assert rref.rpc_sync().static_async_add("worker2", two, 1, 2).tolist() == [4.0, 4.0]
    assert rref.rpc_async().class_async_add("worker2", two, 1, 2).wait().tolist() == [4.0] * 2
    assert rref.remote().bound_async_add("worker2", two, 1, 2).to_here().tolist() == [4.0] * 2
    try:
        rpc.rpc_sync("worker1", async_fail)
        raise AssertionError("the chained error was not raised")
    except ValueError as err:
        assert "not a number" in str(err), err
    print(f"rank {R}: async_execution OK", flush=True)


if R == 0:
    forks()
    async_execution()
rpc.shutdown()
print(f"rank {R}: shutdown OK", flush=True)
