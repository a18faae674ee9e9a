"""RPC between 2 workers: calls, futures, RRefs, remote errors, timeouts, and a model split
across the workers trained with distributed autograd + DistributedOptimizer, which must
equal the same model trained locally. Argument: "env" (rendezvous on MASTER_ADDR/PORT)
or "mpi" (through an initialized MPI process group).
"""
import gc
import os
import sys
import time

import numpy as np

import ember
import ember.distributed as dist
import ember.distributed.autograd as dist_autograd
import ember.distributed.rpc as rpc
import ember.nn as nn
import ember.nn.functional as F
from ember.distributed.nn import RemoteModule
from ember.distributed.optim import DistributedOptimizer
from ember.distributed.rpc.api import owned_count
from ember.futures import Future

MODE = sys.argv[1]
if MODE == "mpi":
    dist.init_process_group(backend="mpi")
R = int(os.environ["RANK"])
rpc.init_rpc(f"worker{R}", rank=R, world_size=2,
             rpc_backend_options=rpc.TensorPipeRpcBackendOptions(rpc_timeout=30))


def close(a, b, tol=1e-5):
    a = a.detach().numpy() if isinstance(a, ember.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, ember.Tensor) else np.asarray(b)
    assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=tol, atol=tol)


def describe(x, extra):
    return {"sum": x.sum(), "shape": tuple(x.shape), "dtype": str(x.dtype), "extra": extra}


def wait_for_owned(done, limit_s=10.0):
    """worker1's count of owned RRef values once `done(count)` holds (deletes are async)."""
    deadline = time.monotonic() + limit_s
    while True:
        count = rpc.rpc_sync(1, owned_count)
        if done(count) or time.monotonic() > deadline:
            return count
        time.sleep(0.02)


def settled_owned_count():
    """worker1's owned count once it stops changing (earlier deletes still in flight)."""
    counts = [rpc.rpc_sync(1, owned_count)]
    while len(counts) < 4 or len(set(counts[-4:])) > 1:
        time.sleep(0.05)
        counts.append(rpc.rpc_sync(1, owned_count))
    return counts[-1]


def fail(message):
    raise ValueError(message)


def slow(seconds):
    time.sleep(seconds)
    return "late"


class Counter:
    def __init__(self, start):
        self.value = start

    def add(self, n):
        self.value += n
        return self.value


def make_head(state):
    head = nn.Linear(8, 2)
    head.load_state_dict(state)
    return head


def param_rrefs(module_rref):
    return [rpc.RRef(p) for p in module_rref.local_value().parameters()]


def head_grads(module_rref, context_id):
    grads = dist_autograd.get_gradients(context_id)
    return [grads[p] for p in module_rref.local_value().parameters()]


