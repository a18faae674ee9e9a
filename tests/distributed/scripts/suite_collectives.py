"""Process groups, collectives, point-to-point and object collectives: the same program
under torch (gloo) and ember (MPI), compared on every rank. Cases re-express what
PyTorch's test_c10d_common.py / test_c10d_gloo.py exercise; see suite_harness.py."""
from __future__ import annotations

import datetime
import os
import pickle

import numpy as np

from suite_harness import case, data, main

OPS = ["SUM", "PRODUCT", "MIN", "MAX"]
BIT_OPS = ["BAND", "BOR", "BXOR"]


# --- the default group ------------------------------------------------------------------
@case("group: rank, world size, is_initialized, backend")
def _(x):
    d = x.dist
    return d.get_rank(), d.get_world_size(), d.is_initialized(), d.get_backend(), \
        d.get_rank(d.group.WORLD), d.get_world_size(group=d.group.WORLD)


@case("group: availability")
def _(x):
    return x.dist.is_available(), x.dist.is_gloo_available()


@case("group: get_process_group_ranks of WORLD")
def _(x):
    return x.dist.get_process_group_ranks(x.dist.group.WORLD)


@case("group: init twice", errors="twice")
def _(x):
    x.dist.init_process_group("gloo")


@case("group: Backend names")
def _(x):
    B = x.dist.Backend
    return B.GLOO, B.NCCL, B.MPI, B("GLOO"), isinstance(B.GLOO, str), \
        x.dist.get_backend() == B.GLOO


# --- all_reduce ---------------------------------------------------------------------------
def _all_reduce_case(op: str, dtype: str, seed: int):
    @case(f"all_reduce {op} {dtype}")
    def _(x):
        t = x.tensor(data(x.R, (2, 3), dtype, seed))
        x.dist.all_reduce(t, op=getattr(x.dist.ReduceOp, op))
        return t


for _dtype in ["float32", "float64", "int32", "int64"]:
    for _op in OPS:
        _all_reduce_case(_op, _dtype, seed=1 if _op == "PRODUCT" else 0)
for _dtype in ["int32", "int64", "uint8"]:
    for _op in BIT_OPS:
        _all_reduce_case(_op, _dtype, seed=1)
for _op in ["SUM", "MAX", "MIN", "PRODUCT"]:
    _all_reduce_case(_op, "bool", seed=0)
_all_reduce_case("SUM", "float16", 0)
_all_reduce_case("MAX", "int8", 0)


def _avg_by_sum(x):
    t = x.tensor(data(x.R, (2, 3), "float32"))
    x.dist.all_reduce(t)
    return t / x.W


@case("all_reduce AVG float32", oracle=_avg_by_sum, tol=1e-6)
def _(x):
    t = x.tensor(data(x.R, (2, 3), "float32"))
    x.dist.all_reduce(t, op=x.dist.ReduceOp.AVG)
    return t


@case("all_reduce 0-d tensor")
def _(x):
    t = x.torch.tensor(float(x.R + 1))
    x.dist.all_reduce(t)
    return t


@case("all_reduce empty tensor")
def _(x):
    t = x.torch.zeros(0, 3)
    x.dist.all_reduce(t)
    return t


@case("all_reduce of a transposed view writes through")
def _(x):
    base = x.tensor(data(x.R, (3, 4)))
    x.dist.all_reduce(base.t())
    return base


@case("all_reduce of a slice leaves the rest")
def _(x):
    base = x.tensor(data(x.R, (6,)))
    x.dist.all_reduce(base[1:4], op=x.dist.ReduceOp.MAX)
    return base


@case("all_reduce async_op Work.wait is_completed")
def _(x):
    t = x.tensor(data(x.R, (5,)))
    work = x.dist.all_reduce(t, async_op=True)
    ok = work.wait()
    return ok, work.is_completed(), work.is_success() if hasattr(work, "is_success") else True, t


@case("all_reduce async result() gives the tensors")
def _(x):
    t = x.tensor(data(x.R, (3,)))
    work = x.dist.all_reduce(t, async_op=True)
    work.wait()
    return work.result()


