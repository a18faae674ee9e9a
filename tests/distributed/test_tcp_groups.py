"""Process groups of processes started one by one (no MPI launcher): the TCP transport.

PyTorch's MultiProcessTestCase shape: the test starts a `multiprocessing.Process` per
rank, each calls `init_process_group("gloo", rank=r, world_size=n)` (env://), and the
same program of collectives runs under torch's gloo and under ember in each rank; the
results are compared. DDP and ZeroRedundancyOptimizer train across such processes like
one process on the whole batch. torchrun-style independent interpreters (environment
variables, tcp://, a FileStore) form groups too, and a rank that dies or never arrives
fails its peers' collectives with an error naming it instead of hanging them.
"""
from __future__ import annotations

import multiprocessing
import os
import re
import socket
import subprocess
import sys
import traceback

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# fork: every rank starts with torch and ember already imported (spawn would re-import
# torch per rank, ~10 s on the shared 2-core box)
_FORK = multiprocessing.get_context("fork")
_WAIT_S = 90


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(fn, rank: int, world: int, env: dict, results) -> None:
    os.environ.update(env, RANK=str(rank), WORLD_SIZE=str(world))
    try:
        results.put((rank, "ok", fn(rank, world)))
    except BaseException:       # noqa: BLE001 - the parent shows the rank's traceback
        results.put((rank, "error", traceback.format_exc()))


def _run_ranks(fn, world: int) -> list:
    """Start one Process per rank (MASTER_ADDR/PORT set), return each rank's result."""
    env = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()),
           "TORCH_PORT": str(_free_port())}
    results = _FORK.Queue()
    procs = [_FORK.Process(target=_rank_main, args=(fn, r, world, env, results))
             for r in range(world)]
    for p in procs:
        p.start()
    try:
        got = dict((r, (status, value)) for r, status, value in
                   (results.get(timeout=_WAIT_S) for _ in range(world)))
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    errors = [f"rank {r}:\n{v}" for r, (s, v) in sorted(got.items()) if s != "ok"]
    assert not errors, "\n".join(errors)
    return [got[r][1] for r in range(world)]