def calls_and_rrefs():
    t = ember.randn(3, 4)
    close(rpc.rpc_sync("worker1", ember.add, args=(t, 1)), t + 1)
    close(rpc.rpc_sync(1, ember.matmul, args=(t.t(), t)), t.t() @ t)   # strided input
    ints = ember.arange(6).reshape(2, 3)
    out = rpc.rpc_sync(rpc.get_worker_info("worker1"), describe, args=(ints,),
                       kwargs={"extra": ["py", 3, {"k": None}]})
    close(out["sum"], ints.sum())
    assert out["shape"] == (2, 3) and out["extra"] == ["py", 3, {"k": None}], out
    bf = ember.randn(5).to(ember.bfloat16)
    close(rpc.rpc_sync(1, ember.mul, args=(bf, 2)), bf * 2)
    fut = rpc.rpc_async("worker1", ember.mul, args=(t, 3))
    assert isinstance(fut, Future)
    close(fut.then(lambda f: f.value() + 1).wait(), t * 3 + 1)
    futs = [rpc.rpc_async(1, max, args=(i, 5)) for i in range(8)]
    assert [f.wait() for f in futs] == [max(i, 5) for i in range(8)]
    print(f"rank {R}: rpc_sync/rpc_async OK", flush=True)

    rref = rpc.remote("worker1", Counter, args=(10,))
    assert rref.owner() == rpc.get_worker_info("worker1") and rref.owner_name() == "worker1"
    assert not rref.is_owner()
    assert rref.rpc_sync().add(5) == 15
    assert rref.rpc_async().add(1).wait() == 16
    assert rref.remote().add(4).to_here() == 20
    assert rref.to_here().value == 20
    try:
        rref.local_value()
        raise AssertionError("local_value on a non-owner did not raise")
    except RuntimeError as err:
        assert "owner" in str(err), err
    tensor_rref = rpc.remote(1, ember.ones, args=(2, 2))
    close(tensor_rref.to_here(), ember.ones(2, 2))
    mine = rpc.RRef(ember.zeros(3))
    assert mine.is_owner() and mine.owner_name() == "worker0"
    close(rpc.rpc_sync(1, ember.add, args=(mine.to_here(), 1)), ember.ones(3))
    print(f"rank {R}: remote/RRef OK", flush=True)

    # Reference counting: collected RRefs free their values on the owner, one that
    # was shared with a worker other than its owner too once that fork is collected.
    del rref, tensor_rref
    gc.collect()
    before = settled_owned_count()
    refs = [rpc.remote(1, Counter, args=(i,)) for i in range(5)]
    assert [r.rpc_sync().add(0) for r in refs] == list(range(5))
    assert settled_owned_count() == before + 5, (before, settled_owned_count())
    rpc.rpc_sync(0, repr, args=(refs[0],))          # shared with worker0 (not the owner)
    del refs
    gc.collect()
    after = wait_for_owned(lambda n: n == before)
    assert after == before, (before, after)
    print(f"rank {R}: RRef deletion OK", flush=True)

    try:
        rpc.rpc_sync("worker1", fail, args=("remote boom",))
        raise AssertionError("the remote exception was not raised")
    except ValueError as err:
        assert "remote boom" in str(err), err
    failed = rpc.remote(1, fail, args=("rref boom",))
    try:
        failed.to_here()
        raise AssertionError("the remote exception was not raised by to_here")
    except ValueError as err:
        assert "rref boom" in str(err), err
    start = time.monotonic()
    try:
        rpc.rpc_sync(1, slow, args=(1.0,), timeout=0.3)
        raise AssertionError("the call did not time out")
    except RuntimeError as err:
        assert "timeout" in str(err), err
    assert time.monotonic() - start < 0.9
    print(f"rank {R}: remote exceptions and timeout OK", flush=True)