@case("all_reduce several async in flight")
def _(x):
    ts = [x.tensor(data(x.R, (4,), seed=s)) for s in range(4)]
    works = [x.dist.all_reduce(t, op=getattr(x.dist.ReduceOp, OPS[i]), async_op=True)
             for i, t in enumerate(ts)]
    for w in works:
        w.wait()
    return ts


# ember issued small async all_reduce/broadcast as MPI_Iallreduce/Ibcast, which never
# match the blocking calls of ranks that called synchronously: these hung
@case("all_reduce async on rank 0, synchronous on the others")
def _(x):
    t = x.tensor(data(x.R, (4,)))
    if x.R == 0:
        x.dist.all_reduce(t, async_op=True).wait()
    else:
        x.dist.all_reduce(t)
    return t


@case("broadcast async on the source only")
def _(x):
    t = x.tensor(data(x.R, (4,)))
    if x.R == 0:
        x.dist.broadcast(t, 0, async_op=True).wait()
    else:
        x.dist.broadcast(t, 0)
    return t


@case("all_reduce with ReduceOp given as the enum's class attribute by name")
def _(x):
    t = x.tensor(data(x.R, (3,)))
    x.dist.all_reduce(t, x.dist.ReduceOp.MAX)
    return t, str(x.dist.ReduceOp.MAX).split(".")[-1]


@case("all_reduce BAND on float32", errors="BAND")
def _(x):
    t = x.tensor(data(x.R, (3,)))
    x.dist.all_reduce(t, op=x.dist.ReduceOp.BAND)


# --- broadcast / reduce -------------------------------------------------------------------
for _src in (0, "last"):
    for _dtype in ("float32", "int64", "bool", "float64"):
        def _bc(src=_src, dtype=_dtype):
            @case(f"broadcast src={src} {dtype}")
            def _(x):
                s = x.W - 1 if src == "last" else src
                t = x.tensor(data(x.R, (2, 2), dtype))
                x.dist.broadcast(t, src=s)
                return t
        _bc()


@case("broadcast async")
def _(x):
    t = x.tensor(data(x.R, (4,)))
    w = x.dist.broadcast(t, 1, async_op=True)
    w.wait()
    return t


@case("broadcast 0-d int")
def _(x):
    t = x.torch.tensor(10 * x.R + 3)
    x.dist.broadcast(t, src=x.W - 1)
    return t


@case("broadcast src out of range", errors="broadcast")
def _(x):
    x.dist.broadcast(x.torch.zeros(2), src=x.W)


for _dst, _op, _dtype in [(0, "SUM", "float32"), ("last", "MAX", "float64"),
                          (1, "PRODUCT", "int64"), (0, "MIN", "int32"), (1, "BOR", "int64")]:
    def _rd(dst=_dst, op=_op, dtype=_dtype):
        @case(f"reduce dst={dst} {op} {dtype}")
        def _(x):
            d = x.W - 1 if dst == "last" else dst
            t = x.tensor(data(x.R, (3,), dtype, seed=1))
            x.dist.reduce(t, dst=d, op=getattr(x.dist.ReduceOp, op))
            return t if x.R == d else None
    _rd()


@case("reduce async dst=0")
def _(x):
    t = x.tensor(data(x.R, (3,)))
    x.dist.reduce(t, 0, async_op=True).wait()
    return t if x.R == 0 else None


# --- gathers ------------------------------------------------------------------------------
for _dtype in ("float32", "int64", "bool"):
    def _ag(dtype=_dtype):
        @case(f"all_gather {dtype}")
        def _(x):
            outs = [x.torch.zeros(2, 3, dtype=x.dtype(dtype)) for _ in range(x.W)]
            x.dist.all_gather(outs, x.tensor(data(x.R, (2, 3), dtype)))
            return outs

        @case(f"all_gather_into_tensor {dtype}")
        def _(x):
            out = x.torch.zeros(2 * x.W, 3, dtype=x.dtype(dtype))
            x.dist.all_gather_into_tensor(out, x.tensor(data(x.R, (2, 3), dtype)))
            return out
    _ag()


@case("all_gather async")
def _(x):
    outs = [x.torch.zeros(4) for _ in range(x.W)]
    x.dist.all_gather(outs, x.tensor(data(x.R, (4,))), async_op=True).wait()
    return outs


