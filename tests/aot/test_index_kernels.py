"""Index ops as bounds-checked LLVM kernels (codegen/llvm/index_ops.py,
codegen/index_plan.py) in compiled CPU plans (the Python step loop and the native entry
point) and in ember.aot artifacts, against torch: values and gradients bit for bit,
negative indices where torch wraps them, torch's IndexError / RuntimeError for an index
out of range (naming the op, the index and the size), any index dtype torch takes."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

import ember

torch = pytest.importorskip("torch")

_RNG = np.random.default_rng(7)
X = _RNG.standard_normal((5, 4)).astype(np.float32)
I2 = np.array([[0, 4, 1, 1], [2, 2, 3, 0]])
SRC = _RNG.standard_normal((2, 4)).astype(np.float32)

# name -> fn(lib, x, i, s): written once, run by torch and by ember.compile
CASES = {
    "gather": lambda m, x, i, s: m.gather(x, 0, i),
    "gather_dim1": lambda m, x, i, s: m.gather(x, 1, i.clamp(max=3)[:, :3]),
    "take_along_dim": lambda m, x, i, s: m.take_along_dim(x, i - 5, 0),
    "scatter": lambda m, x, i, s: x.scatter(0, i[:1], s[:1]),
    "scatter_value": lambda m, x, i, s: x.scatter(0, i, 2.5),
    "scatter_add": lambda m, x, i, s: x.scatter_add(0, i, s),
    "scatter_reduce_amax": lambda m, x, i, s: x.scatter_reduce(0, i, s, "amax",
                                                               include_self=False),
    "scatter_reduce_prod": lambda m, x, i, s: x.scatter_reduce(0, i, s, "prod"),
    "scatter_reduce_sum": lambda m, x, i, s: x.scatter_reduce(0, i, s, "sum",
                                                              include_self=False),
    "scatter_reduce_mean": lambda m, x, i, s: x.scatter_reduce(0, i, s, "mean"),
    "scatter_reduce_mean_int": lambda m, x, i, s: (x * 10).long().scatter_reduce(
        0, i, (s * 10).long(), "mean", include_self=False),
    "index_select": lambda m, x, i, s: x.index_select(1, i[0].clamp(max=3)),
    "index_add": lambda m, x, i, s: x.index_add(0, i[0], m.cat([s, s * 2])),
    "index_add_alpha": lambda m, x, i, s: x.index_add(1, i[1].clamp(max=3),
                                                      m.cat([s, s, s[:1]]), alpha=0.1),
    "index_copy": lambda m, x, i, s: x.index_copy(0, i[0, 1:3], s),
    "getitem": lambda m, x, i, s: x[i],
    "getitem_negative": lambda m, x, i, s: x[-i - 1],
    "getitem_cols": lambda m, x, i, s: x[:, i[0].clamp(max=3)],
    "getitem_pairs": lambda m, x, i, s: x[i[0], i[1].clamp(max=3) - 4],
    "index_put": lambda m, x, i, s: x.index_put((i[0, :2],), s),
    "index_put_accumulate": lambda m, x, i, s: x.index_put((i[0] - 5,), s[0],
                                                           accumulate=True),
    "index_put_pairs": lambda m, x, i, s: x.index_put((i[0], i[1].clamp(max=3)), s[0],
                                                      accumulate=True),
    "masked_row_update": lambda m, x, i, s: x.index_put((i[1, :1],), m.zeros(4)),
    "embedding": lambda m, x, i, s: m.nn.functional.embedding(i, x),
    # layouts: a transposed and a flipped self, an empty index, 0-d operands (a 0-d
    # constant index is stored as one element), indexed dims apart (result dims first)
    "gather_transposed": lambda m, x, i, s: m.gather(x.t(), 1, i.t()),
    "scatter_add_flipped": lambda m, x, i, s: x.flip(0).scatter_add(0, i, s.flip(1)),
    "empty_index": lambda m, x, i, s: x.index_put((i[0, :0],), s[0], accumulate=True),
    "embedding_0d_constant": lambda m, x, i, s: m.nn.functional.embedding(m.tensor(3), x),
    "gather_0d": lambda m, x, i, s: m.gather(x[1, 2], 0, i[0, 0] * 0),
    "getitem_apart": lambda m, x, i, s: x.reshape(5, 2, 2)[i[0, :2], :, i[1, :2] % 2],
}


def _ember(*arrays):
    return [ember.tensor(a) for a in arrays]


def _index_steps(plan) -> list:
    return [s.fn.desc["op"] for s in plan.steps
            if getattr(s.fn, "desc", {}).get("kind") == "index"]


def _three_calls(fn, args):
    compiled = ember.compile(fn)
    with ember.no_grad():
        results = [compiled(*args).numpy() for _ in range(3)]
    return compiled.last[0], results


@pytest.mark.parametrize("name", list(CASES))
def test_compiled_plan_equals_torch(name):
    """Call 1 runs the Python step loop, calls 2-3 the native entry; all are torch's."""
    f = CASES[name]
    want = f(torch, *(torch.tensor(a) for a in (X, I2, SRC))).numpy()
    plan, results = _three_calls(lambda x, i, s: f(ember, x, i, s), _ember(X, I2, SRC))
    assert _index_steps(plan), [s.name for s in plan.steps]      # a kernel, not eager
    assert plan.run.native is not None, plan.run.failed
    for got in results:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype,index_dtype,op", [
    ("float64", "int64", "scatter_add"), ("int32", "int64", "scatter_amax"),
    ("int64", "int32", "index_select"), ("bool", "int64", "gather"),
    ("float16", "int32", "embedding"), ("uint8", "int64", "index_put_accumulate"),
    ("float32", "int32", "getitem"), ("complex64", "int64", "gather")])
