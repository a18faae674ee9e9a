"""The NCCL backend on one GPU: a 1-process group runs every collective and DDP.

Run by tests/cuda/run_on_gpu.sh. Skipped, saying why, without a CUDA GPU or without
nccl4py and the NCCL library (pip install 'nccl4py[cu13]'). A 1-process group cannot
show that ranks' values are combined (tests/distributed runs that on MPI); it shows
that init, the unique id, the device pointers, dtypes, streams and events, the list
forms and DDP's CUDA buckets work end to end, and that results land where they should.
Multi-GPU runs wait for their own issue.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import ember
import ember.distributed as dist


def _skip_reason() -> str | None:
    if not ember.cuda.is_available():
        return "no CUDA GPU"
    if not dist.is_nccl_available():
        return "nccl4py is not installed (pip install 'nccl4py[cu13]')"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


@pytest.fixture(scope="module", autouse=True)
def nccl_group():
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        os.environ.pop(var, None)          # a plain process: no MPI, the id stays local
    dist.init_process_group("nccl", rank=0, world_size=1)
    yield dist.group.WORLD
    dist.destroy_process_group()


def _cuda(values, dtype=ember.float32):
    return ember.tensor(np.asarray(values), dtype=dtype).to("cuda")


def _host(t):
    return t.detach().cpu().numpy()


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_group_is_nccl_with_one_rank(nccl_group):
    assert dist.get_backend() == "nccl" and dist.get_rank() == 0
    assert dist.get_world_size() == 1 and dist.is_nccl_available()


@pytest.mark.parametrize("op", ["SUM", "AVG", "MAX", "MIN", "PRODUCT"])
def test_all_reduce_keeps_the_only_rank_values(op):
    x = _rand(3, 5)
    t = _cuda(x)
    dist.all_reduce(t, op=getattr(dist.ReduceOp, op))
    np.testing.assert_allclose(_host(t), x, rtol=1e-6)


def test_all_reduce_async_work_completes_and_orders_the_stream():
    x = _rand(1 << 16, seed=1)
    t = _cuda(x)
    work = dist.all_reduce(t, async_op=True)
    assert work.wait() is True
    doubled = t * 2                         # queued after the collective on this stream
    ember.cuda.synchronize()
    assert work.is_completed() and work.is_success()
    np.testing.assert_allclose(_host(doubled), 2 * x, rtol=1e-6)
    assert work.get_future().wait()[0] is t


@pytest.mark.parametrize("dtype", [ember.float16, ember.bfloat16, ember.float64, ember.int64,
                                   ember.int32, ember.uint8, ember.bool])
def test_all_reduce_dtypes(dtype):
    x = (np.arange(12) % 3).reshape(3, 4)
    t = _cuda(x, dtype)
    dist.all_reduce(t)
    np.testing.assert_array_equal(_host(t.to(ember.float64)), x.astype(bool) if
                                  dtype == ember.bool else x)


def test_broadcast_and_reduce():
    x = _rand(7, seed=2)
    t = _cuda(x)
    dist.broadcast(t, src=0)
    dist.reduce(t, dst=0)
    np.testing.assert_allclose(_host(t), x, rtol=1e-6)


def test_all_gather_forms():
    x = _rand(2, 3, seed=3)
    out = ember.zeros(1, 2, 3, device="cuda")
    dist.all_gather_into_tensor(out, _cuda(x))
    np.testing.assert_allclose(_host(out)[0], x)
    pieces = [ember.zeros(2, 3, device="cuda")]
    dist.all_gather(pieces, _cuda(x))
    np.testing.assert_allclose(_host(pieces[0]), x)
    gathered = [ember.zeros(2, 3, device="cuda")]
    dist.gather(_cuda(x), gathered, dst=0)
    np.testing.assert_allclose(_host(gathered[0]), x)


def test_scatter_and_reduce_scatter_forms():
    x = _rand(4, seed=4)
    out = ember.zeros(4, device="cuda")
    dist.scatter(out, [_cuda(x)], src=0)
    np.testing.assert_allclose(_host(out), x)
    out2 = ember.zeros(4, device="cuda")
    dist.reduce_scatter_tensor(out2, _cuda(x))
    np.testing.assert_allclose(_host(out2), x)
    out3 = ember.zeros(4, device="cuda")
    dist.reduce_scatter(out3, [_cuda(x)])
    np.testing.assert_allclose(_host(out3), x)


def test_all_to_all_forms():
    x = _rand(6, 2, seed=5)
    out = ember.zeros(6, 2, device="cuda")
    dist.all_to_all_single(out, _cuda(x))
    np.testing.assert_allclose(_host(out), x)
    outs = [ember.zeros(6, 2, device="cuda")]
    dist.all_to_all(outs, [_cuda(x)])
    np.testing.assert_allclose(_host(outs[0]), x)


def test_send_and_recv_to_itself_in_one_batch():
    x = _rand(3, 4, seed=6)
    got = ember.zeros(3, 4, device="cuda")
    works = dist.batch_isend_irecv([dist.P2POp(dist.isend, _cuda(x), 0),
                                    dist.P2POp(dist.irecv, got, 0)])
    for work in works:
        work.wait()
    np.testing.assert_allclose(_host(got), x)


def test_barrier_and_refusals_name_the_op():
    dist.barrier()
    with pytest.raises(dist.DistError, match="all_gather_into_tensor: CPU tensors on an "
                                             "nccl process group need the MPI engine"):
        dist.all_gather_into_tensor(ember.zeros(1, 2, device="cuda"), ember.zeros(2))
    with pytest.raises(dist.DistError, match="all_gather_into_tensor: the nccl backend "
                                             "takes CUDA tensors, got a tensor on cpu"):
        dist.all_gather_into_tensor(ember.zeros(1, 2), ember.zeros(2, device="cuda"))
    with pytest.raises(ValueError, match="Tensors must be contiguous"):
        dist.all_reduce(ember.zeros(4, 4, device="cuda").t())
    with pytest.raises(dist.DistError, match="Cannot use ReduceOp.BAND with NCCL"):
        dist.all_reduce(_cuda([1, 2], ember.int64), op=dist.ReduceOp.BAND)


def _mlp():
    import ember.nn as nn
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))


@pytest.mark.parametrize("hook,as_view", [(None, False), (None, True), ("fp16", False)])
def test_ddp_on_one_gpu_equals_plain_training(hook, as_view):
    from ember.distributed.algorithms.ddp_comm_hooks import default_hooks
    from ember.nn.parallel import DistributedDataParallel as DDP
    ember.manual_seed(0)
    plain = _mlp().to("cuda")
    ember.manual_seed(0)
    wrapped = DDP(_mlp().to("cuda"), bucket_cap_mb=0.0005, gradient_as_bucket_view=as_view)
    if hook == "fp16":
        wrapped.register_comm_hook(None, default_hooks.fp16_compress_hook)
    assert len(wrapped.reducer.buckets) > 1 and wrapped.reducer.buckets[0].on_cuda
    opts = [ember.optim.SGD(m.parameters(), lr=0.1) for m in (plain, wrapped)]
    for step in range(3):
        x, y = _cuda(_rand(8, 6, seed=10 + step)), _cuda(_rand(8, 3, seed=20 + step))
        for model, opt in zip((plain, wrapped), opts):
            opt.zero_grad()
            diff = model(x) - y
            (diff * diff).mean().backward()
            opt.step()
    tol = 2e-3 if hook == "fp16" else 1e-6
    for p, q in zip(plain.parameters(), wrapped.module.parameters()):
        assert q.grad.is_cuda
        np.testing.assert_allclose(_host(q), _host(p), rtol=tol, atol=tol)


_HUNG_OPERATION = """
import datetime, os, sys, time
import ember, ember.distributed as dist
from ember.runtime.cuda import driver
dist.init_process_group("nccl", rank=0, world_size=1, timeout=datetime.timedelta(seconds=2))
# A one-process group cannot hang inside NCCL (a recv without a send is invalid usage), so
# the caller's stream is held behind a flag nothing ever sets: the all_reduce queued after
# it never starts, and only the watchdog can end the wait.
flag = ember.zeros(1, dtype=ember.int32, device="cuda")
driver.call("cuStreamWaitValue32", ember.cuda.current_stream().cuda_stream, flag.data_ptr(),
            1, 0)
