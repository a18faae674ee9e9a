"""tools/check_cudnn_half.py's own machinery on CI (CUDA emulated in host memory, no GPU):
ember's side of each case (tensors in the case's dtype and layout, outputs pre-filled
with NaN, spec_for + execute, the read-back) through a stand-in cuDNN frontend that
computes each convolution with torch on the CPU from the pointers it is handed. A correct
stand-in must pass every direction, dtype and layout; one that convolves instead of
cross-correlating, accumulates into the output (beta 1), or leaves the output unwritten
must fail. (On a GPU the tool itself runs.)"""
import ctypes
import os
import sys
import types

os.environ.setdefault("TRITON_INTERPRET", "1")    # before triton is imported (emulation.py)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
ml_dtypes = pytest.importorskip("ml_dtypes")

import ember  # noqa: E402
from ember.frontend import cuda as cuda_api, cudnn_conv  # noqa: E402
from ember.runtime.cuda import cudnn as runtime_cudnn, stream as S  # noqa: E402

from emulation import emulated_cuda  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools"))
import check_cudnn_half as tool  # noqa: E402

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1",
                                reason="CI emulation; on a GPU run the tool itself")

NUMPY = {"HALF": np.float16, "BFLOAT16": ml_dtypes.bfloat16, "FLOAT": np.float32}


class _Desc:
    """A tensor description, as the frontend keeps one."""

    def __init__(self, name, dim=None, stride=None, data_type=None):
        self.name, self.dim, self.stride, self.data_type = name, dim, stride, data_type
        self.node = None

    def set_output(self, flag):
        return self

    def set_dim(self, dim):
        self.dim = list(dim)
        return self

    def set_stride(self, stride):
        self.stride = list(stride)
        return self

    def set_data_type(self, data_type):
        self.data_type = data_type
        return self