def test_dtypes(dtype, index_dtype, op):
    x = (_RNG.standard_normal((5, 4)) * 4).astype(dtype)
    i = I2.astype(index_dtype)
    fns = {"scatter_add": lambda m, x, i: x.scatter_add(0, i, x[:2]),
           "scatter_amax": lambda m, x, i: x.scatter_reduce(0, i, x[:2], "amax"),
           "index_select": lambda m, x, i: x.index_select(0, i[0]),
           "gather": lambda m, x, i: m.gather(x, 0, i),
           "embedding": lambda m, x, i: m.nn.functional.embedding(i, x),
           "index_put_accumulate": lambda m, x, i: x.index_put((i[0],), x[0],
                                                               accumulate=True),
           "getitem": lambda m, x, i: x[i]}
    f = fns[op]
    want = f(torch, torch.tensor(x), torch.tensor(i)).numpy()
    plan, results = _three_calls(lambda a, b: f(ember, a, b), _ember(x, i))
    assert _index_steps(plan)
    for got in results:
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


ERRORS = {   # name -> (fn(lib, x, i), bad index, dim reported)
    "gather": (lambda m, x, i: m.gather(x, 0, i.reshape(1, 4)), 9, 0),
    "gather_negative": (lambda m, x, i: m.gather(x, 0, i.reshape(1, 4)), -1, 0),
    "scatter_add": (lambda m, x, i: x.scatter_add(0, i.reshape(1, 4), x[:1]), 9, 0),
    "index_select": (lambda m, x, i: x.index_select(0, i), 9, 0),
    "index_add": (lambda m, x, i: x.index_add(0, i, x[:4]), -2, 0),
    "getitem": (lambda m, x, i: x[:, i], 4, 1),
    "getitem_negative": (lambda m, x, i: x[i], -6, 0),
    "index_put": (lambda m, x, i: x.index_put((i,), x[0, 0], accumulate=True), 5, 0),
    "embedding": (lambda m, x, i: m.nn.functional.embedding(i, x), 5, 0),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_index_out_of_range_raises_torchs_error(name):
    """Every call (the Python loop, then the native entry) raises the type torch raises,
    naming the op, the bad index and the size; a good index still runs after."""
    f, bad, dim = ERRORS[name]
    idx = np.array([0, 1, bad, 2])
    with pytest.raises(Exception) as torch_error:
        f(torch, torch.tensor(X), torch.tensor(idx))
    compiled = ember.compile(lambda x, i: f(ember, x, i))
    good = f(torch, torch.tensor(X), torch.tensor(np.array([0, 1, 3, 2]))).numpy()
    for _ in range(2):
        with pytest.raises(IndexError) as err:
            compiled(*_ember(X, idx))
        assert isinstance(err.value, type(torch_error.value)), (err.value, torch_error.value)
        text = str(err.value)
        size = X.shape[dim]
        assert f"index {bad}" in text and str(size) in text, text
        assert name.split("_negative")[0].replace("getitem", "index") in text, text
        np.testing.assert_array_equal(compiled(*_ember(X, np.array([0, 1, 3, 2]))).numpy(),
                                      good)
    assert compiled.last[0].run.native is not None, compiled.last[0].run.failed


def test_gnn_scatter_add_adds_in_torchs_order():
    """A GNN's message sum: 3000 edges into 64 nodes (expanded index, torch's sorted fast
    path) and index_add of the same messages, bit for bit with torch's float32 sums."""
    rng = np.random.default_rng(3)
    msgs = rng.standard_normal((3000, 16)).astype(np.float32) * 10
    dst = rng.integers(0, 64, 3000)

    def f(m, msgs, dst):
        index = dst.unsqueeze(1).expand(-1, 16)
        return (m.zeros(64, 16).scatter_add(0, index, msgs),
                m.zeros(64, 16).index_add(0, dst, msgs))
    want = [t.numpy() for t in f(torch, torch.tensor(msgs), torch.tensor(dst))]
    compiled = ember.compile(lambda a, b: f(ember, a, b))
    for _ in range(2):
        for got, w in zip(compiled(*_ember(msgs, dst)), want):
            np.testing.assert_array_equal(got.numpy(), w)


GRADS = {
    "gather": lambda m, x, i: m.gather(x, 0, i),
    "getitem": lambda m, x, i: x[i[0]],
    "index_select": lambda m, x, i: x.index_select(0, i[1]),
    "embedding": lambda m, x, i: m.nn.functional.embedding(i, x),
    "embedding_padding": lambda m, x, i: m.nn.functional.embedding(i, x, padding_idx=2),
    "scatter_add": lambda m, x, i: (x * 1).scatter_add(0, i, x[:2] * 3),
    "index_put": lambda m, x, i: (x * 1).index_put((i[0],), x[:4] * 2, accumulate=True),
}


@pytest.mark.parametrize("name", list(GRADS))
def test_gradients_equal_torch(name):
    """Compiled backward graphs run the scatter kernels too (gather's and index's
    gradients are scatter_add / index_put accumulate; embedding's an index_put)."""
    f = GRADS[name]
    w = _RNG.standard_normal((5, 4)).astype(np.float32)
    tx = torch.tensor(w, requires_grad=True)
    (f(torch, tx, torch.tensor(I2)) ** 2).sum().backward()
    compiled = ember.compile(lambda x, i: (f(ember, x, i) ** 2).sum())
    for _ in range(2):
        ex = ember.tensor(w, requires_grad=True)
        compiled(ex, ember.tensor(I2)).backward()
        np.testing.assert_array_equal(ex.grad.numpy(), tx.grad.numpy())


def _gnn(lib):
    class Net(lib.nn.Module):
        """Embedding, message passing (index_select + scatter_add / index_add), a top-k
        gather and a masked row update: the ops a GNN or a detection head uses."""

        def __init__(self):
            super().__init__()
            self.emb = lib.nn.Embedding(10, 8)
            self.lin = lib.nn.Linear(8, 8)

        def forward(self, tok, edges, scores):
            h = self.emb(tok)
            msg = self.lin(h.index_select(0, edges[0]))
            agg = lib.zeros(tok.shape[0], 8).scatter_add(
                0, edges[1].unsqueeze(1).expand(-1, 8), msg)
            agg = agg.index_add(0, edges[1], msg)
            agg = agg.scatter_reduce(0, edges[1].unsqueeze(1).expand(-1, 8), msg, "mean",
                                     include_self=False)
            top = lib.gather(scores, 1, edges[:, :3])
            h = h.index_put((edges[0, :2],), lib.zeros(8))
            return agg + h, top, h[edges[1], edges[0] % 8]
    return Net()


def _gnn_pair():
    torch.manual_seed(0)
    ref = _gnn(torch).eval()
    port = _gnn(ember).eval()
    port.load_state_dict({k: ember.tensor(v.detach().numpy().copy())
                          for k, v in ref.state_dict().items()})
    return ref, port


TOK = np.array([1, 5, 7, 2, 9, 0])
EDGES = np.array([[0, 1, 2, 3, 4, 5, 0], [1, 2, 3, 4, 5, 0, 1]])
SCORES = np.random.default_rng(1).standard_normal((2, 5)).astype(np.float32)


def test_artifact_round_trip_and_error_channel(tmp_path):
    ref, port = _gnn_pair()
    args = _ember(TOK, EDGES, SCORES)
    path = tmp_path / "gnn.ember"
    ember.aot.compile_and_package(ember.export(port, tuple(args)), str(path))
    steps = json.loads(zipfile.ZipFile(path).read("plan.json"))["steps"]
    assert {s["op"] for s in steps if s["kind"] == "index"} >= {
        "embedding", "index_select", "scatter_add", "index_add", "gather", "index_put",
        "index", "scatter_reduce"}
    run = ember.aot.load_package(str(path))
    with torch.no_grad():
        want = ref(*(torch.tensor(a) for a in (TOK, EDGES, SCORES)))
    for _ in range(2):
        for got, w in zip(run(*args), want):
            np.testing.assert_allclose(got.numpy(), w.numpy(), rtol=1e-6, atol=1e-6)
    bad = EDGES.copy()
    bad[1, 3] = 11
    with pytest.raises(IndexError, match=r"index 11 is out of bounds for dimension 0 with "
                                         r"size 6 \(scatter_add"):
        run(*_ember(TOK, bad, SCORES))
    bad = EDGES.copy()
    bad[0, 4] = -7                   # index_select refuses negatives, as torch's
    with pytest.raises(IndexError, match=r"index out of range in self \(index -7"):
        run(*_ember(TOK, bad, SCORES))
    np.testing.assert_allclose(run(*args)[1].numpy(), want[1].numpy())    # still runs


GNN_SOURCE = """
import ember
from ember import nn

class Net(nn.Module):
    def forward(self, x, src, dst):
        return ember.zeros(6, 4).index_add(0, dst, x.index_select(0, src)) + x

def make():
    return Net()
"""


def test_cli_compiles_and_runs_index_ops(tmp_path):
    """`ember compile` packages a message-passing model; `ember run` gives torch's sums
    and reports an index out of range as an error naming it."""
    (tmp_path / "gnn.py").write_text(GNN_SOURCE)
    from ember.cli import main
    out = tmp_path / "gnn.ember"
    result = CliRunner().invoke(main, ["compile", f"{tmp_path / 'gnn.py'}:make", "--input",
                                       "x:6x4", "--input", "src:8:int64", "--input",
                                       "dst:8:int64", "-o", str(out)])
    assert result.exit_code == 0, result.output
    x = _RNG.standard_normal((6, 4)).astype(np.float32)
    src, dst = np.array([0, 1, 2, 3, 4, 5, 0, 2]), np.array([1, 2, 3, 4, 5, 0, 1, 1])
    want = (torch.zeros(6, 4).index_add(0, torch.tensor(dst), torch.tensor(x)[src])
            + torch.tensor(x)).numpy()
    for name, a in (("x", x), ("src", src), ("dst", dst)):
        np.save(tmp_path / f"{name}.npy", a)
    ins = [f"{n}={tmp_path / n}.npy" for n in ("x", "src", "dst")]
    result = CliRunner().invoke(main, ["run", str(out), *sum([["--input", i] for i in ins],
                                                               []), "-o", str(tmp_path / "o.npz")])
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["output"], want)
    dst[2] = 6
    np.save(tmp_path / "dst.npy", dst)
    result = CliRunner().invoke(main, ["run", str(out), *sum([["--input", i] for i in ins],
                                                               []), "-o", str(tmp_path / "o.npz")])
    assert result.exit_code != 0
    text = result.output + str(result.exception)
    assert "index 6 is out of bounds for dimension 0 with size 6" in text, text