@case("all_gather 0-d tensors")
def _(x):
    outs = [x.torch.tensor(0.0) for _ in range(x.W)]
    x.dist.all_gather(outs, x.torch.tensor(float(x.R)))
    return outs


@case("all_gather_into_tensor wrong output size", errors="all_gather_into_tensor")
def _(x):
    x.dist.all_gather_into_tensor(x.torch.zeros(2 * x.W + 1), x.torch.zeros(2))


@case("all_gather_into_tensor dtype mismatch", errors="all_gather_into_tensor")
def _(x):
    x.dist.all_gather_into_tensor(x.torch.zeros(2 * x.W, dtype=x.torch.int64),
                                  x.torch.zeros(2))


@case("all_gather list of the wrong length", errors="all_gather")
def _(x):
    x.dist.all_gather([x.torch.zeros(2)] * (x.W + 1), x.torch.zeros(2))


for _dst in (0, "last"):
    def _ga(dst=_dst):
        @case(f"gather dst={dst}")
        def _(x):
            d = x.W - 1 if dst == "last" else dst
            outs = [x.torch.zeros(3) for _ in range(x.W)] if x.R == d else None
            x.dist.gather(x.tensor(data(x.R, (3,))), outs, dst=d)
            return outs

        @case(f"scatter src={dst}")
        def _(x):
            s = x.W - 1 if dst == "last" else dst
            ins = [x.tensor(data(r, (3,), seed=2)) for r in range(x.W)] if x.R == s else None
            out = x.torch.zeros(3)
            x.dist.scatter(out, ins, src=s)
            return out
    _ga()


@case("gather int64 async")
def _(x):
    outs = [x.torch.zeros(2, dtype=x.torch.int64) for _ in range(x.W)] if x.R == 0 else None
    x.dist.gather(x.tensor(data(x.R, (2,), "int64")), outs, dst=0, async_op=True).wait()
    return outs


# every rank must refuse locally (a rank that went on into the collective would hang)
@case("gather: a list on non-destination ranks, a short one on the destination", errors="gather")
def _(x):
    outs = [x.torch.zeros(3) for _ in range(x.W if x.R else x.W - 1)]
    x.dist.gather(x.torch.zeros(3), outs, dst=0)


@case("scatter: a list on non-source ranks, none on the source", errors="scatter")
def _(x):
    ins = [x.torch.zeros(3) for _ in range(x.W)] if x.R else None
    x.dist.scatter(x.torch.zeros(3), ins, src=0)


# --- reduce_scatter / all_to_all ----------------------------------------------------------
def _reduce_scatter_oracle(op):
    def oracle(x):
        full = x.tensor(data(x.R, (x.W * 2,), seed=1))
        x.dist.all_reduce(full, op=getattr(x.dist.ReduceOp, op))
        return full[2 * x.R:2 * x.R + 2]
    return oracle


for _op in ("SUM", "MAX", "PRODUCT", "MIN"):
    def _rs(op=_op):
        @case(f"reduce_scatter_tensor {op}", oracle=_reduce_scatter_oracle(op))
        def _(x):
            out = x.torch.zeros(2)
            x.dist.reduce_scatter_tensor(out, x.tensor(data(x.R, (x.W * 2,), seed=1)),
                                         op=getattr(x.dist.ReduceOp, op))
            return out

        @case(f"reduce_scatter list {op}", oracle=_reduce_scatter_oracle(op))
        def _(x):
            out = x.torch.zeros(2)
            full = x.tensor(data(x.R, (x.W * 2,), seed=1))
            x.dist.reduce_scatter(out, list(full.chunk(x.W)),
                                  op=getattr(x.dist.ReduceOp, op))
            return out
    _rs()


@case("reduce_scatter_tensor wrong input size", errors="reduce_scatter_tensor")
def _(x):
    x.dist.reduce_scatter_tensor(x.torch.zeros(2), x.torch.zeros(2 * x.W + 1))


@case("all_to_all_single even")
def _(x):
    out = x.torch.zeros(2 * x.W)
    x.dist.all_to_all_single(out, x.tensor(data(x.R, (2 * x.W,))))
    return out


