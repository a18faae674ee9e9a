"""The TCP transport's pieces in one process: ranks are threads sharing a HashStore.

The collectives against numpy (both all-reduce algorithms, uneven ring chunks, every
op), contexts that keep point-to-point messages apart from collectives and
sub-communicators apart from their parent, refusals that name what differed, a stray
connection ignored at rendezvous, and the deadline naming the silent rank.
"""
from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from ember.distributed import HashStore, PrefixStore
from ember.distributed import tcp_comm
from ember.distributed.tcp_transport import Mailbox, PeerGone, connect_mesh


def _in_threads(world: int, fn, timeout_s: float = 20.0) -> list:
    """Run fn(comm) as `world` ranks (threads) of one TCP communicator."""
    store = HashStore()
    results, errors = [None] * world, []

    def rank_main(rank):
        try:
            mesh = connect_mesh(PrefixStore("t/", store), rank, world, timeout_s)
            comm = tcp_comm.SocketComm(mesh, list(range(world)), ("world",), timeout_s,
                                       owns_mesh=True)
            results[rank] = fn(comm)
            comm.Free()
        except BaseException as err:       # noqa: BLE001 - reported by the test
            errors.append((rank, err))
    threads = [threading.Thread(target=rank_main, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s + 10)
    if errors:
        raise errors[0][1]
    return results


def _data(rank: int, n: int, dtype) -> np.ndarray:
    return (np.random.RandomState(rank).randint(1, 5, n)).astype(dtype)


@pytest.mark.parametrize("n", [7, 200_001])          # direct exchange, ring (uneven)
@pytest.mark.parametrize("op, fold", [(tcp_comm.SUM, np.add), (tcp_comm.MAX, np.maximum),
                                      (tcp_comm.PROD, np.multiply),
                                      (tcp_comm.BXOR, np.bitwise_xor)])
def test_allreduce_matches_numpy(n, op, fold):
    world = 3

    def run(comm):
        buf = _data(comm.rank, n, np.int64)
        comm.Allreduce(tcp_comm.IN_PLACE, buf, op=op)
        return buf
    expected = _data(0, n, np.int64)
    for r in range(1, world):
        expected = fold(expected, _data(r, n, np.int64))
    for got in _in_threads(world, run):
        np.testing.assert_array_equal(got, expected)


def test_float_allreduce_leaves_the_same_bits_on_every_rank():
    def run(comm):
        buf = np.random.RandomState(comm.rank).randn(100_003).astype(np.float32)
        comm.Allreduce(tcp_comm.IN_PLACE, buf, op=tcp_comm.SUM)
        return buf
    got = _in_threads(3, run)
    assert got[0].tobytes() == got[1].tobytes() == got[2].tobytes()
    expected = sum(np.random.RandomState(r).randn(100_003).astype(np.float64)
                   for r in range(3))
    np.testing.assert_allclose(got[0], expected, rtol=1e-5, atol=1e-5)


def test_rooted_and_personalized_collectives_match_numpy():
    world = 3

    def run(comm):
        r, out = comm.rank, {}
        b = np.full(4, r, np.float32)
        comm.Bcast(b, root=2)
        out["bcast"] = b
        red = np.arange(3, dtype=np.int32) + r
        comm.Reduce(tcp_comm.IN_PLACE if r == 1 else red, red if r == 1 else None,
                    op=tcp_comm.SUM, root=1)
        out["reduce"] = red
        gathered = np.zeros(world * 2, np.int16)
        comm.Allgather(np.array([r, -r], np.int16), gathered)
        out["allgather"] = gathered
        rs = np.zeros(2, np.float64)
        comm.Reduce_scatter_block(np.arange(world * 2, dtype=np.float64) * (r + 1), rs,
                                  op=tcp_comm.SUM)
        out["reduce_scatter"] = rs
        scounts = [1, 2, 3]                     # to rank j: j + 1 elements
        send = np.arange(6, dtype=np.int64) + 10 * r
        recv = np.zeros(world * (r + 1), np.int64)
        comm.Alltoallv([send, (scounts, [0, 1, 3])],
                       [recv, ([r + 1] * world, [i * (r + 1) for i in range(world)])])
        out["alltoallv"] = recv
        comm.Barrier()
        return out
    got = _in_threads(world, run)
    for r, out in enumerate(got):
        np.testing.assert_array_equal(out["bcast"], np.full(4, 2, np.float32))
        np.testing.assert_array_equal(out["allgather"], [0, 0, 1, -1, 2, -2])
        np.testing.assert_array_equal(out["reduce_scatter"],
                                      np.arange(6)[2 * r:2 * r + 2] * 6)
        starts = [0, 1, 3]
        np.testing.assert_array_equal(
            out["alltoallv"], np.concatenate([np.arange(starts[r], starts[r] + r + 1) + 10 * s
                                              for s in range(world)]))
    np.testing.assert_array_equal(got[1]["reduce"], np.arange(3) * 3 + 3)


def test_contexts_keep_p2p_collectives_and_subgroups_apart():
    """A point-to-point message sent before a collective is not taken by it; a
    receive from any source does not take a collective's message; a sub-communicator's
    collective does not take its parent's."""
    def run(comm):
        r = comm.rank
        if r == 0:
            comm.Isend(np.array([7.0]), dest=1, tag=5)
        sub = comm.Create(comm.Get_group().Incl([0, 1]))
        if sub is not None:
            x = np.array([float(r + 10)])
            sub.Allreduce(tcp_comm.IN_PLACE, x, op=tcp_comm.SUM)
        y = np.array([float(r)])
        comm.Allreduce(tcp_comm.IN_PLACE, y, op=tcp_comm.SUM)
        got, status = np.zeros(1), tcp_comm.Status()
        if r == 1:
            req = comm.Irecv(got, source=tcp_comm.ANY_SOURCE, tag=5)
            while not tcp_comm.Request.Testall([req], [status]):
                time.sleep(0.001)
        return (None if sub is None else x[0]), y[0], got[0], status.Get_source()
    got = _in_threads(3, run)
    assert [g[0] for g in got] == [21.0, 21.0, None]
    assert [g[1] for g in got] == [3.0] * 3
    assert got[1][2:] == (7.0, 0)


def test_a_size_mismatch_is_refused_naming_both_sizes():
    def run(comm):
        buf = np.zeros(3 if comm.rank == 0 else 4, np.float32)
        try:
            comm.Allreduce(tcp_comm.IN_PLACE, buf, op=tcp_comm.SUM)
        except ValueError as err:
            return str(err)
        return None
    messages = _in_threads(2, run)
    assert any(m and "a peer sent 16 bytes where this rank expected 12 (3 x float32)" in m
               for m in messages), messages


def test_a_stray_connection_does_not_break_the_rendezvous():
    store = HashStore()
    meshes = {}

    def rank0():
        meshes[0] = connect_mesh(PrefixStore("s/", store), 0, 2, 10.0)

    t = threading.Thread(target=rank0)
    t.start()
    addr = PrefixStore("s/", store).get("round0/addr0").decode()
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as stray:
        stray.sendall(b"GET / HTTP/1.0\r\n\r\n" + b"x" * 16)
        meshes[1] = connect_mesh(PrefixStore("s/", store), 1, 2, 10.0)
    t.join(10)
    meshes[1].send(0, 1, 2, np.array([3.5]))
    _, payload = meshes[0].mailbox.take(1, 2, 1, time.monotonic() + 5)
    assert np.frombuffer(payload, np.float64)[0] == 3.5
    for m in meshes.values():
        m.close()


def test_the_deadline_and_a_gone_peer_name_the_rank():
    box = Mailbox(my_rank=0)
    with pytest.raises(TimeoutError, match="rank 0 received nothing from rank 2 before the "
                                           "deadline"):
        box.take(1, 0, 2, time.monotonic() + 0.05)
    box.deliver(1, 0, 2, bytearray(b"late"))
    box.peer_gone(2, "rank 2 closed its connection")
    assert box.take(1, 0, 2, time.monotonic() + 1) == (2, bytearray(b"late"))   # kept
    with pytest.raises(PeerGone, match="rank 2 closed its connection"):
        box.take(1, 0, 2, time.monotonic() + 1)
    assert box.poll(1, 0, (1, 2)) is None          # rank 1 may still send


def test_the_launcher_picks_tcp_for_torchruns_multi_node_form():
    from ember.distributed import _tcp_launch, run
    parse = run._parser().parse_args
    assert run._transport(parse(["--nnodes", "2", "--node-rank", "1", "t.py"]), "/x/mpirun") \
        == "tcp"
    assert run._transport(parse(["--nnodes", "2", "--hostfile", "h", "t.py"]), "/x/mpirun") \
        == "mpi"
    assert run._transport(parse(["t.py"]), "/x/mpirun") == "mpi"
    assert run._transport(parse(["t.py"]), None) == "tcp"          # no mpirun installed
    with pytest.raises(SystemExit, match="--ulfm and --hostfile need the mpi transport"):
        run._transport(parse(["--transport", "tcp", "--ulfm", "t.py"]), "/x/mpirun")
    with pytest.raises(SystemExit, match="no mpirun found"):
        run._transport(parse(["--transport", "mpi", "t.py"]), None)
    envs = _tcp_launch.rank_environments({"KEEP": "1"}, nproc=2, nnodes=3, node_rank=1)
    assert [(e["RANK"], e["LOCAL_RANK"], e["WORLD_SIZE"], e["LOCAL_WORLD_SIZE"],
             e["GROUP_RANK"], e["KEEP"]) for e in envs] == \
        [("2", "0", "6", "2", "1", "1"), ("3", "1", "6", "2", "1", "1")]


def test_shrink_group_on_a_tcp_group_says_what_it_needs():
    from ember.distributed import DistError
    from ember.distributed.mpi_engine import MPIEngine
    mesh = connect_mesh(HashStore(), 0, 1, 5.0)
    engine = MPIEngine(tcp_comm.SocketComm(mesh, [0], ("world",), 5.0, owns_mesh=True),
                       [0], 5.0, 0, api=tcp_comm)
    assert engine.work_label == "WorkTCP" and engine.direct_spec(np.ones(4)) is None
    with pytest.raises(DistError, match="started one by one and connect by TCP"):
        engine.shrink()
    engine.free()