def test_large_gather_splits_across_threads_and_still_reports_one_index():
    """A gather of 2**18 elements or more runs in chunks on the pool (the Python loop's
    and the native entry's); results equal torch's, and a bad index in one chunk is
    reported whole (value and size of that index)."""
    rng = np.random.default_rng(5)
    table = rng.standard_normal((1000, 64)).astype(np.float32)
    ids = rng.integers(0, 1000, 4096)
    compiled = ember.compile(lambda w, i: w[i] * 2)
    want = (torch.tensor(table)[torch.tensor(ids)] * 2).numpy()
    plan = None
    for _ in range(2):
        np.testing.assert_array_equal(compiled(*_ember(table, ids)).numpy(), want)
        plan = compiled.last[0]
    calls = [c for c in plan.run.native.calls if c["sig"] == "index"]
    assert calls and calls[0]["parallel"], calls
    bad = ids.copy()
    bad[3000] = 1000
    for _ in range(2):
        with pytest.raises(IndexError, match="index 1000 is out of bounds for dimension 0 "
                                             "with size 1000"):
            compiled(*_ember(table, bad))


def test_large_zeros_scattered_into_package_as_a_fill(tmp_path):
    """A GNN's `zeros(N, F)` too large for constant folding stays a `full` step: it
    packages as a fill (the entry's strided copy of the value's bytes), so the message
    sum into it packages too, and the in-process plan keeps its native entry."""
    class Net(ember.nn.Module):
        def forward(self, x, dst):
            agg = ember.zeros(2048, 64).index_add(0, dst, x)
            return agg, ember.full((300, 300), -2, dtype=ember.int32)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 64)).astype(np.float32)
    dst = rng.integers(0, 2048, 100)
    want = (torch.zeros(2048, 64).index_add(0, torch.tensor(dst), torch.tensor(x)).numpy(),
            np.full((300, 300), -2, np.int32))
    path = tmp_path / "fill.ember"
    ember.aot.compile_and_package(ember.export(Net(), tuple(_ember(x, dst))), str(path))
    steps = json.loads(zipfile.ZipFile(path).read("plan.json"))["steps"]
    assert [s["kind"] for s in steps].count("fill") == 2
    compiled = ember.compile(Net())
    for run in (ember.aot.load_package(str(path)), compiled, compiled):
        for got, w in zip(run(*_ember(x, dst)), want):
            np.testing.assert_array_equal(got.numpy(), w)
    assert compiled.last[0].run.native is not None, compiled.last[0].run.failed