work = dist.all_reduce(ember.ones(4, device="cuda"), async_op=True)
time.sleep(6)                                              # the watchdog acts meanwhile
try:
    work.wait()
except dist.DistBackendError as err:
    print("raised:", err, flush=True)
    os._exit(3)           # the held stream never drains: skip the context's teardown
print("no error", flush=True)
os._exit(0)
"""


@pytest.mark.parametrize("tear_down", [True, False])
def test_a_hung_operation_is_aborted_naming_rank_and_op(tear_down):
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    for var in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"):
        env.pop(var, None)
    if not tear_down:
        env["TORCH_NCCL_ASYNC_ERROR_HANDLING"] = "0"
    start = time.monotonic()
    job = subprocess.run([sys.executable, "-c", _HUNG_OPERATION], env=env, capture_output=True,
                         text=True, timeout=120)
    output = job.stdout + job.stderr
    assert "[Rank 0] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=1, " \
        "OpType=ALLREDUCE" in output, output[-3000:]
    if tear_down:          # the watchdog's report, then the process is taken down
        assert job.returncode == 1 and "raised:" not in output, output[-3000:]
        assert time.monotonic() - start < 60
    else:                  # the communicator is aborted, the waiter gets the error
        assert job.returncode == 3 and "raised:" in output, output[-3000:]


@pytest.mark.cuda
def test_new_group_splits_the_nccl_communicator(nccl_group):
    """new_group on an nccl group: ncclCommSplit gives the sub-group its communicator."""
    sub = dist.new_group([0])
    assert dist.get_backend(sub) == "nccl" and dist.get_world_size(sub) == 1
    assert dist.get_process_group_ranks(sub) == [0]
    x = _rand(3, 4)
    t = _cuda(x)
    dist.all_reduce(t, group=sub)
    work = dist.broadcast(t, src=0, group=sub, async_op=True)
    work.wait()
    np.testing.assert_allclose(_host(t), x)
    dist.destroy_process_group(sub)


@pytest.mark.cuda
def test_ddp_with_powerSGD_on_cuda_buckets_equals_plain_training():
    """PowerSGD on CUDA buckets: matrices, error feedback and warm start stay on the
    GPU (P is orthonormalized on the host); at full rank a 1-process group's PowerSGD
    reproduces the gradients, so training equals plain training."""
    from ember.distributed.algorithms.ddp_comm_hooks import powerSGD_hook as powerSGD
    from ember.nn.parallel import DistributedDataParallel as DDP
    ember.manual_seed(0)
    plain = _mlp().to("cuda")
    ember.manual_seed(0)
    wrapped = DDP(_mlp().to("cuda"), bucket_cap_mb=0.0005)
    state = powerSGD.PowerSGDState(None, matrix_approximation_rank=16, start_powerSGD_iter=2,
                                   min_compression_rate=0.01)
    wrapped.register_comm_hook(state, powerSGD.powerSGD_hook)
    opts = [ember.optim.SGD(m.parameters(), lr=0.1) for m in (plain, wrapped)]
    for step in range(4):
        x, y = _cuda(_rand(8, 6, seed=10 + step)), _cuda(_rand(8, 3, seed=20 + step))
        for model, opt in zip((plain, wrapped), opts):
            opt.zero_grad()
            diff = model(x) - y
            (diff * diff).mean().backward()
            opt.step()
    assert state.iter == 4 and state.total_numel_after_compression > 0
    for p, q in zip(plain.parameters(), wrapped.module.parameters()):
        np.testing.assert_allclose(_host(q), _host(p), rtol=1e-4, atol=1e-4)
