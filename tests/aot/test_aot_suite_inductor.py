"""What PyTorch's AOTInductor suite (test/inductor/test_aot_inductor.py) checks of
`aoti_compile_and_package` / `aoti_load_package`, re-expressed for ember.aot with torch
as the oracle: each model is written once against `lib` (torch or ember), gets torch's
weights, is exported and packaged by ember, and the loaded package's results are compared
with torch's eager model on the same inputs (several calls where state changes).

Cases: buffers and constants, buffer mutation kept across calls (and in a fresh
process), in-place ops on locals and on inputs, several and nested outputs, outputs
aliasing each other or an input, int / bool / int64-index inputs, non-tensor arguments
and keywords, split / chunk pieces, repeat_interleave, conv / linear / layer norm /
attention / LSTM models, a dynamic batch run at several sizes, and the errors for a
wrong input shape, dtype or count."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import ember

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.filterwarnings("ignore")


def _array(value):
    return value.detach().numpy() if hasattr(value, "detach") else np.asarray(value)


def _leaves(result):
    if isinstance(result, dict):
        return [x for v in result.values() for x in _leaves(v)]
    if isinstance(result, (tuple, list)):
        return [x for v in result for x in _leaves(v)]
    return [result]


def _assert_same(got, want, rtol=1e-4, atol=1e-5):
    """Same structure (tuple/list/dict types and keys), shapes, dtypes and values."""
    assert type(got).__name__ == type(want).__name__ or (
        isinstance(got, ember.Tensor) and isinstance(want, torch.Tensor)), \
        (type(got), type(want))
    if isinstance(want, dict):
        assert list(got) == list(want)
    got_leaves, want_leaves = _leaves(got), _leaves(want)
    assert len(got_leaves) == len(want_leaves)
    for g, w in zip(got_leaves, want_leaves):
        g, w = _array(g), _array(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def _pair(build):
    """(torch model, ember model with torch's weights), both in eval mode."""
    torch.manual_seed(0)
    ref = build(torch).eval()
    port = build(ember).eval()
    port.load_state_dict({k: ember.tensor(v.detach().numpy().copy())
                          for k, v in ref.state_dict().items()})
    return ref, port


def _to_ember(value):
    if isinstance(value, torch.Tensor):
        return ember.tensor(value.detach().numpy().copy())
    if isinstance(value, (tuple, list)):
        return type(value)(_to_ember(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_ember(v) for k, v in value.items()}
    return value


def _package(port, args, path, kwargs=None, dynamic_shapes=None):
    ep = ember.export(port, _to_ember(args), _to_ember(kwargs or {}),
                      dynamic_shapes=dynamic_shapes)
    return ember._inductor.aoti_load_package(
        ember._inductor.aoti_compile_and_package(ep, package_path=str(path)))


def check(build, args, tmp_path, calls=None, kwargs=None):
    """Package `build`'s ember model at `args`; every call (default: `args` once) must
    give torch's result."""
    ref, port = _pair(build)
    run = _package(port, args, tmp_path / "model.pt2", kwargs)
    for call in calls or [args]:
        with torch.no_grad():
            want = ref(*call, **(kwargs or {}))
        _assert_same(run(*_to_ember(call), **_to_ember(kwargs or {})), want)
    return run


# --- simple models, constants, outputs -------------------------------------------------------
def _simple(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = lib.nn.Linear(10, 10)

        def forward(self, x, y):
            return x + self.linear(y)
    return Model()


def _constants(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = lib.nn.Linear(4, 4)
            self.register_buffer("offset", lib.arange(4, dtype=lib.float32) * 0.5)
            self.scale = lib.tensor([2.0, 3.0, 4.0, 5.0])       # a plain tensor attribute

        def forward(self, x):
            return self.linear(x) * self.scale + self.offset + lib.tensor([1.0, 0, 0, -1.0])
    return Model()


def _outputs(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = lib.nn.Linear(6, 4)

        def forward(self, x):
            h = self.linear(x)
            return h, (h.relu(), [h.sum(-1), h * 2]), {"gate": h.sigmoid(), "flat": h.view(-1)}
    return Model()


def _aliases(lib):
    class Model(lib.nn.Module):
        def forward(self, x, y):
            z = x * 2
            return z, z.view(-1), z[1:], y, z.t()       # views of one result, an input
    return Model()


@pytest.mark.parametrize("build,shapes", [
    (_simple, [(10, 10), (10, 10)]), (_constants, [(3, 4)]), (_outputs, [(3, 6)]),
    (_aliases, [(4, 3), (2,)])], ids=["simple", "constants", "nested_outputs", "aliases"])
def test_models_and_their_outputs(build, shapes, tmp_path):
    args = tuple(torch.randn(*s) for s in shapes)
    check(build, args, tmp_path, calls=[args, tuple(torch.randn(*s) for s in shapes)])


# --- state: buffers updated per call, in-place ops ------------------------------------------
def _counter(lib):
    class Model(lib.nn.Module):
        """A buffer updated in place each call (a running sum, a step counter) and read
        after the update, as AOTInductor's buffer-mutation cases do."""
        def __init__(self):
            super().__init__()
            self.register_buffer("total", lib.zeros(2, 5))
            self.register_buffer("steps", lib.zeros((), dtype=lib.int64))
            self.linear = lib.nn.Linear(5, 5)

        def forward(self, x):
            self.total.add_(x)
            self.steps += 1
            return self.linear(self.total) * self.steps
    return Model()


@pytest.fixture(scope="module")
def counter_package(tmp_path_factory):
    """The counter model packaged once: (torch model, path)."""
    ref, port = _pair(_counter)
    path = tmp_path_factory.mktemp("aot_suite") / "counter.pt2"
    ember.aot.compile_and_package(ember.export(port, (ember.randn(2, 5),)), path)
    return ref, path


def test_buffer_updates_persist_across_calls(counter_package):
    ref, path = counter_package
    ref = type(ref)()
    ref.load_state_dict(counter_package[0].state_dict())   # fresh state: zeros
    ref.total.zero_()
    ref.steps.zero_()
    run = ember.aot.load_package(path)
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.standard_normal((2, 5), dtype=np.float32)
        with torch.no_grad():
            want = ref(torch.tensor(x))
        _assert_same(run(ember.tensor(x)), want)
    # a second load starts again from the packaged values
    x = np.ones((2, 5), np.float32)
    again = ember.aot.load_package(path)(x)
    first = ref.linear(torch.tensor(x)).detach()
    np.testing.assert_allclose(again.numpy(), first.numpy(), rtol=1e-5, atol=1e-6)


def test_buffer_updates_in_a_fresh_process(counter_package, tmp_path):
    ref, path = counter_package
    script = (
        "import sys, numpy as np\n"
        "import ember\n"
        "run = ember.aot.load_package(sys.argv[1])\n"
        "x = np.ones((2, 5), np.float32)\n"
        "run(x)\n"
        "np.save(sys.argv[2], run(x).numpy())\n")
    out = tmp_path / "second.npy"
    subprocess.run([sys.executable, "-c", script, str(path), str(out)], check=True,
                   timeout=120)
    fresh = type(ref)()
    fresh.load_state_dict(ref.state_dict())
    fresh.total.zero_()
    fresh.steps.zero_()
    with torch.no_grad():
        fresh(torch.ones(2, 5))
        want = fresh(torch.ones(2, 5))
    np.testing.assert_allclose(np.load(out), want.numpy(), rtol=1e-5, atol=1e-6)


def test_the_cli_runs_an_updating_model(counter_package, tmp_path):
    """`ember run` takes the caller's inputs only; `ember inspect` lists the updated
    buffers as the artifact's state."""
    from click.testing import CliRunner
    from ember.cli import main
    ref, path = counter_package
    x = np.ones((2, 5), np.float32)
    np.save(tmp_path / "x.npy", x)
    result = CliRunner().invoke(main, ["run", str(path), "--input", str(tmp_path / "x.npy"),
                                       "-o", str(tmp_path / "out.npz")])
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "out.npz") as out:
        got = out[out.files[0]]
    np.testing.assert_allclose(got, ref.linear(torch.tensor(x)).detach().numpy(), rtol=1e-5,
                               atol=1e-6)
    result = CliRunner().invoke(main, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    rows = {line.split("│")[2].strip(): line.split("│")[1].strip()
            for line in result.output.splitlines() if line.count("│") == 5}
    assert rows["x"] == "input" and rows["total"] == "state" and \
        rows["steps"] == "state", rows


def _in_place(lib):
    class Model(lib.nn.Module):
        def forward(self, x):
            y = x.clone()
            y.mul_(2).add_(1).relu_()
            y[0] = 7.0
            y[:, 1] += 10
            return y.sigmoid_()
    return Model()


def test_in_place_ops_on_a_local(tmp_path):
    x = torch.randn(3, 4)
    check(_in_place, (x,), tmp_path, calls=[(x,), (torch.randn(3, 4),)])


def _input_update(lib):
    class Model(lib.nn.Module):
        def forward(self, x, y):
            x.add_(y)                 # the caller's tensor is updated, as torch's is
            return x * 2
    return Model()


def test_an_input_updated_in_place_is_written_back(tmp_path):
    ref, port = _pair(_input_update)
    run = _package(port, (torch.randn(2, 3), torch.randn(2, 3)), tmp_path / "m.pt2")
    x, y = torch.randn(2, 3), torch.randn(2, 3)
    ex, ey = _to_ember((x, y))
    want = ref(x, y)
    _assert_same(run(ex, ey), want)
    np.testing.assert_allclose(ex.numpy(), x.numpy(), rtol=1e-6)     # updated like torch's
    np.testing.assert_array_equal(ey.numpy(), y.numpy())


# --- inputs of other kinds ------------------------------------------------------------------
def _int_bool(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = lib.nn.Embedding(20, 6)

        def forward(self, ids, mask, x):
            h = self.embed(ids).sum(1)
            return lib.where(mask, x, lib.zeros_like(x)) + h, ids * 3, mask.logical_not()
    return Model()


def test_int_and_bool_inputs(tmp_path):
    args = (torch.randint(0, 20, (4, 3)), torch.rand(4, 6) > 0.5, torch.randn(4, 6))
    check(_int_bool, args, tmp_path)


def _numbers(lib):
    class Model(lib.nn.Module):
        def forward(self, x, scale: float, mode: str = "add", *, bias=None):
            y = x * scale
            return y + bias if mode == "add" else y - bias
    return Model()


def test_specialized_numbers_and_keyword_tensors(tmp_path):
    """Non-tensor arguments are baked in at export and passed over at call time (as
    AOTInductor's loaded package does); tensors may come as keywords."""
    x, bias = torch.randn(3), torch.randn(3)
    check(_numbers, (x, 2.0, "add"), tmp_path, kwargs={"bias": bias},
          calls=[(x, 2.0, "add"), (torch.randn(3), 2.0, "add")])


def _pieces(lib):
    class Model(lib.nn.Module):
        def forward(self, x):
            a, b, c = lib.split(x, 2, dim=1)
            p, q = x.chunk(2, dim=0)
            return a * b + c, p - q, lib.unbind(x, 1)[2], x.repeat_interleave(2, dim=0)
    return Model()


def test_split_chunk_unbind_and_repeat_interleave(tmp_path):
    check(_pieces, (torch.randn(4, 6),), tmp_path)


def _norms(lib):
    class Model(lib.nn.Module):
        def forward(self, x):
            return (lib.nn.functional.normalize(x, dim=-1), x.norm(),
                    lib.linalg.vector_norm(x, 1, dim=0),
                    lib.linalg.vector_norm(x, float("inf"), dim=1, keepdim=True),
                    lib.linalg.vector_norm(x, 3, dim=1), x.repeat(2, 1, 3))
    return Model()


def _rows_bmm_upsample(lib):
    class Model(lib.nn.Module):
        def forward(self, x, idx, cube, a, b, image):
            return (lib.index_select(x, 0, idx.abs()), x[idx] * 2, cube[idx], lib.bmm(a, b),
                    lib.nn.functional.interpolate(image, scale_factor=2, mode="nearest"))
    return Model()


def test_index_select_bmm_and_nearest_upsample(tmp_path):
    args = (torch.randn(4, 5), torch.tensor([3, -1, 0]), torch.randn(4, 2, 3),
            torch.randn(2, 3, 4), torch.randn(2, 4, 5), torch.randn(1, 2, 3, 4))
    run = check(_rows_bmm_upsample, args, tmp_path)
    bad = list(_to_ember(args))
    bad[1] = ember.tensor([0, 9, 1])
    with pytest.raises(IndexError, match="index out of range"):
        run(*bad)


def test_norms_and_repeat(tmp_path):
    check(_norms, (torch.randn(3, 4),), tmp_path)


# --- layers --------------------------------------------------------------------------------
def _cnn(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = lib.nn.Conv2d(3, 8, 3, padding=1)
            self.bn = lib.nn.BatchNorm2d(8)
            self.fc = lib.nn.Linear(8, 4)

        def forward(self, x):
            y = lib.nn.functional.max_pool2d(lib.relu(self.bn(self.conv(x))), 2)
            return self.fc(lib.nn.functional.adaptive_avg_pool2d(y, 1).flatten(1))
    return Model()


def _attention(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.norm = lib.nn.LayerNorm(16)
            self.attn = lib.nn.MultiheadAttention(16, 2, batch_first=True)
            self.qkv = lib.nn.Linear(16, 48)

        def forward(self, x):
            h = self.norm(x)
            q, k, v = self.qkv(h).view(2, 5, 3, 2, 8).permute(2, 0, 3, 1, 4)
            causal = lib.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.attn(h, h, h, need_weights=False)[0] + \
                causal.transpose(1, 2).reshape(2, 5, 16)
    return Model()


def _lstm(lib):
    class Model(lib.nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = lib.nn.LSTM(4, 8, batch_first=True)
            self.head = lib.nn.Linear(8, 2)

        def forward(self, x):
            out, (h, c) = self.lstm(x)
            return self.head(out[:, -1]), h, c
    return Model()


def _conv1d(lib):
    return lib.nn.Sequential(lib.nn.Conv1d(3, 16, 3, padding=2, dilation=2), lib.nn.GELU(),
                             lib.nn.Conv1d(16, 16, 1, stride=2))


@pytest.mark.parametrize("build,shape", [
    (_cnn, (2, 3, 8, 8)), (_attention, (2, 5, 16)), (_lstm, (2, 5, 4)),
    (_conv1d, (2, 3, 9))], ids=["conv_bn_pool", "layernorm_attention", "lstm", "conv1d"])
def test_layers(build, shape, tmp_path):
    check(build, (torch.randn(*shape),), tmp_path)


@pytest.fixture
def custom_ops():
    """The same custom op in both libraries (torch.library / ember.library), removed
    from ember's registry afterwards."""
    from ember.ir.registry import OPS
    before = set(OPS)

    @torch.library.custom_op("aotsuite::scaled_gelu", mutates_args=())
    def torch_op(x: torch.Tensor, w: torch.Tensor, scale: float) -> torch.Tensor:
        return torch.nn.functional.gelu(x) * w * scale

    @ember.library.custom_op("aotsuite::scaled_gelu", mutates_args=())
    def ember_op(x: ember.Tensor, w: ember.Tensor, scale: float) -> ember.Tensor:
        return ember.nn.functional.gelu(x) * w * scale

    torch_op.register_fake(lambda x, w, scale: torch.empty_like(x))
    ember_op.register_fake(lambda x, w, scale: ember.empty_like(x))
    try:
        yield {torch: torch_op, ember: ember_op}
    finally:
        for name in set(OPS) - before:
            del OPS[name]


def test_a_custom_op_between_layers(custom_ops, tmp_path):
    def build(lib):
        class Model(lib.nn.Module):
            def __init__(self):
                super().__init__()
                self.a, self.b = lib.nn.Linear(6, 6), lib.nn.Linear(6, 3)

            def forward(self, x, w):
                return self.b(custom_ops[lib](self.a(x), w, 2.0))
        return Model()
    check(build, (torch.randn(4, 6), torch.rand(6)), tmp_path)


def test_a_package_of_several_models(tmp_path):
    """compile_and_package({name: program}) writes one file; load_package(path,
    model_name=) loads each (AOTInductor's model_name); a missing name is refused."""
    ref_mlp, mlp = _pair(_mlp)
    ref_two, two = _pair(_simple)
    x, y = torch.randn(3, 8), torch.randn(10, 10)
    path = ember.aot.compile_and_package(
        {"mlp": ember.export(mlp, (_to_ember(x),)),
         "simple": ember.export(two, (_to_ember(y), _to_ember(y)))}, tmp_path / "both.pt2")
    with torch.no_grad():
        _assert_same(ember.aot.load_package(path, model_name="mlp")(_to_ember(x)), ref_mlp(x))
        _assert_same(ember._inductor.aoti_load_package(path, model_name="simple")(
            _to_ember(y), _to_ember(y)), ref_two(y, y))
    with pytest.raises(ember.aot.ArtifactError, match="holds the models mlp, simple"):
        ember.aot.load_package(path, model_name="decoder")


# --- dynamic batch -------------------------------------------------------------------------
def _mlp(lib):
    return lib.nn.Sequential(lib.nn.Linear(8, 16), lib.nn.ReLU(), lib.nn.Linear(16, 3))


@pytest.fixture(scope="module")
def dynamic_package(tmp_path_factory):
    """An MLP packaged with a dynamic batch Dim(min=1, max=8): (torch model, loaded)."""
    ref, port = _pair(_mlp)
    batch = ember.export.Dim("batch", min=1, max=8)
    run = _package(port, (torch.randn(4, 8),),
                   tmp_path_factory.mktemp("aot_suite") / "mlp.pt2",
                   dynamic_shapes={"input": {0: batch}})
    return ref, run


@pytest.mark.parametrize("batch", [1, 3, 4, 8])
def test_dynamic_batch_sizes(dynamic_package, batch):
    ref, run = dynamic_package
    x = torch.randn(batch, 8)
    with torch.no_grad():
        _assert_same(run(_to_ember(x)), ref(x))


def test_wrong_inputs_are_refused_naming_them(dynamic_package):
    _, run = dynamic_package
    with pytest.raises(ember.aot.ArtifactError, match=r"takes one size in \[\d, 8\], got \[9\]"):
        run(ember.randn(9, 8))
    with pytest.raises(ember.aot.ArtifactError, match=r"input 'input' must be float32\[s0, 8\]"):
        run(ember.randn(4, 7))
    with pytest.raises(ember.aot.ArtifactError, match=r"input 'input' must be float32"):
        run(ember.randn(4, 8).double())
    with pytest.raises(ember.aot.ArtifactError, match=r"takes 1 input\(s\) \(input\), got 2"):
        run(ember.randn(4, 8), ember.randn(4, 8))