# --- the same program under torch and under ember ----------------------------------------
def _collectives(torch, dist, rank: int, world: int) -> dict:
    """Every collective on small tensors; the same code for torch and ember."""
    out = {}

    def t(values, dtype=None):
        return torch.tensor(values, dtype=dtype)

    for name, op in (("sum", dist.ReduceOp.SUM), ("product", dist.ReduceOp.PRODUCT),
                     ("min", dist.ReduceOp.MIN), ("max", dist.ReduceOp.MAX)):
        for dtype in (torch.float32, torch.int64):
            x = t([rank + 1, 2 - rank, 3 * rank], dtype)
            dist.all_reduce(x, op=op)
            out[f"all_reduce_{name}_{str(dtype).split('.')[-1]}"] = x
    for name, op in (("band", dist.ReduceOp.BAND), ("bor", dist.ReduceOp.BOR),
                     ("bxor", dist.ReduceOp.BXOR)):
        x = t([rank + 5, 12 >> rank, 7], torch.int32)
        dist.all_reduce(x, op=op)
        out[f"all_reduce_{name}"] = x
    half = t([0.5 * rank, 1.25], torch.float16)
    dist.all_reduce(half)
    out["all_reduce_float16"] = half
    # above tcp_comm's 256 KiB: the ring all-reduce (uneven chunks)
    big = torch.arange(100_003, dtype=torch.float32) * (rank + 1)
    dist.all_reduce(big)
    out["all_reduce_ring"] = big
    scalar = torch.tensor(float(rank), dtype=torch.float64)
    dist.all_reduce(scalar, op=dist.ReduceOp.MAX)
    out["all_reduce_0d"] = scalar
    work = dist.all_reduce(t([float(rank)] * 3), async_op=True)
    work.wait()
    out["async_all_reduce_done"] = torch.tensor(work.is_completed())
    b = t([rank * 10.0, 1.0])
    dist.broadcast(b, src=world - 1)
    out["broadcast"] = b
    r = t([rank + 1.0, 2.0])
    dist.reduce(r, dst=1)
    if rank == 1:
        out["reduce"] = r
    gathered = [torch.zeros(2) for _ in range(world)]
    dist.all_gather(gathered, t([rank, rank + 0.5]))
    out["all_gather"] = torch.stack(gathered)
    flat = torch.zeros(world * 2)
    dist.all_gather_into_tensor(flat, t([rank, -rank], torch.float32))
    out["all_gather_into_tensor"] = flat
    g_list = [torch.zeros(2) for _ in range(world)] if rank == 0 else None
    dist.gather(t([rank, 7.0]), gather_list=g_list, dst=0)
    if rank == 0:
        out["gather"] = torch.stack(g_list)
    sc = torch.zeros(2)
    dist.scatter(sc, [t([i, i * 3.0]) for i in range(world)] if rank == 1 else None, src=1)
    out["scatter"] = sc
    splits = [i + 1 for i in range(world)]          # rank r sends r' (r' + 1) elements
    a2a_in = torch.arange(sum(splits), dtype=torch.float32) + 100 * rank
    a2a_out = torch.zeros(world * (rank + 1))
    dist.all_to_all_single(a2a_out, a2a_in, output_split_sizes=[rank + 1] * world,
                           input_split_sizes=splits)
    out["all_to_all_single"] = a2a_out
    dist.barrier()
    peer_to, peer_from = (rank + 1) % world, (rank - 1) % world
    send_work = dist.isend(t([rank * 1.5]), dst=peer_to)
    got = torch.zeros(1)
    dist.irecv(got, src=peer_from).wait()
    send_work.wait()
    out["isend_irecv_ring"] = got
    if rank == 0:
        dist.send(t([42.0, 43.0]), dst=world - 1, tag=3)
    if rank == world - 1:
        into = torch.zeros(2)
        source = dist.recv(into, tag=3)             # any source
        out["recv_any_source"] = torch.cat([into, torch.tensor([float(source)])])
    sub = dist.new_group([0, world - 1])
    if rank in (0, world - 1):
        s = t([rank + 1.0])
        dist.all_reduce(s, group=sub)
        out["new_group_all_reduce"] = s
        out["new_group_rank"] = torch.tensor(dist.get_rank(sub))
    objects = [None] * world
    dist.all_gather_object(objects, {"rank": rank, "name": f"r{rank}"})
    out["all_gather_object"] = torch.tensor([o["rank"] for o in objects])
    listed = [f"from {rank}", rank] if rank == 1 else [None, None]
    dist.broadcast_object_list(listed, src=1)
    out["broadcast_object_list"] = torch.tensor([len(listed[0]), listed[1]])
    out["world"] = torch.tensor([dist.get_rank(), dist.get_world_size()])
    return out


def _as_numpy(results: dict) -> dict:
    return {k: np.asarray(v.tolist()) for k, v in results.items()}


def _torch_and_ember(rank: int, world: int):
    import datetime

    import torch
    import torch.distributed as tdist

    import ember
    import ember.distributed as edist
    # the parent (pytest) may have run OpenMP regions; a forked child must not enter
    # torch's copy of that thread pool
    torch.set_num_threads(1)
    store = tdist.TCPStore("127.0.0.1", int(os.environ["TORCH_PORT"]), world, rank == 0,
                           timeout=datetime.timedelta(seconds=60))
    tdist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    expected = _as_numpy(_collectives(torch, tdist, rank, world))
    tdist.destroy_process_group()
    edist.init_process_group("gloo", rank=rank, world_size=world)      # env://
    got = _as_numpy(_collectives(ember, edist, rank, world))
    backend = edist.get_backend()
    edist.destroy_process_group()
    return expected, got, backend


def test_multiprocess_testcase_ranks_match_torch_gloo():
    """A Process per rank (PyTorch's MultiProcessTestCase): ember's collectives over TCP
    give torch's gloo results, rank by rank, case by case."""
    import torch  # noqa: F401 - imported once here, inherited by the forked ranks
    import torch.distributed  # noqa: F401
    for rank, (expected, got, backend) in enumerate(_run_ranks(_torch_and_ember, 3)):
        assert backend == "gloo"
        assert sorted(got) == sorted(expected), f"rank {rank}"
        for name in expected:
            assert got[name].shape == expected[name].shape, f"rank {rank}: {name}"
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-6,
                                       err_msg=f"rank {rank}: {name}")