def split_training():
    """Body (Linear 4->8, tanh) on worker0, head (Linear 8->2) on worker1."""
    ember.manual_seed(0)
    ref = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    ember.manual_seed(0)
    body = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    head_rref = rpc.remote(1, make_head, args=({k: v.clone() for k, v in
                                                ref[2].state_dict().items()},))
    params = [rpc.RRef(p) for p in body.parameters()]
    params += rpc.rpc_sync(1, param_rrefs, args=(head_rref,))
    opt = DistributedOptimizer(ember.optim.SGD, params, lr=0.05, momentum=0.9)
    ref_opt = ember.optim.SGD(ref.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(3)
    for step in range(4):
        x = ember.tensor(rng.standard_normal((6, 4)).astype(np.float32))
        y = ember.tensor(rng.standard_normal((6, 2)).astype(np.float32))
        with dist_autograd.context() as context_id:
            out = head_rref.rpc_sync().forward(body(x))
            loss = F.mse_loss(out, y)
            dist_autograd.backward(context_id, [loss])
            ref_opt.zero_grad()
            ref_loss = F.mse_loss(ref(x), y)
            ref_loss.backward()
            close(loss, ref_loss)
            grads = dist_autograd.get_gradients(context_id)
            for p, q in zip(body.parameters(), list(ref.parameters())[:2]):
                close(grads[p], q.grad)
                assert p.grad is None          # dist autograd leaves .grad alone
            remote_grads = rpc.rpc_sync(1, head_grads, args=(head_rref, context_id))
            for g, q in zip(remote_grads, list(ref.parameters())[2:]):
                close(g, q.grad)
            opt.step(context_id)
            ref_opt.step()
    for p, q in zip(body.parameters(), list(ref.parameters())[:2]):
        close(p, q)
    head = head_rref.to_here()
    for p, q in zip(head.parameters(), list(ref.parameters())[2:]):
        close(p, q)
    print(f"rank {R}: dist autograd + DistributedOptimizer training OK", flush=True)


def remote_module_training():
    """The head as a RemoteModule on worker1, Adam through DistributedOptimizer."""
    head = RemoteModule("worker1/cpu", nn.Linear, args=(8, 2))
    ember.manual_seed(1)
    body = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
    ref_head = head.get_module_rref().to_here()           # a copy of its initial weights
    ember.manual_seed(1)
    ref = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), ref_head)
    params = [rpc.RRef(p) for p in body.parameters()] + head.remote_parameters()
    opt = DistributedOptimizer(ember.optim.Adam, params, lr=0.01)
    ref_opt = ember.optim.Adam(ref.parameters(), lr=0.01)
    rng = np.random.default_rng(4)
    for step in range(3):
        x = ember.tensor(rng.standard_normal((5, 4)).astype(np.float32))
        y = ember.tensor(rng.standard_normal((5, 2)).astype(np.float32))
        with dist_autograd.context() as context_id:
            loss = F.mse_loss(head(body(x)), y)
            dist_autograd.backward(context_id, [loss])
            opt.step(context_id)
        ref_opt.zero_grad()
        ref_loss = F.mse_loss(ref(x), y)
        ref_loss.backward()
        ref_opt.step()
        close(loss, ref_loss)
    h = body(x)
    close(head.forward_async(h).wait(), ref_head(h))
    for p, q in zip(list(body.parameters()) + list(head.get_module_rref().to_here().parameters()),
                    ref.parameters()):
        close(p, q)
    print(f"rank {R}: RemoteModule + DistributedOptimizer(Adam) training OK", flush=True)


def to_here_in_context():
    """A remote parameter fetched with to_here() inside a context gets its gradient on
    its owner; remote() with arguments that require grad is refused there."""
    weight_rrefs = rpc.rpc_sync(1, param_rrefs, args=(rpc.remote(1, nn.Linear, args=(3, 2)),))
    x = ember.randn(4, 3)
    with dist_autograd.context() as context_id:
        weight, bias = (r.to_here() for r in weight_rrefs)
        loss = (x @ weight.t() + bias).pow(2).sum()
        dist_autograd.backward(context_id, [loss])
        owner_grads = rpc.rpc_sync(1, grads_of, args=(weight_rrefs, context_id))
        try:
            rpc.remote(1, ember.add, args=(weight, 1))
            raise AssertionError("remote() with a grad-requiring argument was accepted")
        except RuntimeError as err:
            assert "not supported yet" in str(err), err
    w, b = weight.detach().requires_grad_(), bias.detach().requires_grad_()
    (x @ w.t() + b).pow(2).sum().backward()
    close(owner_grads[0], w.grad)
    close(owner_grads[1], b.grad)
    print(f"rank {R}: to_here in a dist autograd context OK", flush=True)


def grads_of(rrefs, context_id):
    grads = dist_autograd.get_gradients(context_id)
    return [grads[r.local_value()] for r in rrefs]


if R == 0:
    calls_and_rrefs()
    split_training()
    remote_module_training()
    to_here_in_context()
else:
    # worker1 also calls worker0, so both directions are exercised.
    close(rpc.rpc_sync("worker0", ember.sub, args=(ember.ones(2), 1)), ember.zeros(2))
    print(f"rank {R}: rpc_sync/rpc_async OK", flush=True)
rpc.shutdown()
print(f"rank {R}: shutdown OK ({MODE})", flush=True)