class _Graph:
    """Records the nodes; execute() computes them on host memory with torch (float64)."""

    def __init__(self, fault, **kwargs):
        self.fault, self.nodes = fault, []

    def tensor(self, name, dim, stride, data_type):
        return _Desc(name, list(dim), list(stride), data_type)

    def _node(self, kind, inputs, padding, stride, dilation, **kwargs):
        out = _Desc(kind)
        out.node = (kind, inputs, padding, stride, dilation)
        return out

    def conv_fprop(self, image, weight, **kw):
        return self._node("fprop", (image, weight), **kw)

    def conv_dgrad(self, loss, filter, **kw):
        return self._node("dgrad", (loss, filter), **kw)

    def conv_wgrad(self, image, loss, **kw):
        return self._node("wgrad", (image, loss), **kw)

    def _pointwise(self, kind, *inputs):
        out = _Desc(kind)
        out.node = (kind, inputs, None, None, None)
        return out

    def bias(self, input, bias, **kw):
        return self._pointwise("bias", input, bias)

    def add(self, a, b, **kw):
        return self._pointwise("add", a, b)

    def relu(self, input, **kw):
        return self._pointwise("relu", input)

    def __getattr__(self, name):            # validate, build_plans, ...: nothing to do
        return lambda *args, **kwargs: 0

    def execute(self, pack, workspace, handle=None):
        if self.fault == "unwritten":
            return
        arrays = {id(d): self._read(d, p) for d, p in pack.items()}
        out_desc = next(d for d in pack if d.node is not None)
        value = self._compute(out_desc, arrays)
        view = self._view(out_desc, pack[out_desc])
        if self.fault == "beta":                  # accumulates into the output (beta = 1)
            value = value + torch.from_numpy(view.astype(np.float64))
        view[...] = value.numpy().astype(view.dtype)

    def _view(self, desc, ptr):
        dtype = np.dtype(NUMPY[desc.data_type])
        extent = 1 + sum((n - 1) * s for n, s in zip(desc.dim, desc.stride))
        raw = (ctypes.c_char * (extent * dtype.itemsize)).from_address(ptr)
        flat = np.frombuffer(raw, dtype, extent)
        return np.lib.stride_tricks.as_strided(
            flat, desc.dim, [s * dtype.itemsize for s in desc.stride])

    def _read(self, desc, ptr):
        return torch.from_numpy(self._view(desc, ptr).astype(np.float64))

    def _compute(self, desc, arrays):
        kind, inputs, padding, stride, dilation = desc.node
        if kind == "bias":
            conv, b = inputs
            return self._compute(conv, arrays) + arrays[id(b)].reshape(1, -1, 1, 1)
        if kind == "add":
            first, z = inputs
            return self._compute(first, arrays) + arrays[id(z)]
        if kind == "relu":
            value = self._compute(inputs[0], arrays)
            return value if self.fault == "no_relu" else value.clamp(min=0)
        a, b = (arrays[id(t)] for t in inputs)
        if self.fault == "convolution":           # the filter flipped: true convolution
            b = b.flip(-1, -2)
        kw = dict(stride=stride, padding=padding, dilation=dilation)
        if kind == "fprop":
            return torch.nn.functional.conv2d(a, b, groups=a.shape[1] // b.shape[1], **kw)
        if kind == "dgrad":                        # a: dy, b: w, the output: dx
            groups = desc.dim[1] // b.shape[1]
            return torch.nn.grad.conv2d_input(desc.dim, b, a, groups=groups, **kw)
        groups = a.shape[1] // desc.dim[1]
        return torch.nn.grad.conv2d_weight(a, desc.dim, b, groups=groups, **kw)


def _stand_in(fault=None):
    names = types.SimpleNamespace
    module = types.SimpleNamespace(
        backend_version=lambda: 91900, create_handle=lambda: "handle",
        set_stream=lambda handle, stream: None,
        data_type=names(HALF="HALF", BFLOAT16="BFLOAT16", FLOAT="FLOAT"),
        numerical_note=names(DOWN_CONVERT_INPUTS=1, TENSOR_CORE=2, NONDETERMINISTIC=3),
        heur_mode=names(A=0, FALLBACK=1), build_plan_policy=names(ALL=0, HEURISTICS_CHOICE=1),
        pygraph=lambda **kwargs: _Graph(fault, **kwargs))
    return module


@pytest.fixture
def emulated(monkeypatch):
    usable = cudnn_conv.usable
    # what the emulation itself patches is patched again inside it (undone before it is)
    with emulated_cuda(), pytest.MonkeyPatch.context() as inside:
        inside.setattr(S, "memset", lambda dst, byte, nbytes, stream:
                       ctypes.memset(dst, byte, nbytes))
        inside.setattr(cudnn_conv, "usable", usable)    # cuDNN here is the stand-in
        monkeypatch.setattr(cuda_api, "synchronize", lambda device=None: None)
        monkeypatch.setattr(cudnn_conv, "_capturing", lambda index: False)
        monkeypatch.setattr(runtime_cudnn, "_handle", lambda index: "handle")
        monkeypatch.setattr(runtime_cudnn, "_plans", {})
        monkeypatch.setattr(runtime_cudnn, "_failed", {})
        monkeypatch.setattr(cudnn_conv, "HALF_PRECISION_ON_CUDNN", False)
        for flag in ("enabled", "allow_tf32", "benchmark"):
            monkeypatch.setattr(ember.backends.cudnn, flag, getattr(ember.backends.cudnn, flag))
        monkeypatch.setattr(ember.backends.cuda.matmul, "allow_tf32",
                            ember.backends.cuda.matmul.allow_tf32)
        tool.ember_setup()
        yield monkeypatch


def _use(monkeypatch, fault=None):
    monkeypatch.setitem(sys.modules, "cudnn", _stand_in(fault))
    monkeypatch.setattr(runtime_cudnn, "_state", {"module": None, "tried": False, "why": None})
    runtime_cudnn._plans.clear()


def _reference(case, inputs):
    """float64 on the CPU (the tool's torch_results does this on the GPU)."""
    x, w, b, g = (torch.from_numpy(inputs[n]).double() for n in "xwbg")
    kw = dict(stride=case.stride, padding=case.padding, groups=case.groups)
    if case.kind.startswith("fprop"):
        y = torch.nn.functional.conv2d(x, w, b if tool.has_bias(case.kind) else None, **kw)
        if "add" in tool.epilogue_of(case.kind):
            y = y + torch.from_numpy(inputs["z"]).double()
        return (y.clamp(min=0) if "relu" in tool.epilogue_of(case.kind) else y).numpy()
    if case.kind == "dgrad":
        return torch.nn.grad.conv2d_input(x.shape, w, g, **kw).numpy()
    return torch.nn.grad.conv2d_weight(x, w.shape, g, **kw).numpy()


SMALL = ("small", 2, 4, 6, 8, 3, 2, 1, 1)            # strided, so dgrad's shape matters
GROUPED = ("grouped", 2, 4, 5, 4, 3, 1, 1, 2)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_the_tool_passes_a_correct_convolution_in_every_direction_and_layout(emulated, dtype):
    _use(emulated)
    for shape in (SMALL, GROUPED):
        for layout in ("cl", "nchw"):
            for kind in tool.KINDS + tool.FUSED:
                case = tool.Case(*shape, dtype=dtype, layout=layout, kind=kind)
                inputs = tool.make_inputs(case, seed=3)
                status, got, _ = tool.ember_run(case, inputs)
                assert status == "ok", got
                ref = _reference(case, inputs)
                verdict, err, _, tol = tool.judge(got, ref, ref, dtype)
                assert verdict == "PASS", (case.label(), err, tol)
    built = {(spec.kind, spec.dtype, spec.bias, spec.epilogue) for spec, _ in runtime_cudnn._plans}
    assert built == {("fprop", dtype, False, ""), ("fprop", dtype, True, ""),
                     ("fprop", dtype, True, "relu"), ("fprop", dtype, True, "add_relu"),
                     ("dgrad", dtype, False, ""), ("wgrad", dtype, False, "")}  # all via cuDNN


@pytest.mark.parametrize("fault, kind", [("convolution", "fprop"), ("convolution", "dgrad"),
                                         ("beta", "wgrad"), ("unwritten", "fprop+bias"),
                                         ("no_relu", "fprop+bias+add+relu")])
def test_the_tool_fails_a_wrong_convolution(emulated, fault, kind):
    _use(emulated, fault)
    case = tool.Case(*SMALL, dtype="float16", layout="cl", kind=kind)
    inputs = tool.make_inputs(case, seed=4)
    status, got, _ = tool.ember_run(case, inputs)
    assert status == "ok", got
    ref = _reference(case, inputs)
    verdict, err, _, _ = tool.judge(got, ref, ref, "float16")
    assert verdict == "FAIL", (fault, kind, err)


def test_half_inputs_hold_values_of_their_dtype():
    case = tool.Case(*SMALL, dtype="bfloat16", layout="cl", kind="fprop")
    inputs = tool.make_inputs(case, seed=5)
    for a in inputs.values():
        assert a.dtype == np.float32
        np.testing.assert_array_equal(a, a.astype(ml_dtypes.bfloat16).astype(np.float32))
    assert len(tool.cases(["float16"], "quick")) == 2 * len(tool.KINDS + tool.FUSED) + 1


@pytest.mark.parametrize("fault", [None, "unwritten"])
def test_the_child_results_and_the_verdicts_round_trip(emulated, tmp_path, capsys, fault):
    """The parent's plumbing: the cases and arrays written for the child, the child's
    results read back, one verdict line per case (references here on the CPU)."""
    _use(emulated, fault)
    all_cases = [tool.Case(*SMALL, dtype=d, layout="cl", kind=k)
                 for d in ("float16", "bfloat16") for k in tool.KINDS]
    inputs = [tool.make_inputs(c, seed=i) for i, c in enumerate(all_cases)]
    inputs_path, results_path = tool.write_inputs(str(tmp_path), all_cases, inputs)
    assert tool.child_main(inputs_path, results_path, budget=60) == 0
    import json
    meta = json.load(open(results_path + ".json"))
    assert [e["status"] for e in meta["cases"]] == ["ok"] * len(all_cases)
    report = tool.Report()
    refs, failing = tool.verdicts(all_cases, inputs, meta, np.load(results_path),
                                  lambda case, arrays: (_reference(case, arrays),) * 2, report)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if " ember " in ln]
    assert len(lines) == report.lines == len(all_cases) and len(refs) == len(all_cases)
    if fault is None:
        assert report.failed == 0 and all(ln.startswith("PASS") for ln in lines)
        assert [all_cases[i].dtype for i in failing] == ["bfloat16", "float16"]  # baselines
    else:
        assert report.failed == len(all_cases) and all(ln.startswith("FAIL") for ln in lines)