# --- training across processes -------------------------------------------------------
def _model(ember):
    ember.manual_seed(0)
    nn = ember.nn
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def _batches(step: int):
    rng = np.random.RandomState(step)
    return rng.randn(6, 4).astype("float32"), rng.randn(6, 3).astype("float32")


def _train(model, opt, ember, rows):
    for step in range(3):
        x, y = _batches(step)
        opt.zero_grad()
        loss = ember.nn.functional.mse_loss(model(ember.tensor(x[rows])),
                                            ember.tensor(y[rows]))
        loss.backward()
        opt.step()
    return [p.detach().numpy().copy() for p in model.parameters()]


def _ddp_and_zero(rank: int, world: int):
    import ember
    import ember.distributed as dist
    from ember.distributed.optim import ZeroRedundancyOptimizer
    from ember.nn.parallel import DistributedDataParallel as DDP
    rows = slice(rank * 6 // world, (rank + 1) * 6 // world)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{os.environ['MASTER_PORT']}",
                            rank=rank, world_size=world)
    ddp = DDP(_model(ember), bucket_cap_mb=1e-4)          # several buckets, overlapped
    sgd = _train(ddp, ember.optim.SGD(ddp.parameters(), lr=0.1, momentum=0.9), ember, rows)
    zddp = DDP(_model(ember))
    zero = ZeroRedundancyOptimizer(zddp.parameters(), ember.optim.Adam, lr=0.01)
    adam = _train(zddp, zero, ember, rows)
    dist.destroy_process_group()
    whole = slice(0, 6)
    plain = _model(ember)
    ref_sgd = _train(plain, ember.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9),
                     ember, whole)
    plain = _model(ember)
    ref_adam = _train(plain, ember.optim.Adam(plain.parameters(), lr=0.01), ember, whole)
    return sgd, ref_sgd, adam, ref_adam


def test_ddp_and_zero_train_across_processes_started_one_by_one():
    for rank, (sgd, ref_sgd, adam, ref_adam) in enumerate(_run_ranks(_ddp_and_zero, 2)):
        for got, ref in zip(sgd + adam, ref_sgd + ref_adam):
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6,
                                       err_msg=f"rank {rank}")


# --- independent interpreters (torchrun-style, a shell loop) -------------------------
_RANK_SCRIPT = r"""
import os, sys, datetime
import ember, ember.distributed as dist
mode, rank, world = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
timeout = datetime.timedelta(seconds=float(os.environ.get("GROUP_TIMEOUT", "60")))
if mode == "env":
    dist.init_process_group("gloo", timeout=timeout)   # RANK, WORLD_SIZE, MASTER_* set
elif mode == "filestore":
    store = dist.FileStore(os.environ["STORE_FILE"], world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world,
                            timeout=timeout)
else:
    dist.init_process_group("gloo", init_method=os.environ["INIT"], rank=rank,
                            world_size=world, timeout=timeout)
rank = dist.get_rank()
x = ember.tensor([float(rank + 1)])
if os.environ.get("MISBEHAVE") == str(rank):
    if os.environ.get("HOW") == "exit":
        os._exit(3)                     # dies without a word
    import time
    time.sleep(4)                       # never joins the collective
    sys.exit(0)
try:
    dist.all_reduce(x)
except dist.DistBackendError as err:
    print(f"rank {rank} error: {err}", flush=True)
    sys.exit(1)
print(f"rank {rank} sum {x.item()}", flush=True)
dist.destroy_process_group()
"""