@case("all_to_all_single 2-D rows")
def _(x):
    out = x.torch.zeros(x.W, 3, dtype=x.torch.int64)
    x.dist.all_to_all_single(out, x.tensor(data(x.R, (x.W, 3), "int64")))
    return out


def _splits(rank, w):
    """Rank r sends (r + j) % 3 + 1 elements to rank j."""
    return [(rank + j) % 3 + 1 for j in range(w)]


@case("all_to_all_single uneven split sizes")
def _(x):
    ins = _splits(x.R, x.W)
    outs = [_splits(j, x.W)[x.R] for j in range(x.W)]
    inp = x.tensor(np.arange(sum(ins), dtype=np.float32) + 100 * x.R)
    out = x.torch.zeros(sum(outs))
    x.dist.all_to_all_single(out, inp, output_split_sizes=outs, input_split_sizes=ins)
    return out


@case("all_to_all_single uneven splits of 2-D rows, async")
def _(x):
    ins = _splits(x.R, x.W)
    outs = [_splits(j, x.W)[x.R] for j in range(x.W)]
    inp = x.tensor((np.arange(sum(ins) * 2) + 10 * x.R).reshape(-1, 2))
    out = x.torch.zeros(sum(outs), 2, dtype=x.torch.int64)
    x.dist.all_to_all_single(out, inp, outs, ins, async_op=True).wait()
    return out


@case("all_to_all_single split sizes not summing to the input", errors="all_to_all_single")
def _(x):
    x.dist.all_to_all_single(x.torch.zeros(x.W), x.torch.zeros(x.W),
                             output_split_sizes=[1] * x.W, input_split_sizes=[2] * x.W)


def _all_to_all_oracle(x):
    ins = [x.tensor(data(x.R, (j + 1,), seed=j)) for j in range(x.W)]
    outs = []
    for j in range(x.W):                   # rank j's piece for me, by broadcast
        got = x.tensor(data(j, (x.R + 1,), seed=x.R))
        outs.append(got)
    return outs


@case("all_to_all lists of uneven tensors", oracle=_all_to_all_oracle)
def _(x):
    ins = [x.tensor(data(x.R, (j + 1,), seed=j)) for j in range(x.W)]
    outs = [x.torch.zeros(x.R + 1) for _ in range(x.W)]
    x.dist.all_to_all(outs, ins)
    return outs


@case("all_gather into tensors of the wrong shape", errors="all_gather")
def _(x):
    x.dist.all_gather([x.torch.zeros(3) for _ in range(x.W)], x.torch.zeros(2))


@case("broadcast into a transposed view writes through")
def _(x):
    base = x.tensor(data(x.R, (2, 3)))
    x.dist.broadcast(base.t(), src=1)
    return base


@case("all_reduce complex64 SUM")
def _(x):
    t = x.tensor(data(x.R, (3,)) + 1j * data(x.R, (3,), seed=2)).to(x.torch.complex64)
    x.dist.all_reduce(t)
    return x.torch.view_as_real(t)


@case("all_reduce bfloat16 SUM")
def _(x):
    t = x.tensor(data(x.R, (4,))).to(x.torch.bfloat16)
    x.dist.all_reduce(t)
    return t


@case("all_reduce Work.get_future().wait() gives the tensors")
def _(x):
    t = x.tensor(data(x.R, (3,)))
    fut = x.dist.all_reduce(t, async_op=True).get_future()
    return fut.wait()


@case("all_to_all_single with a zero split")
def _(x):
    ins = [0 if j == 0 else 2 for j in range(x.W)]          # nothing to rank 0
    outs = [0 if x.R == 0 else 2 for _ in range(x.W)]
    inp = x.tensor(np.arange(sum(ins), dtype=np.float32) + 10 * x.R)
    out = x.torch.zeros(sum(outs))
    x.dist.all_to_all_single(out, inp, output_split_sizes=outs, input_split_sizes=ins)
    return out


# --- barrier / monitored_barrier ----------------------------------------------------------
@case("barrier")
def _(x):
    return x.dist.barrier()


@case("barrier async")
def _(x):
    w = x.dist.barrier(async_op=True)
    w.wait()
    return w.is_completed()


@case("monitored_barrier")
def _(x):
    return x.dist.monitored_barrier(timeout=datetime.timedelta(seconds=30))


