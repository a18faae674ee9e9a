"""Every collective and point-to-point op against numpy's answer, at any world size.

Run by test_distributed.py through the launcher; each rank asserts, and a failed
assertion aborts the job (the test sees a non-zero exit and the rank's message).
"""
import numpy as np

import ember
import ember.distributed as dist
from ember.distributed import ReduceOp

dist.init_process_group(backend="mpi")
R, W = dist.get_rank(), dist.get_world_size()


def value(rank, shape=(2, 3), dtype=np.float32):
    """Rank-dependent data every rank can recompute for any other rank."""
    rng = np.random.default_rng(100 + rank)
    return (rng.standard_normal(shape) * 3).astype(dtype)


def check(got, want, what, tol=1e-5):
    got = got.detach().numpy() if hasattr(got, "detach") else np.asarray(got)
    assert got.shape == np.shape(want), f"rank {R} {what}: shape {got.shape} != {np.shape(want)}"
    assert np.allclose(got.astype(np.float64), np.asarray(want, np.float64), atol=tol,
                       rtol=tol), f"rank {R} {what}: {got} != {want}"


def test_all_reduce_ops():
    everyone = [value(r) for r in range(W)]
    for op, fn in [(ReduceOp.SUM, np.sum), (ReduceOp.PRODUCT, np.prod), (ReduceOp.MIN, np.min),
                   (ReduceOp.MAX, np.max), (ReduceOp.AVG, np.mean)]:
        t = ember.tensor(value(R))
        dist.all_reduce(t, op=op)
        check(t, fn(np.stack(everyone), axis=0), f"all_reduce {op}", tol=1e-4)
    ints = ember.tensor(np.arange(4) + R)
    dist.all_reduce(ints)
    assert ints.dtype == ember.int64
    check(ints, sum(np.arange(4) + r for r in range(W)), "all_reduce int64")
    flags = ember.tensor([R == 0, False, True])
    dist.all_reduce(flags)               # SUM of bools is a logical or, as in PyTorch
    check(flags, [True, False, True], "all_reduce bool")
    for dtype in (ember.float16, ember.bfloat16, ember.float64):
        t = ember.full((3,), float(R + 1), dtype=dtype)
        dist.all_reduce(t)
        assert t.dtype == dtype
        check(t.float(), np.full(3, W * (W + 1) / 2), f"all_reduce {dtype}")


def test_all_reduce_non_contiguous_and_async():
    base = ember.tensor(value(R, (3, 4)))
    view = base.t()                      # strided: goes through a staging copy
    work = dist.all_reduce(view, async_op=True)
    work.wait()
    assert work.is_completed()
    check(base, sum(value(r, (3, 4)) for r in range(W)), "all_reduce of a transposed view")


def test_broadcast_and_reduce():
    t = ember.tensor(value(R))
    dist.broadcast(t, src=W - 1)
    check(t, value(W - 1), "broadcast")
    t = ember.tensor(value(R))
    dist.reduce(t, dst=0, op=ReduceOp.MAX)
    if R == 0:
        check(t, np.max(np.stack([value(r) for r in range(W)]), axis=0), "reduce")


def test_gathers_and_scatters():
    outs = [ember.zeros(2, 3) for _ in range(W)]
    dist.all_gather(outs, ember.tensor(value(R)))
    for r in range(W):
        check(outs[r], value(r), f"all_gather[{r}]")
    flat = ember.zeros(W * 2, 3)
    dist.all_gather_into_tensor(flat, ember.tensor(value(R)))
    check(flat, np.concatenate([value(r) for r in range(W)]), "all_gather_into_tensor")
    got = [ember.zeros(2, 3) for _ in range(W)] if R == 0 else None
    dist.gather(ember.tensor(value(R)), got, dst=0)
    if R == 0:
        for r in range(W):
            check(got[r], value(r), f"gather[{r}]")
    out = ember.zeros(2, 3)
    pieces = [ember.tensor(value(10 + r)) for r in range(W)] if R == 0 else None
    dist.scatter(out, pieces, src=0)
    check(out, value(10 + R), "scatter")


