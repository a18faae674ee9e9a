"""ember.distributed.rpc and distributed autograd.

In one process: the wire format (tensors as raw buffers, not pickled objects), argument
checks, and a 1-worker RPC world calling itself with distributed autograd (gradients
against torch in float64). Across processes: 2 workers through the launcher (rendezvous
on MASTER_ADDR/MASTER_PORT, and through the MPI process group) run
scripts/rpc_job.py; two plain processes run scripts/rpc_dead_worker.py, where a worker
is killed mid-call. Every job is bounded by a subprocess timeout.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest

import ember
from ember.distributed.rpc.functions import async_execution
from ember.distributed.run import find_mpirun

grpc = pytest.importorskip("grpc")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scripts")
JOB_TIMEOUT_S = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", **extra)


# --- one process ----------------------------------------------------------------------
def test_wire_sends_tensors_as_raw_buffers():
    from ember.distributed.rpc import _wire
    t = ember.randn(3, 4)
    obj = {"a": [t, t.t(), 3, "s"], "b": ember.arange(5).to(ember.bfloat16),
           "scalar": ember.tensor(2.5), "f": ember.add}
    message = _wire.encode(obj)
    length = int.from_bytes(message[:8], "little")
    pickled = message[8:8 + length]
    assert b"Tensor" not in pickled and b"ember.frontend" not in pickled
    assert len(message) - 8 - length == (12 + 12) * 4 + 5 * 2 + 4     # the raw bytes
    back, tensors = _wire.decode(message)
    np.testing.assert_array_equal(back["a"][0].numpy(), t.numpy())
    np.testing.assert_array_equal(back["a"][1].numpy(), t.t().numpy())
    assert back["b"].dtype == ember.bfloat16 and back["scalar"].shape == ()
    assert back["a"][2:] == [3, "s"] and back["f"] is ember.add and len(tensors) == 4
    layer, _ = _wire.decode(_wire.encode(ember.nn.Linear(3, 2)))
    assert [type(p).__name__ for p in layer.parameters()] == ["Parameter", "Parameter"]
    assert all(p.requires_grad for p in layer.parameters())


def test_calls_before_init_rpc_raise():
    import ember.distributed.autograd as dist_autograd
    import ember.distributed.rpc as rpc
    with pytest.raises(RuntimeError, match="RPC has not been initialized"):
        rpc.rpc_sync("worker1", max, args=(1, 2))
    with pytest.raises(RuntimeError, match="RPC has not been initialized"):
        with dist_autograd.context():
            pass
    with pytest.raises(ValueError, match="rank"):
        rpc.init_rpc("w", rank=3, world_size=2)


def test_init_rpc_failures_are_clear_and_bounded(monkeypatch):
    import ember.distributed.rpc as rpc
    from ember.distributed import DistNetworkError
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))          # nobody listens there
    options = rpc.RpcBackendOptions(rpc_timeout=0.5)
    with pytest.raises(DistNetworkError, match="did not complete the rendezvous"):
        rpc.init_rpc("w1", rank=1, world_size=2, rpc_backend_options=options)
    with pytest.raises(RuntimeError, match="RPC has not been initialized"):
        rpc.shutdown()
    with socket.socket() as busy:                                  # rank 0's port taken
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        monkeypatch.setenv("MASTER_PORT", str(busy.getsockname()[1]))
        with pytest.raises(DistNetworkError, match="the port is in use"):
            rpc.init_rpc("w0", rank=0, world_size=2, rpc_backend_options=options)


def _sin_times(x, w):
    return (x.sin() * w).sum(dim=0)


_CALLEE_WEIGHT = ember.tensor([0.5, -1.5, 2.0, 0.25], dtype=ember.float64, requires_grad=True)


def _uses_callee_weight(x):
    return (x * _CALLEE_WEIGHT).tanh()


def _nested(x, w):
    """Runs on the callee and calls again: gradients must cross two RPC hops back."""
    import ember.distributed.rpc as rpc
    return rpc.rpc_sync("solo", _sin_times, args=(x * 2, w)) * w


@async_execution
def _plus_one_later(x):
    """Runs on the callee: chains on an RPC to the same worker, returns the Future."""
    import ember.distributed.rpc as rpc
    return rpc.rpc_async("solo", ember.mul, args=(x, 2)).then(lambda fut: fut.wait() + 1)


@async_execution
def _not_a_future():
    return 3


@async_execution
def _never():
    from ember.futures import Future
    return Future()


def test_async_execution_marks_the_function_like_torch_and_runs_in_a_one_worker_world(
        monkeypatch):
    import torch.distributed.rpc as torch_rpc

    import ember.distributed.rpc as rpc
    from ember.distributed.errors import DistBackendError
    from ember.futures import Future
    plain = _plus_one_later.__wrapped__
    for wrapped in (_plus_one_later, torch_rpc.functions.async_execution(plain)):
        assert wrapped._wrapped_async_rpc_function is plain     # PyTorch's marker
        assert wrapped.__name__ == "_plus_one_later"
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    rpc.init_rpc("solo", rank=0, world_size=1,
                 rpc_backend_options=rpc.RpcBackendOptions(rpc_timeout=20))
    try:
        x = ember.tensor([1.0, 2.0])
        assert isinstance(_plus_one_later(x), Future)      # called locally: the Future
        assert rpc.rpc_sync("solo", _plus_one_later, args=(x,)).tolist() == [3.0, 5.0]
        assert rpc.rpc_async("solo", _plus_one_later, args=(x,)).wait().tolist() == [3.0, 5.0]
        assert rpc.remote("solo", _plus_one_later, args=(x,)).to_here().tolist() == [3.0, 5.0]
        with pytest.raises(TypeError, match="must return a Future; got int"):
            rpc.rpc_sync("solo", _not_a_future)
        with pytest.raises(DistBackendError, match="RPC ran for more than set timeout"):
            rpc.rpc_sync("solo", _never, timeout=0.3)
    finally:
        rpc.shutdown()


def test_one_worker_rpc_to_itself_with_dist_autograd_matches_torch(monkeypatch):
    import torch

    import ember.distributed.autograd as dist_autograd
    import ember.distributed.rpc as rpc
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(free_port()))
    rpc.init_rpc("solo", rank=0, world_size=1,
                 rpc_backend_options=rpc.RpcBackendOptions(rpc_timeout=20))
    try:
        assert rpc.get_worker_info() == rpc.get_worker_info("solo")
        rng = np.random.default_rng(0)
        xs, ws = rng.standard_normal((3, 4)), rng.standard_normal(4)
        x = ember.tensor(xs, requires_grad=True)
        w = ember.tensor(ws, requires_grad=True)
        with dist_autograd.context() as context_id:
            y = rpc.rpc_sync("solo", _sin_times, args=(x, w))
            loss = (y * y).sum()
            dist_autograd.backward(context_id, [loss])
            grads = dist_autograd.get_gradients(context_id)
            with pytest.raises(RuntimeError, match="scalars"):
                dist_autograd.backward(context_id, [y])
        assert x.grad is None and w.grad is None
        tx = torch.tensor(xs, requires_grad=True)
        tw = torch.tensor(ws, requires_grad=True)
        ((tx.sin() * tw).sum(dim=0) ** 2).sum().backward()
        np.testing.assert_allclose(grads[x].numpy(), tx.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(grads[w].numpy(), tw.grad.numpy(), rtol=1e-12)
        with pytest.raises(RuntimeError, match="Could not find autograd context"):
            dist_autograd.get_gradients(context_id)      # released when the block ended

        with dist_autograd.context() as context_id:
            loss = rpc.rpc_async("solo", _nested, args=(x, w)).wait().sum()
            dist_autograd.backward(context_id, [loss])
            grads = dist_autograd.get_gradients(context_id)
        tx.grad = tw.grad = None
        ((tx * 2).sin() * tw).sum(dim=0).mul(tw).sum().backward()
        np.testing.assert_allclose(grads[x].numpy(), tx.grad.numpy(), rtol=1e-12)
        np.testing.assert_allclose(grads[w].numpy(), tw.grad.numpy(), rtol=1e-12)

        with dist_autograd.context() as context_id:      # no leaf on the caller's side
            y = rpc.rpc_sync("solo", _uses_callee_weight, args=(x.detach(),))
            dist_autograd.backward(context_id, [y.sum()])
            grads = dist_autograd.get_gradients(context_id)
        tcw = torch.tensor(_CALLEE_WEIGHT.detach().numpy(), requires_grad=True)
        (torch.tensor(xs) * tcw).tanh().sum().backward()
        assert len(grads) == 1 and next(iter(grads)) is _CALLEE_WEIGHT
        np.testing.assert_allclose(grads[_CALLEE_WEIGHT].numpy(), tcw.grad.numpy(), rtol=1e-12)

    finally:
        rpc.shutdown()


# --- several processes -----------------------------------------------------------------
def _mpi_missing() -> str | None:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py is not installed (pip install 'ember[distributed]')"
    if find_mpirun() is None:
        return "no mpirun found (pip install 'ember[distributed]')"
    return None


@pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))
@pytest.mark.parametrize("rendezvous", ["env", "mpi"])
def test_two_workers_calls_rrefs_errors_and_split_training(rendezvous):
    cmd = [sys.executable, "-m", "ember.distributed.run", "--nproc-per-node", "2",
           "--master-port", str(free_port()), os.path.join(SCRIPTS, "rpc_job.py"), rendezvous]
    job = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=JOB_TIMEOUT_S, errors="replace")
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-4000:]
    for line in ("rank 0: rpc_sync/rpc_async OK", "rank 1: rpc_sync/rpc_async OK",
                 "rank 0: remote/RRef OK", "rank 0: RRef deletion OK",
                 "rank 0: remote exceptions and timeout OK",
                 "rank 0: dist autograd + DistributedOptimizer training OK",
                 "rank 0: RemoteModule + DistributedOptimizer(Adam) training OK",
                 "rank 0: to_here in a dist autograd context OK",
                 f"rank 0: shutdown OK ({rendezvous})", f"rank 1: shutdown OK ({rendezvous})"):
        assert line in job.stdout, (line, output[-4000:])


@pytest.mark.skipif(_mpi_missing() is not None, reason=str(_mpi_missing()))
def test_three_workers_rref_forks_and_async_execution():
    """A user -> user RRef fork keeps the owner's value alive until every fork is gone;
    @async_execution chains futures across workers without holding callee threads."""
    cmd = [sys.executable, "-m", "ember.distributed.run", "--nproc-per-node", "3",
           "--master-port", str(free_port()), os.path.join(SCRIPTS, "rpc_three.py")]
    job = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True,
                         timeout=JOB_TIMEOUT_S, errors="replace")
    output = job.stdout + job.stderr
    assert job.returncode == 0, output[-4000:]
    for line in ("rank 0: RRef forks and reference counting OK", "rank 0: async_execution OK",
                 "rank 0: shutdown OK", "rank 1: shutdown OK", "rank 2: shutdown OK"):
        assert line in job.stdout, (line, output[-4000:])


def test_killed_worker_gives_an_error_inside_the_timeout():
    env = _env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    script = os.path.join(SCRIPTS, "rpc_dead_worker.py")
    victim = subprocess.Popen([sys.executable, script, "1"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        caller = subprocess.run([sys.executable, script, "0"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
        assert caller.returncode == 0, caller.stdout + caller.stderr
        assert "dead worker mid-call: DistNetworkError" in caller.stdout, caller.stdout
        assert "dead worker after death: DistNetworkError" in caller.stdout, caller.stdout
        assert "dead worker OK" in caller.stdout
        assert victim.wait(timeout=30) == -9          # it really was killed
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