@case("monitored_barrier wait_all_ranks")
def _(x):
    return x.dist.monitored_barrier(timeout=datetime.timedelta(seconds=30),
                                    wait_all_ranks=True)


# --- point-to-point -----------------------------------------------------------------------
@case("send/recv ring")
def _(x):
    nxt, prv = (x.R + 1) % x.W, (x.R - 1) % x.W
    out = x.torch.zeros(3)
    if x.R % 2 == 0:
        x.dist.send(x.tensor(data(x.R, (3,))), nxt)
        x.dist.recv(out, prv)
    else:
        x.dist.recv(out, prv)
        x.dist.send(x.tensor(data(x.R, (3,))), nxt)
    return out


@case("isend/irecv ring with tags, out of order")
def _(x):
    nxt, prv = (x.R + 1) % x.W, (x.R - 1) % x.W
    a, b = x.torch.zeros(2), x.torch.zeros(2, dtype=x.torch.int64)
    rb = x.dist.irecv(b, prv, tag=7)
    ra = x.dist.irecv(a, prv, tag=3)
    sa = x.dist.isend(x.tensor(data(x.R, (2,))), nxt, tag=3)
    sb = x.dist.isend(x.tensor(data(x.R, (2,), "int64")), nxt, tag=7)
    for w in (sa, sb, ra, rb):
        w.wait()
    return a, b, ra.is_completed()


@case("batch_isend_irecv ring")
def _(x):
    nxt, prv = (x.R + 1) % x.W, (x.R - 1) % x.W
    out = x.torch.zeros(2, 2)
    ops = [x.dist.P2POp(x.dist.isend, x.tensor(data(x.R, (2, 2))), nxt),
           x.dist.P2POp(x.dist.irecv, out, prv)]
    for w in x.dist.batch_isend_irecv(ops):
        w.wait()
    return out


@case("batch_isend_irecv both neighbours with tags")
def _(x):
    nxt, prv = (x.R + 1) % x.W, (x.R - 1) % x.W
    a, b = x.torch.zeros(3), x.torch.zeros(3)
    ops = [x.dist.P2POp(x.dist.irecv, a, prv, tag=1), x.dist.P2POp(x.dist.irecv, b, nxt, tag=2),
           x.dist.P2POp(x.dist.isend, x.tensor(data(x.R, (3,))), nxt, tag=1),
           x.dist.P2POp(x.dist.isend, x.tensor(data(x.R, (3,), seed=4)), prv, tag=2)]
    works = x.dist.batch_isend_irecv(ops)
    for w in works:
        w.wait()
    return a, b, len(works)


@case("recv from any source returns the sender")
def _(x):
    if x.R == 0:
        got = []
        for _ in range(x.W - 1):
            t = x.torch.zeros(1)
            sender = x.dist.recv(t)
            got.append((sender, float(t.item())))
        return sorted(got)
    x.dist.send(x.torch.tensor([10.0 * x.R]), 0)
    return None


@case("send to self", errors="send")
def _(x):
    x.dist.send(x.torch.zeros(1), x.R)


# (a send to a rank outside the group is not a case: gloo's send crashes the process)


@case("batch_isend_irecv with a non-P2POp", errors="batch_isend_irecv")
def _(x):
    x.dist.batch_isend_irecv([x.torch.zeros(1)])


# --- object collectives -------------------------------------------------------------------
def _obj(rank):
    return {"rank": rank, "items": list(range(rank + 1)), "name": f"r{rank}", "t": (rank, 2.5)}


@case("all_gather_object")
def _(x):
    out = [None] * x.W
    x.dist.all_gather_object(out, _obj(x.R))
    return out


@case("all_gather_object with tensors inside")
def _(x):
    out = [None] * x.W
    x.dist.all_gather_object(out, {"t": x.tensor(data(x.R, (2,)))})
    return out


@case("broadcast_object_list src=last")
def _(x):
    objs = [_obj(x.R), "s", None] if x.R == x.W - 1 else [None, None, None]
    x.dist.broadcast_object_list(objs, src=x.W - 1)
    return objs


@case("gather_object dst=1")
def _(x):
    out = [None] * x.W if x.R == 1 else None
    x.dist.gather_object(_obj(x.R), out, dst=1)
    return out