def test_a_residual_must_match_the_output(emulated):
    _use(emulated)
    case = tool.Case(*SMALL, dtype="float16", layout="cl", kind="fprop+bias+add+relu")
    inputs = tool.make_inputs(case, seed=6)
    x, w, b = (tool._ember_tensor(inputs[n], "float16", "cl") for n in "xwb")
    out = tool._blank(case.shapes()[2], "float16", "cl")
    spec = cudnn_conv.spec_for("fprop", x, w, out, (2, 2), (1, 1), (1, 1), bias=b,
                               epilogue="add_relu")
    nchw = tool._ember_tensor(inputs["z"], "float16", "nchw")     # not the output's layout
    with pytest.raises(ValueError, match="residual"):
        cudnn_conv.execute(spec, x, w, out, 0, b, nchw)
    with pytest.raises(ValueError, match="residual"):
        cudnn_conv.execute(spec, x, w, out, 0, b)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_with_the_switch_on_eager_half_convolutions_take_cudnn_both_ways(emulated, dtype,
                                                                          monkeypatch):
    """The switch's wiring, as the tool's `api` lines run it on the GPU: eager conv2d
    forward (with its bias) and its input and weight gradients in float16 / bfloat16 go
    to cuDNN (here the stand-in) with HALF_PRECISION_ON_CUDNN on, and match torch."""
    _use(emulated)
    monkeypatch.setenv("EMBER_CONV_BACKEND", "cudnn")
    monkeypatch.setattr(cudnn_conv, "_memo", {})
    case = tool.Case(*SMALL, dtype=dtype, layout="cl", kind="fwd+bwd")
    inputs = tool.make_inputs(case, seed=7)
    xe, we, be = (tool._ember_tensor(inputs[n], dtype, "cl").requires_grad_() for n in "xwb")
    out = ember.nn.functional.conv2d(xe, we, be, stride=case.stride, padding=case.padding)
    g = tool._ember_tensor(inputs["g"], dtype, "cl")
    out.backward(g)
    assert {spec.kind for spec, _ in runtime_cudnn._plans} == {"fprop", "dgrad", "wgrad"}
    assert {spec.dtype for spec, _ in runtime_cudnn._plans} == {dtype}
    xt, wt, bt = (torch.from_numpy(inputs[n]).double().requires_grad_() for n in "xwb")
    ref = torch.nn.functional.conv2d(xt, wt, bt, stride=case.stride, padding=case.padding)
    ref.backward(torch.from_numpy(inputs["g"]).double())
    for got, want in ((out, ref), (xe.grad, xt.grad), (we.grad, wt.grad)):
        err = tool.error(got.detach().float().cpu().numpy(), want.detach().numpy())
        assert err <= tool.TOLERANCE[dtype], err