def test_reduce_scatter():
    inputs = {r: [value(20 + r * W + k) for k in range(W)] for r in range(W)}
    out = ember.zeros(2, 3)
    dist.reduce_scatter(out, [ember.tensor(a) for a in inputs[R]])
    check(out, sum(inputs[r][R] for r in range(W)), "reduce_scatter", tol=1e-4)
    out = ember.zeros(2, 3)
    dist.reduce_scatter_tensor(out, ember.tensor(np.concatenate(inputs[R])), op=ReduceOp.AVG)
    check(out, sum(inputs[r][R] for r in range(W)) / W, "reduce_scatter_tensor AVG", tol=1e-4)


def test_all_to_all():
    # rank r sends (r + 1) * (k + 1) rows to rank k: uneven splits
    def rows(src, dst):
        return np.full(((src + 1) * (dst + 1), 2), 10 * src + dst, np.float32)
    inp = ember.tensor(np.concatenate([rows(R, k) for k in range(W)]))
    out_rows = [(k + 1) * (R + 1) for k in range(W)]
    out = ember.zeros(sum(out_rows), 2)
    dist.all_to_all_single(out, inp, output_split_sizes=out_rows,
                           input_split_sizes=[(R + 1) * (k + 1) for k in range(W)])
    check(out, np.concatenate([rows(k, R) for k in range(W)]), "all_to_all_single")
    outs = [ember.zeros(*rows(k, R).shape) for k in range(W)]
    dist.all_to_all(outs, [ember.tensor(rows(R, k)) for k in range(W)])
    for k in range(W):
        check(outs[k], rows(k, R), f"all_to_all[{k}]")


def test_point_to_point():
    right, left = (R + 1) % W, (R - 1) % W
    got = ember.zeros(2, 3)
    ops = [dist.P2POp(dist.isend, ember.tensor(value(R)), right),
           dist.P2POp(dist.irecv, got, left)]
    for work in dist.batch_isend_irecv(ops):
        work.wait()
    check(got, value(left), "batch_isend_irecv ring")
    if R == 0:
        dist.send(ember.tensor(value(7)), dst=W - 1, tag=3)
    if R == W - 1:
        got = ember.zeros(2, 3)
        assert dist.recv(got, tag=3) == 0, f"rank {R}: recv from any source"
        check(got, value(7), "send/recv")


def test_new_group():
    evens = list(range(0, W, 2))
    g = dist.new_group(evens)
    if R in evens:
        assert dist.get_world_size(g) == len(evens) and dist.get_rank(g) == evens.index(R)
        t = ember.tensor(value(R))
        dist.all_reduce(t, group=g)
        check(t, sum(value(r) for r in evens), "all_reduce on new_group")
        t = ember.tensor(value(R))
        dist.broadcast(t, src=evens[-1], group=g)
        check(t, value(evens[-1]), "broadcast on new_group (global src)")
    else:
        assert dist.get_rank(g) == -1
    dist.destroy_process_group(g) if g is not dist.GroupMember.NON_GROUP_MEMBER else None


def test_object_collectives():
    got = [None] * W
    dist.all_gather_object(got, {"rank": R, "payload": "x" * (R * 37)})
    assert got == [{"rank": r, "payload": "x" * (r * 37)} for r in range(W)], got
    objs = [("from", R), [R] * R] if R == W - 1 else [None, None]
    dist.broadcast_object_list(objs, src=W - 1)
    assert objs == [("from", W - 1), [W - 1] * (W - 1)], objs
    gathered = [None] * W if R == 0 else None
    dist.gather_object(R * 10, gathered, dst=0)
    if R == 0:
        assert gathered == [r * 10 for r in range(W)], gathered
    out = [None]
    dist.scatter_object_list(out, [f"to {r}" for r in range(W)] if R == 0 else None, src=0)
    assert out == [f"to {R}"], out


def test_errors_name_the_op():
    try:
        dist.all_gather_into_tensor(ember.zeros(3), ember.zeros(2))
    except ValueError as err:
        assert "all_gather_into_tensor" in str(err) and "world_size" in str(err), err
    else:
        raise AssertionError("a wrongly sized output must be refused")


for name, fn in list(globals().items()):
    if name.startswith("test_"):
        fn()
        dist.barrier()
dist.destroy_process_group()
assert not dist.is_initialized()
print(f"rank {R}/{W}: collectives OK", flush=True)