@case("scatter_object_list src=0")
def _(x):
    out = [None]
    ins = [_obj(r) for r in range(x.W)] if x.R == 0 else None
    x.dist.scatter_object_list(out, ins, src=0)
    return out


@case("all_gather_object of None and nested values")
def _(x):
    out = [1] * x.W
    x.dist.all_gather_object(out, None if x.R == 0 else {"nested": [(x.R, [x.R] * x.R)]})
    return out


@case("scatter_object_list from the last rank")
def _(x):
    out = [None]
    ins = [{"to": r, "payload": "x" * r} for r in range(x.W)] if x.R == x.W - 1 else None
    x.dist.scatter_object_list(out, ins, src=x.W - 1)
    return out


@case("send_object_list / recv_object_list ring")
def _(x):
    nxt, prv = (x.R + 1) % x.W, (x.R - 1) % x.W
    got = [None, None]
    if x.R == 0:
        x.dist.send_object_list([_obj(x.R), "hello"], dst=nxt)
        sender = x.dist.recv_object_list(got, src=prv)
    else:
        sender = x.dist.recv_object_list(got, src=prv)
        x.dist.send_object_list([_obj(x.R), "hello"], dst=nxt)
    return got, sender


# --- new_group ----------------------------------------------------------------------------
def _sub(x, ranks):
    """new_group, kept per ranks (every rank must call new_group in the same order, so
    each group is made once, by the first case that asks)."""
    key = tuple(ranks)
    if key not in x.scratch:
        x.scratch[key] = x.dist.new_group(list(ranks))
    return x.scratch[key]


@case("new_group [0, last]: members, ranks, size")
def _(x):
    g = _sub(x, [0, x.W - 1])
    member = x.R in (0, x.W - 1)
    return member, x.dist.get_rank(g), x.dist.get_world_size(g) if member else None, \
        x.dist.get_process_group_ranks(g) if member else None, \
        g is x.dist.GroupMember.NON_GROUP_MEMBER


@case("new_group ranks given out of order [last, 0]")
def _(x):
    g = _sub(x, [x.W - 1, 0])
    if x.R not in (0, x.W - 1):
        return None
    return x.dist.get_rank(g), x.dist.get_process_group_ranks(g), \
        x.dist.get_group_rank(g, x.W - 1), x.dist.get_global_rank(g, 0)


@case("new_group all_reduce among members only")
def _(x):
    g = _sub(x, [0, x.W - 1])
    t = x.tensor(data(x.R, (3,)))
    x.dist.all_reduce(t, group=g)
    return t


@case("new_group broadcast from a global src")
def _(x):
    g = _sub(x, [0, x.W - 1])
    t = x.tensor(data(x.R, (3,)))
    if x.R in (0, x.W - 1):
        x.dist.broadcast(t, src=x.W - 1, group=g)
    return t


@case("new_group broadcast by group_src")
def _(x):
    g = _sub(x, [0, x.W - 1])
    t = x.tensor(data(x.R, (3,)))
    if x.R in (0, x.W - 1):
        x.dist.broadcast(t, group=g, group_src=1)
    return t


@case("new_group all_gather and reduce to a global dst")
def _(x):
    g = _sub(x, [0, x.W - 1])
    if x.R not in (0, x.W - 1):
        return None
    outs = [x.torch.zeros(2) for _ in range(2)]
    x.dist.all_gather(outs, x.tensor(data(x.R, (2,))), group=g)
    t = x.tensor(data(x.R, (2,), seed=3))
    x.dist.reduce(t, dst=x.W - 1, group=g)
    return outs, t if x.R == x.W - 1 else None


@case("new_group send/recv by global ranks")
def _(x):
    g = _sub(x, [0, x.W - 1])
    if x.R == 0:
        x.dist.send(x.torch.tensor([5.0, 6.0]), x.W - 1, group=g)
    elif x.R == x.W - 1:
        t = x.torch.zeros(2)
        x.dist.recv(t, 0, group=g)
        return t
    return None


@case("new_group object collective")
def _(x):
    g = _sub(x, [0, x.W - 1])
    if x.R not in (0, x.W - 1):
        return None
    out = [None, None]
    x.dist.all_gather_object(out, _obj(x.R), group=g)
    return out