def _interpreters(mode: str, world: int, tmp_path, **extra) -> list:
    script = tmp_path / "train.py"
    script.write_text(_RANK_SCRIPT)
    port = _free_port()
    procs = []
    for rank in range(world):          # for i in 0..n-1: python train.py <mode> i n &
        env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", RANK=str(rank),
                   WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                   INIT=f"tcp://127.0.0.1:{port}", STORE_FILE=str(tmp_path / "store"),
                   **extra)
        procs.append(subprocess.Popen([sys.executable, str(script), mode, str(rank),
                                       str(world)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    outputs = []
    for p in procs:
        try:
            outputs.append((p.communicate(timeout=_WAIT_S)[0], p.returncode))
        except subprocess.TimeoutExpired:
            p.kill()
            outputs.append((p.communicate()[0] + "\n(killed: hung)", None))
    return outputs


@pytest.mark.parametrize("mode, world", [("env", 3), ("tcp", 2), ("filestore", 2)])
def test_independently_started_interpreters_form_a_group(mode, world, tmp_path):
    outputs = _interpreters(mode, world, tmp_path)
    for rank, (out, code) in enumerate(outputs):
        total = world * (world + 1) // 2
        assert code == 0 and f"rank {rank} sum {total:.1f}" in out, out[-2000:]


def test_a_rank_that_dies_fails_its_peers_collective_naming_it(tmp_path):
    (out0, code0), (_, code1) = _interpreters("env", 2, tmp_path, MISBEHAVE="1", HOW="exit")
    assert code1 == 3 and code0 == 1, out0[-2000:]
    assert "rank 0 error: [Rank 0] WorkTCP(SeqNum=1, OpType=ALLREDUCE" in out0, out0[-2000:]
    # the reader saw rank 1's stream end (or reset), or the send to it failed first
    assert re.search(r"failed: PeerGone: .*(rank 1 closed its connection|connection to "
                     r"rank 1 was lost|sending to rank 1 failed)", out0), out0[-2000:]


def test_a_rank_that_never_arrives_times_out_naming_it(tmp_path):
    (out0, code0), (_, code1) = _interpreters("env", 2, tmp_path, MISBEHAVE="1",
                                              HOW="hang", GROUP_TIMEOUT="1.5")
    assert code0 == 1 and code1 == 0, out0[-2000:]
    assert "TimeoutError: rank 0 received nothing from rank 1" in out0, out0[-2000:]


# --- the launcher's TCP mode (torchrun's way) --------------------------------------------
def _launcher(tmp_path, port: int, *flags: str, **extra) -> subprocess.Popen:
    script = tmp_path / "train.py"
    script.write_text(_RANK_SCRIPT)
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS="1", **extra)
    for key in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return subprocess.Popen([sys.executable, "-m", "ember.distributed.run", *flags,
                             "--master-port", str(port), str(script), "env", "-1", "-1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_one_launcher_per_node_forms_one_group(tmp_path):
    """torchrun's multi-node form, two "nodes" on localhost: each launcher starts its
    own ranks (RANK = node_rank * nproc + local rank), all meet at MASTER_ADDR:PORT."""
    port = _free_port()
    nodes = [_launcher(tmp_path, port, "--nnodes", "2", "--node-rank", str(k),
                       "--nproc-per-node", "1") for k in (0, 1)]
    outs = [(n.communicate(timeout=_WAIT_S)[0], n.returncode) for n in nodes]
    for rank, (out, code) in enumerate(outs):
        assert code == 0 and f"rank {rank} sum 3.0" in out, out[-2000:]


def test_launcher_ends_the_siblings_of_a_failed_rank(tmp_path):
    """Rank 0 times out waiting for rank 1 (which sleeps 4 s); the launcher ends rank 1
    at once and exits with rank 0's code."""
    job = _launcher(tmp_path, _free_port(), "--transport", "tcp", "--nproc-per-node", "2",
                    MISBEHAVE="1", HOW="hang", GROUP_TIMEOUT="1.5")
    out = job.communicate(timeout=_WAIT_S)[0]
    assert job.returncode == 1, out[-2000:]
    assert "rank 0 error: [Rank 0] WorkTCP(SeqNum=1, OpType=ALLREDUCE" in out, out[-2000:]


def test_mp_spawn_with_pythons_multiprocessing_forms_a_group(tmp_path, monkeypatch):
    """The DDP tutorial (mp.spawn, then init_process_group(rank, world_size)) where spawn
    uses Python's multiprocessing (no mpirun installed, or asked for): the spawned
    processes connect by TCP and train as under the MPI job."""
    from tests.distributed.test_spawn_job import _run, _single_process_ddp_weight
    monkeypatch.setenv("EMBER_SPAWN_LAUNCHER", "multiprocessing")
    job = _run("env", tmp_path)
    assert job.returncode == 0 and "spawned job done" in job.stdout, job.stderr[-3000:]
    expected = _single_process_ddp_weight()
    for rank in range(2):
        result = np.load(tmp_path / f"rank{rank}.npy")
        np.testing.assert_array_equal(result[:3], [3.0, 3.0, 3.0])
        np.testing.assert_allclose(result[3:], expected, rtol=1e-5, atol=1e-6)