@case("new_group gather and scatter to a global root")
def _(x):
    g = _sub(x, [0, x.W - 1])
    if x.R not in (0, x.W - 1):
        return None
    outs = [x.torch.zeros(2) for _ in range(2)] if x.R == x.W - 1 else None
    x.dist.gather(x.tensor(data(x.R, (2,))), outs, dst=x.W - 1, group=g)
    got = x.torch.zeros(2)
    ins = [x.tensor(data(r, (2,), seed=5)) for r in (0, 1)] if x.R == 0 else None
    x.dist.scatter(got, ins, src=0, group=g)
    return outs, got


@case("new_group isend/irecv by group rank")
def _(x):
    g = _sub(x, [0, x.W - 1])
    if x.R not in (0, x.W - 1):
        return None
    peer = 1 - x.dist.get_rank(g)
    got = x.torch.zeros(2)
    works = [x.dist.isend(x.tensor(data(x.R, (2,))), group=g, group_dst=peer),
             x.dist.irecv(got, group=g, group_src=peer)]
    for w in works:
        w.wait()
    return got


@case("new_group of every rank equals WORLD")
def _(x):
    g = _sub(x, list(range(x.W)))
    t = x.tensor(data(x.R, (2,)))
    x.dist.all_reduce(t, group=g, op=x.dist.ReduceOp.MIN)
    return x.dist.get_world_size(g), x.dist.get_rank(g), t


@case("new_group collective on a non-member is a no-op")
def _(x):
    g = _sub(x, [0, x.W - 1])
    t = x.tensor(data(x.R, (2,)))
    if x.R not in (0, x.W - 1):
        x.dist.all_reduce(t, group=g)
        return t
    x.dist.all_reduce(t, group=g)
    return t


@case("new_group with a timeout and a barrier")
def _(x):
    g = _sub(x, [1, 0])
    if x.R in (0, 1):
        x.dist.barrier(group=g)
    return x.dist.get_rank(g)


@case("new_group rank out of range", errors="new_group")
def _(x):
    x.dist.new_group([0, x.W])


@case("new_group src not in group", errors="broadcast")
def _(x):
    g = _sub(x, [0, x.W - 1])
    if x.R in (0, x.W - 1):
        x.dist.broadcast(x.torch.zeros(1), src=1 if x.W > 2 else 5, group=g)
    else:
        raise ValueError("broadcast: not a member (this rank makes no call)")


@case("destroy a sub-group, then the world still works")
def _(x):
    g = x.dist.new_group([0, 1])
    x.dist.destroy_process_group(g)
    t = x.tensor(data(x.R, (2,)))
    x.dist.all_reduce(t)
    return t


@case("new_subgroups_by_enumeration [[0, last], the rest]")
def _(x):
    lists = [[0, x.W - 1], list(range(1, x.W - 1))]
    mine, groups = x.dist.new_subgroups_by_enumeration(lists)
    t = x.tensor(data(x.R, (2,)))
    x.dist.all_reduce(t, group=mine)
    return len(groups), x.dist.get_rank(mine), x.dist.get_world_size(mine), t


@case("new_subgroups(group_size=1) and the whole group")
def _(x):
    one, ones = x.dist.new_subgroups(group_size=1)
    whole, _ = x.dist.new_subgroups(group_size=x.W)
    t = x.tensor(data(x.R, (2,)))
    x.dist.all_reduce(t, group=whole)
    return len(ones), x.dist.get_world_size(one), x.dist.get_rank(whole), t


@case("new_subgroups with a size that does not divide the world", errors="group_size")
def _(x):
    x.dist.new_subgroups(group_size=x.W - 1)


@case("new_subgroups_by_enumeration with a rank twice", errors="appeared in both")
def _(x):
    x.dist.new_subgroups_by_enumeration([[0], [0]])


@case("all_reduce_coalesced and all_gather_coalesced")
def _(x):
    a, b = x.tensor(data(x.R, (2,))), x.tensor(data(x.R, (3,), seed=2))
    x.dist.all_reduce_coalesced([a, b])
    outs = [[x.torch.zeros(2), x.torch.zeros(1)] for _ in range(x.W)]   # one list per rank
    x.dist.all_gather_coalesced(outs, [x.tensor(data(x.R, (2,))),
                                       x.torch.tensor([float(x.R)])])
    return a, b, outs


@case("launch and backend queries")
def _(x):
    d = x.dist
    return d.get_node_local_rank(), d.is_torchelastic_launched(), \
        d.is_backend_available("gloo"), d.get_default_backend_for_device("cpu"), \
        [d.supports_complex(getattr(d.ReduceOp, op)) for op in OPS + BIT_OPS]


# --- init / destroy (run last: they replace the default group) ------------------------------
_PORT = [int(os.environ.get("MASTER_PORT", "29500")) + 17]


def _next_port():
    _PORT[0] += 1
    return _PORT[0]


# --- stores -------------------------------------------------------------------------------------
_KEEP = []      # stores live for the whole job: rank 0's serves the others until the end


def _tcp_store(x):
    store = x.dist.TCPStore("127.0.0.1", _next_port(), x.W, x.R == 0,
                            datetime.timedelta(seconds=30))
    _KEEP.append(store)
    return store


@case("stores: TCPStore and PrefixStore exchange between ranks")
def _(x):
    store = _tcp_store(x)
    view = x.dist.PrefixStore("suite", store)
    view.set(f"r{x.R}", f"rank {x.R}")
    view.add("total", x.R + 1)
    values = view.multi_get([f"r{i}" for i in range(x.W)])
    store.barrier("after_writes", x.W)
    view.barrier("prefixed", x.W)
    return values, view.get("total"), store.num_keys(), sorted(view.list_keys())


@case("init_process_group store=TCPStore with rank and world_size")
def _(x):
    return _reinit(x, store=_tcp_store(x), rank=x.R, world_size=x.W)


@case("init_process_group store=FileStore with rank and world_size")
def _(x):
    path = f"/tmp/ember_suite_store_{os.environ.get('MASTER_PORT')}_{_next_port()}_{x.name}"
    store = x.dist.FileStore(path, x.W)
    _KEEP.append(store)
    return _reinit(x, store=store, rank=x.R, world_size=x.W)


def _reinit(x, **kwargs):
    x.dist.destroy_process_group()
    before = x.dist.is_initialized()
    x.dist.init_process_group("gloo", **kwargs)
    t = x.tensor(data(x.R, (2,)))
    x.dist.all_reduce(t)
    return before, x.dist.is_initialized(), x.dist.get_rank(), x.dist.get_world_size(), t


@case("init_process_group env:// again after destroy")
def _(x):
    os.environ["MASTER_PORT"] = str(_next_port())
    return _reinit(x, init_method="env://")


@case("init_process_group tcp:// with rank and world_size")
def _(x):
    return _reinit(x, init_method=f"tcp://127.0.0.1:{_next_port()}", rank=x.R,
                   world_size=x.W)


@case("init_process_group file:// with a timeout")
def _(x):
    path = f"/tmp/ember_suite_{os.environ.get('MASTER_PORT')}_{_next_port()}_{x.name}"
    return _reinit(x, init_method=f"file://{path}", rank=x.R, world_size=x.W,
                   timeout=datetime.timedelta(seconds=45))


@case("init_process_group rank/world_size without init_method (env)")
def _(x):
    os.environ["MASTER_PORT"] = str(_next_port())
    return _reinit(x, rank=x.R, world_size=x.W)


@case("collective after destroy_process_group", errors="all_reduce")
def _(x):
    x.dist.destroy_process_group()
    try:
        x.dist.all_reduce(x.torch.zeros(1))
    finally:
        os.environ["MASTER_PORT"] = str(_next_port())
        x.dist.init_process_group("gloo", rank=x.R, world_size=x.W)


@case("destroy_process_group: is_initialized becomes False")
def _(x):
    x.dist.destroy_process_group()
    gone = x.dist.is_initialized()
    os.environ["MASTER_PORT"] = str(_next_port())
    x.dist.init_process_group("gloo", rank=x.R, world_size=x.W)
    return gone, x.dist.is_initialized(), pickle.dumps(x.dist.get_rank())


if __name__ == "__main__":
    main()
