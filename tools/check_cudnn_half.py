"""Check ember's cuDNN convolutions in float16 / bfloat16 (and float32 with TF32) on a GPU.

    python tools/check_cudnn_half.py [--quick | --full] [--dtype float16|bfloat16|float32]
                                     [--budget SECONDS]

Runs forward (with and without bias; with bias + relu and bias + residual add + relu fused
into cuDNN's graph), input gradient and weight gradient convolutions through ember's cuDNN
path (frontend/cudnn_conv.py + runtime/cuda/cudnn.py) with
`HALF_PRECISION_ON_CUDNN` switched on for this process, NCHW and channels-last, on a few
resnet / mobilenet shapes, and compares each with torch's convolution of the same values
on the same GPU (float64 reference; torch's own result in the case's dtype is printed as
the yardstick). One line per case:

    PASS|FAIL|NOPLAN  <path> <dtype> <layout> <kind> <shape>  err=<max|got-ref|/max|ref|>
                      torch=<the same for torch in the case's dtype> tol=<allowed>

NOPLAN: cuDNN has no plan for the case, so ember runs its Triton kernel there (not a
failure). Exit status 0 only when every case passes (1: a failure; 3: no failure but
cases left unrun for time; 2: no GPU, no torch or no cuDNN frontend).

Paths (what each line ran):
  ember        ember's runtime on ember's tensors, in a child process that never imports
               torch (as eager conv2d and its backward routes run it: spec_for + execute)
  ember+torch  the same in this process, after torch (and its own libcudnn) loaded
  api          ember.nn.functional.conv2d forward + backward with EMBER_CONV_BACKEND=cudnn
Diagnostics, only when some case fails (for the failing cases, after one passing fprop
baseline per dtype):
  diag:torchobj  ember's built graph, executed with torch tensors in the variant pack
  diag:torchmem  ember's plan (ConvPlan.run) on torch's buffers: bare pointers, as ember
  diag:nvidia    the graph as NVIDIA's samples build it from torch tensors (no engine
                 filters, output type inferred), run with torch tensors
  diag:strict    ember's graph with Winograd / FFT / reduced-precision-reduction engines
                 also deselected
  diag:plan[i]   each of the first plans cuDNN offers, by name
Reading them: nvidia FAIL -> cuDNN / the frontend on this machine; nvidia PASS but
torchobj FAIL -> ember's graph; torchobj PASS but torchmem FAIL -> bare pointers;
torchmem PASS but ember FAIL -> ember's memory or stream; ember FAIL but ember+torch
PASS (or the reverse) -> two libcudnn builds in one process; strict PASS or some plan[i]
PASS -> one engine is wrong (deselect it).

It never edits the switch: set `HALF_PRECISION_ON_CUDNN = True` in
ember/frontend/cudnn_conv.py once every line here passes on the GPU.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# normalized error allowed: max|got - ref| / max|ref|, ref in float64 from the same
# (rounded) inputs; the output's rounding alone is 2^-11 (float16), 2^-8 (bfloat16)
TOLERANCE = {"float16": 2e-3, "bfloat16": 1e-2, "float32": 5e-3}
KINDS = ("fprop", "fprop+bias", "dgrad", "wgrad")
# epilogues inside cuDNN's graph (ConvSpec.epilogue): y = relu(conv + b [+ z]), z a residual
FUSED = ("fprop+bias+relu", "fprop+bias+add+relu")


def has_bias(kind: str) -> bool:
    return "+bias" in kind


def epilogue_of(kind: str) -> str:
    return "_".join(part for part in ("add", "relu") if f"+{part}" in kind)


@dataclasses.dataclass(frozen=True)
class Case:
    shape: str          # a name for the line
    n: int
    c: int
    h: int
    k: int              # output channels
    r: int              # square kernel
    stride: int
    padding: int
    groups: int
    dtype: str
    layout: str         # "nchw" | "cl"
    kind: str           # one of KINDS or FUSED
    benchmark: bool = False     # ember.backends.cudnn.benchmark = True for this case

    @property
    def out_hw(self) -> int:
        return (self.h + 2 * self.padding - (self.r - 1) - 1) // self.stride + 1

    def shapes(self):
        x = (self.n, self.c, self.h, self.h)
        w = (self.k, self.c // self.groups, self.r, self.r)
        y = (self.n, self.k, self.out_hw, self.out_hw)
        return x, w, y

    def label(self) -> str:
        return (f"{self.dtype:8s} {self.layout:4s} {self.kind:19s} {self.shape}"
                f"{' benchmark' if self.benchmark else ''}")


SHAPES = [  # name, n, c, h, k, r, stride, padding, groups
    ("tiny 8->16 3x3 12x12", 2, 8, 12, 16, 3, 1, 1, 1),       # the shape that failed once
    ("layer1 64->64 3x3 28x28", 8, 64, 28, 64, 3, 1, 1, 1),
    ("down 64->128 1x1 s2", 8, 64, 28, 128, 1, 2, 0, 1),
    ("layer3 128->256 3x3 s2", 8, 128, 14, 256, 3, 2, 1, 1),
    ("stem 3->64 7x7 s2", 4, 3, 64, 64, 7, 2, 3, 1),
    ("depthwise 32 3x3", 8, 32, 28, 32, 3, 1, 1, 32),
]


def cases(dtypes, size: str = "default") -> list:
    """quick: the tiny shape; default: three shapes; full: all of SHAPES. Epilogues on
    the first two shapes (one in quick), benchmark mode once per dtype."""
    shapes = {"quick": SHAPES[:1], "default": SHAPES[:3], "full": SHAPES}[size]
    found = []
    for spec in shapes:                      # broadest coverage first (the budget may cut)
        for dtype in dtypes:
            for layout in ("cl", "nchw"):
                for kind in KINDS:
                    found.append(Case(*spec, dtype=dtype, layout=layout, kind=kind))
    for spec in shapes[:2]:                  # epilogues fused into cuDNN's graph
        for dtype in dtypes:
            for layout in ("cl", "nchw"):
                for kind in FUSED:
                    found.append(Case(*spec, dtype=dtype, layout=layout, kind=kind))
    for dtype in dtypes:                     # benchmark mode: plans timed, fastest kept
        found.append(Case(*SHAPES[1], dtype=dtype, layout="cl", kind="fprop",
                          benchmark=True))
    return found


def rounded(a: np.ndarray, dtype: str) -> np.ndarray:
    """`a` in the case's dtype (numpy: float16, ml_dtypes' bfloat16, float32)."""
    if dtype == "float16":
        return a.astype(np.float16)
    if dtype == "bfloat16":
        import ml_dtypes
        return a.astype(ml_dtypes.bfloat16)
    return a.astype(np.float32)


def make_inputs(case: Case, seed: int) -> dict:
    """x, w, b, g (the output gradient), z (a residual) as float32 arrays holding values
    of the dtype."""
    rng = np.random.default_rng(seed)
    x_shape, w_shape, y_shape = case.shapes()
    fan_in = (case.c // case.groups) * case.r * case.r
    arrays = {"x": rng.standard_normal(x_shape), "w": rng.standard_normal(w_shape) / fan_in ** 0.5,
              "b": rng.standard_normal(case.k), "g": rng.standard_normal(y_shape),
              "z": rng.standard_normal(y_shape)}
    return {name: rounded(a, case.dtype).astype(np.float32) for name, a in arrays.items()}


# --- ember's side (no torch) ----------------------------------------------------------------
def ember_setup() -> None:
    import ember
    from ember.frontend import cudnn_conv
    cudnn_conv.HALF_PRECISION_ON_CUDNN = True      # what this script checks
    ember.backends.cudnn.enabled = True
    ember.backends.cudnn.allow_tf32 = True         # float32 cases: TF32 engines
    ember.backends.cuda.matmul.allow_tf32 = True


def _ember_tensor(a: np.ndarray, dtype: str, layout: str):
    import ember
    t = ember.tensor(rounded(a, dtype))
    if t.ndim == 4 and layout == "cl":
        t = t.contiguous(memory_format=ember.channels_last)
    return t.cuda()


def _blank(shape, dtype: str, layout: str):
    """An ember CUDA tensor of the layout, every byte 0xFF (NaN in each float dtype), so
    an element cuDNN leaves unwritten shows."""
    import ember
    from ember.frontend.devices import data_ptr, empty_cuda
    from ember.ir.meta import strides_for
    from ember.runtime.cuda.stream import current_stream, memset
    fmt = ember.channels_last if layout == "cl" else ember.contiguous_format
    t = empty_cuda(tuple(shape), tuple(strides_for(tuple(shape), fmt)), getattr(ember, dtype), 0)
    memset(data_ptr(t), 0xFF, t._storage.nbytes, current_stream(0))
    return t


def ember_run(case: Case, inputs: dict):
    """(status, float32 result or message, plan name): ember's cuDNN route for the case,
    as eager conv2d (fprop, with its bias) and the backward routes call it."""
    import ember
    from ember.frontend import cudnn_conv
    from ember.runtime.cuda.cudnn import CudnnUnsupported, _plans
    x_shape, w_shape, y_shape = case.shapes()
    geometry = ((case.stride,) * 2, (case.padding,) * 2, (1, 1))
    d, lay = case.dtype, case.layout
    ember.backends.cudnn.benchmark = case.benchmark
    try:
        residual = None
        if case.kind.startswith("fprop"):
            x, w = _ember_tensor(inputs["x"], d, lay), _ember_tensor(inputs["w"], d, lay)
            b = _ember_tensor(inputs["b"], d, lay) if has_bias(case.kind) else None
            if "add" in epilogue_of(case.kind):
                residual = _ember_tensor(inputs["z"], d, lay)
            out = _blank(y_shape, d, lay)
            spec = cudnn_conv.spec_for("fprop", x, w, out, *geometry, bias=b,
                                       epilogue=epilogue_of(case.kind))
            operands = (x, w, out, b)
        elif case.kind == "dgrad":
            w, g = _ember_tensor(inputs["w"], d, lay), _ember_tensor(inputs["g"], d, lay)
            out = _blank(x_shape, d, lay)
            spec = cudnn_conv.spec_for("dgrad", out, w, g, *geometry)
            operands = (out, w, g, None)
        else:
            x, g = _ember_tensor(inputs["x"], d, lay), _ember_tensor(inputs["g"], d, lay)
            out = _blank(w_shape, d, lay)
            spec = cudnn_conv.spec_for("wgrad", x, out, g, *geometry)
            operands = (x, out, g, None)
        if spec is None:
            return "error", "ember does not hand this case to cuDNN (spec_for gave None)", ""
        if not cudnn_conv.aligned(*[t for t in operands if t is not None]):
            return "error", "an operand is not 16-byte aligned", ""
        try:
            cudnn_conv.execute(spec, *operands[:3], 0, operands[3], residual)
        except CudnnUnsupported as err:
            return "noplan", str(err)[:200], ""
        ember.cuda.synchronize()
        result = out.cpu().numpy().astype(np.float32)
        return "ok", result, plan_name(_plans[(spec, 0)].graph)
    except Exception as err:  # noqa: BLE001 - reported as the case's failure
        return "error", f"{type(err).__name__}: {str(err)[:300]}", ""
    finally:
        ember.backends.cudnn.benchmark = False


def plan_name(graph) -> str:
    """The built plan's engine name, where the frontend says it (best effort)."""
    index = getattr(graph, "_plan_index", None)      # the plan the build settled on
    try:
        return "?" if index is None else str(graph.get_plan_name_at_index(index))
    except Exception:  # noqa: BLE001 - older frontends name plans differently
        return "?"


def library_info() -> dict:
    """Which cuDNN this process talks to, and every libcudnn file mapped into it."""
    info = {"pid": os.getpid()}
    try:
        import cudnn
        info["frontend"] = getattr(cudnn, "__version__", "?")
        info["backend_version"] = int(cudnn.backend_version())
    except Exception as err:  # noqa: BLE001
        info["frontend"] = f"unavailable: {err}"
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "libcudnn" in line}
        info["libcudnn"] = sorted(paths)
    except OSError:
        info["libcudnn"] = []
    return info


def child_main(inputs_path: str, results_path: str, budget: float) -> int:
    """Run ember's side of every case without torch in the process; write the results."""
    start = time.monotonic()
    import ember
    ember_setup()
    spec = json.loads(open(inputs_path + ".json").read())
    data = np.load(inputs_path)
    out, meta = {}, {"cases": [], "info": None}
    for i, fields in enumerate(spec):
        case = Case(**fields)
        if time.monotonic() - start > budget:
            meta["cases"].append({"status": "unrun", "msg": "time budget", "plan": ""})
            continue
        inputs = {k: data[f"{i}.{k}"] for k in ("x", "w", "b", "g", "z")}
        began = time.monotonic()
        status, result, plan = ember_run(case, inputs)
        took = round(1000 * (time.monotonic() - began))       # plan build + run, ms
        if status == "ok":
            out[str(i)] = result
            meta["cases"].append({"status": status, "msg": "", "plan": plan, "ms": took})
        else:
            meta["cases"].append({"status": status, "msg": result, "plan": plan, "ms": took})
    meta["info"] = library_info()
    meta["info"]["torch_loaded"] = "torch" in sys.modules     # ember itself never imports it
    np.savez(results_path, **out)
    with open(results_path + ".json", "w") as f:
        json.dump(meta, f)
    return 0


# --- torch's side ----------------------------------------------------------------------------
def _torch_tensor(torch, a: np.ndarray, dtype, layout: str):
    t = torch.from_numpy(a).cuda().to(dtype)
    if t.ndim == 4 and layout == "cl":
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def torch_results(torch, case: Case, inputs: dict):
    """(float64 reference, torch's own result in the case's dtype and layout)."""
    f = torch.nn.functional
    kw = dict(stride=case.stride, padding=case.padding, groups=case.groups)
    x_shape, w_shape, _ = case.shapes()

    def run(dtype):
        x, w, b, g, z = (_torch_tensor(torch, inputs[n], dtype, case.layout) for n in "xwbgz")
        if case.kind.startswith("fprop"):
            y = f.conv2d(x, w, b if has_bias(case.kind) else None, **kw)
            if "add" in epilogue_of(case.kind):
                y = y + z
            return torch.relu(y) if "relu" in epilogue_of(case.kind) else y
        mask = [case.kind == "dgrad", case.kind == "wgrad", False]
        grads = torch.ops.aten.convolution_backward(
            g, x, w, None, [case.stride] * 2, [case.padding] * 2, [1, 1], False, [0, 0],
            case.groups, mask)
        return grads[0] if case.kind == "dgrad" else grads[1]
    with torch.no_grad():
        ref = run(torch.float64).double().cpu().numpy()
        torch.backends.cudnn.allow_tf32 = case.dtype == "float32"
        native = run(getattr(torch, case.dtype)).float().cpu().numpy()
        torch.backends.cudnn.allow_tf32 = False
    return ref, native


def error(got: np.ndarray, ref: np.ndarray) -> float:
    if got.shape != ref.shape:
        return float("inf")
    if not np.all(np.isfinite(got)):
        return float("nan")                        # unwritten (0xFF) or overflowed
    return float(np.max(np.abs(got.astype(np.float64) - ref)) / max(np.max(np.abs(ref)), 1e-30))


class Report:
    def __init__(self):
        self.failed, self.unrun, self.lines = 0, 0, 0

    def line(self, verdict: str, path: str, case: Case, err=None, native=None, tol=None,
             note: str = "", counts: bool = True) -> None:
        figures = ""
        if err is not None:
            figures = f" err={err:.2e} torch={native:.2e} tol={tol:.1e}"
        print(f"{verdict:6s} {path:13s} {case.label()}{figures}{('  ' + note) if note else ''}",
              flush=True)
        self.lines += 1
        if counts and verdict == "UNRUN":
            self.unrun += 1
        elif counts and verdict not in ("PASS", "NOPLAN"):
            self.failed += 1


def judge(got, ref, native, dtype: str):
    """(verdict, err, native err, tol): within the dtype's tolerance, or within twice
    torch's own error where torch's cuDNN is itself that far from float64."""
    err, native_err = error(got, ref), error(native, ref)
    tol = max(TOLERANCE[dtype], 2 * native_err if np.isfinite(native_err) else 0.0)
    return ("PASS" if err <= tol else "FAIL"), err, native_err, tol


# --- diagnostics (this process, torch loaded) --------------------------------------------------
def _spec_of(case: Case):
    from ember.frontend import cudnn_conv
    from ember.ir.meta import channels_last, contiguous_format, strides_for
    fmt = channels_last if case.layout == "cl" else contiguous_format
    x, w, y = ((s, tuple(strides_for(s, fmt)), case.dtype) for s in case.shapes())
    b = ((case.k,), (1,), case.dtype) if has_bias(case.kind) else None
    geometry = ((case.stride,) * 2, (case.padding,) * 2, (1, 1))
    import ember
    ember.backends.cudnn.benchmark = case.benchmark
    try:
        return cudnn_conv.spec_for(case.kind[:5], x, w, y, *geometry, bias=b,
                                   epilogue=epilogue_of(case.kind))
    finally:
        ember.backends.cudnn.benchmark = False


def _torch_operands(torch, case: Case, inputs: dict):
    """Torch tensors in ember's pointer roles (x, w, y[, b][, z]) and the one written."""
    dt = getattr(torch, case.dtype)
    x_shape, w_shape, y_shape = case.shapes()

    def blank(shape):
        t = torch.full(shape, float("nan"), dtype=dt, device="cuda")
        return t.contiguous(memory_format=torch.channels_last) if case.layout == "cl" else t
    tx = lambda n: _torch_tensor(torch, inputs[n], dt, case.layout)  # noqa: E731
    if case.kind.startswith("fprop"):
        out = blank(y_shape)
        ops = [tx("x"), tx("w"), out] + ([tx("b")] if has_bias(case.kind) else []) + \
            ([tx("z")] if "add" in epilogue_of(case.kind) else [])
    elif case.kind == "dgrad":
        out = blank(x_shape)
        ops = [out, tx("w"), tx("g")]
    else:
        out = blank(w_shape)
        ops = [tx("x"), out, tx("g")]
    return ops, out


def diag_ember_plan(torch, case, inputs, ref, native, report, how: str) -> None:
    """ember's built plan on torch's buffers: `torchmem` through ConvPlan.run (bare
    pointers), `torchobj` with torch tensors in the variant pack."""
    from ember.runtime.cuda import cudnn as rc
    spec = _spec_of(case)
    try:
        plan = rc.conv_plan(spec, 0)
        ops, out = _torch_operands(torch, case, inputs)
        stream = torch.cuda.current_stream().cuda_stream
        if how == "torchmem":
            plan.run(tuple(t.data_ptr() for t in ops), stream)
        else:
            rc.library().set_stream(plan.handle, stream)
            plan.graph.execute(dict(zip(plan.tensors, ops)), plan.workspace, handle=plan.handle)
        torch.cuda.synchronize()
    except Exception as err:  # noqa: BLE001
        report.line("ERROR", f"diag:{how}", case, note=f"{type(err).__name__}: {str(err)[:200]}",
                    counts=False)
        return
    verdict, err, nerr, tol = judge(out.float().cpu().numpy(), ref, native, case.dtype)
    report.line(verdict, f"diag:{how}", case, err, nerr, tol, counts=False)


def diag_nvidia(torch, case, inputs, ref, native, report) -> None:
    """The graph as NVIDIA's samples build it, from torch tensors, no engine filters."""
    import cudnn
    try:
        handle = cudnn.create_handle()
        cudnn.set_stream(handle, torch.cuda.current_stream().cuda_stream)
        io = {"float16": cudnn.data_type.HALF, "bfloat16": cudnn.data_type.BFLOAT16,
              "float32": cudnn.data_type.FLOAT}[case.dtype]
        graph = cudnn.pygraph(io_data_type=io, intermediate_data_type=cudnn.data_type.FLOAT,
                              compute_data_type=cudnn.data_type.FLOAT, handle=handle)
        ops, out = _torch_operands(torch, case, inputs)
        def declare(i, t):                   # the bias vector as cuDNN takes it: 1 x K x 1 x 1
            dim, stride = (([1, case.k, 1, 1], [case.k, 1, 1, 1]) if t.ndim == 1 else
                           (list(t.size()), list(t.stride())))
            return graph.tensor(name=f"t{i}", dim=dim, stride=stride, data_type=io)
        desc = {i: declare(i, t) for i, t in enumerate(ops) if t is not out}   # inputs only
        geometry = dict(padding=[case.padding] * 2, stride=[case.stride] * 2, dilation=[1, 1])
        if case.kind.startswith("fprop"):
            made = graph.conv_fprop(image=desc[0], weight=desc[1], **geometry)
            if has_bias(case.kind):
                made = graph.bias(input=made, bias=desc[3])
            if "add" in epilogue_of(case.kind):
                made = graph.add(a=made, b=desc[len(ops) - 1])
            if "relu" in epilogue_of(case.kind):
                made = graph.relu(input=made)
        elif case.kind == "dgrad":
            made = graph.conv_dgrad(loss=desc[2], filter=desc[1], **geometry)
        else:
            made = graph.conv_wgrad(image=desc[0], loss=desc[2], **geometry)
        made.set_output(True).set_dim(list(out.size())).set_stride(list(out.stride()))
        pack = {d: ops[i] for i, d in desc.items()}
        pack[made] = out
        graph.validate()
        graph.build_operation_graph()
        graph.create_execution_plans([cudnn.heur_mode.A, cudnn.heur_mode.FALLBACK])
        graph.check_support()
        graph.build_plans()
        workspace = torch.empty(graph.get_workspace_size(), device="cuda", dtype=torch.uint8)
        graph.execute(pack, workspace, handle=handle)
        torch.cuda.synchronize()
        name = plan_name(graph)
    except Exception as err:  # noqa: BLE001
        report.line("ERROR", "diag:nvidia", case, note=f"{type(err).__name__}: {str(err)[:200]}",
                    counts=False)
        return
    verdict, err, nerr, tol = judge(out.float().cpu().numpy(), ref, native, case.dtype)
    report.line(verdict, "diag:nvidia", case, err, nerr, tol, note=f"plan {name}", counts=False)


STRICT_NOTES = ("REDUCED_PRECISION_REDUCTION", "FFT", "WINOGRAD", "WINOGRAD_TILE_4x4",
                "WINOGRAD_TILE_6x6", "WINOGRAD_TILE_13x13")


def diag_strict(torch, case, inputs, ref, native, report) -> None:
    """ember's graph with the numerically weaker engine families deselected too."""
    from ember.runtime.cuda import cudnn as rc
    original = rc._barred_notes

    def stricter(cudnn, spec):
        note = cudnn.numerical_note
        return original(cudnn, spec) + [getattr(note, n) for n in STRICT_NOTES if hasattr(note, n)]
    spec = _spec_of(case)
    key = (spec, 0)
    saved = rc._plans.pop(key, None), rc._failed.pop(key, None)
    rc._barred_notes = stricter
    try:
        diag_ember_plan(torch, case, inputs, ref, native, report, "torchmem")
    finally:
        rc._barred_notes = original
        rc._plans.pop(key, None)
        rc._failed.pop(key, None)
        if saved[0] is not None:
            rc._plans[key] = saved[0]


def diag_plans(torch, case, inputs, ref, native, report, limit: int = 6) -> None:
    """Each of the first plans cuDNN offers for ember's graph (its engine filters
    applied), built one at a time and run on torch's buffers."""
    from ember.runtime.cuda import cudnn as rc
    cudnn = rc.library()
    spec = _spec_of(case)
    try:
        handle = rc._handle(0)
        graph, tensors = rc._build(cudnn, spec, handle)
        count = int(graph.get_execution_plan_count())
    except Exception as err:  # noqa: BLE001
        report.line("ERROR", "diag:plans", case, note=f"{type(err).__name__}: {str(err)[:200]}",
                    counts=False)
        return
    cudnn.set_stream(handle, torch.cuda.current_stream().cuda_stream)
    for i in range(min(count, limit)):
        try:
            graph.build_plan_at_index(i)
            name = graph.get_plan_name_at_index(i)
            size = int(graph.get_workspace_size_plan_at_index(i))
            ops, out = _torch_operands(torch, case, inputs)
            workspace = torch.empty(max(size, 1), device="cuda", dtype=torch.uint8)
            graph.execute_plan_at_index(dict(zip(tensors, [t.data_ptr() for t in ops])),
                                        workspace.data_ptr(), i, handle=handle)
            torch.cuda.synchronize()
        except Exception as err:  # noqa: BLE001 - a plan that did not build or run
            print(f"{'-':6s} diag:plan[{i}]  {case.label()}  {type(err).__name__}: "
                  f"{str(err)[:120]}", flush=True)
            continue
        verdict, err, nerr, tol = judge(out.float().cpu().numpy(), ref, native, case.dtype)
        report.line(verdict, f"diag:plan[{i}]", case, err, nerr, tol,
                    note=f"{name} ws={size}", counts=False)


def api_run(torch, case: Case, inputs: dict, report: Report) -> None:
    """ember.nn.functional.conv2d forward and backward, cuDNN forced: out, the input,
    weight and bias gradients against torch's float64."""
    import ember
    from ember.runtime.cuda import cudnn as rc
    fmt = ember.channels_last if case.layout == "cl" else ember.contiguous_format
    rc._plans.clear()
    try:
        xe = _ember_tensor(inputs["x"], case.dtype, case.layout).requires_grad_()
        we = _ember_tensor(inputs["w"], case.dtype, case.layout).requires_grad_()
        be = _ember_tensor(inputs["b"], case.dtype, case.layout).requires_grad_()
        out = ember.nn.functional.conv2d(xe, we, be, stride=case.stride, padding=case.padding,
                                         groups=case.groups)
        g = ember.tensor(rounded(inputs["g"], case.dtype)).contiguous(memory_format=fmt).cuda()
        out.backward(g)
        got = [t.detach().float().cpu().numpy() for t in (out, xe.grad, we.grad, be.grad)]
        kinds = sorted({spec.kind for spec, _ in rc._plans})
    except Exception as err:  # noqa: BLE001
        report.line("FAIL", "api", case, note=f"{type(err).__name__}: {str(err)[:300]}")
        return
    xt, wt, bt = (torch.from_numpy(inputs[n]).cuda().double().requires_grad_() for n in "xwb")
    ref = torch.nn.functional.conv2d(xt, wt, bt, stride=case.stride, padding=case.padding,
                                     groups=case.groups)
    ref.backward(torch.from_numpy(inputs["g"]).cuda().double())
    refs = [t.detach().cpu().numpy() for t in (ref, xt.grad, wt.grad, bt.grad)]
    errs = [error(a, r) for a, r in zip(got, refs)]
    tol = TOLERANCE[case.dtype]
    ok = all(e <= tol for e in errs) and kinds == ["dgrad", "fprop", "wgrad"]
    note = (f"out/dx/dw/db err {' '.join(f'{e:.1e}' for e in errs)} tol={tol:.0e}; "
            f"cuDNN ran {','.join(kinds) or 'nothing'}")
    report.line("PASS" if ok else "FAIL", "api", case, note=note)


# --- the parent ------------------------------------------------------------------------------
def write_inputs(directory: str, all_cases: list, inputs: list) -> tuple:
    """The cases and their arrays for the child: (inputs path, results path)."""
    inputs_path = os.path.join(directory, "inputs.npz")
    results_path = os.path.join(directory, "results.npz")
    np.savez(inputs_path, **{f"{i}.{k}": v for i, d in enumerate(inputs) for k, v in d.items()})
    with open(inputs_path + ".json", "w") as f:
        json.dump([dataclasses.asdict(c) for c in all_cases], f)
    return inputs_path, results_path


def verdicts(all_cases, inputs, meta, results, reference, report):
    """One line per case the child ran: its result against `reference(case, arrays)` ->
    (float64 reference, torch's own result). Returns the references computed and the
    cases to diagnose (the failing ones, after one passing fprop baseline per dtype)."""
    refs, failing, baseline = {}, [], set()
    for i, case in enumerate(all_cases):
        entry = meta["cases"][i]
        if entry["status"] == "unrun":
            report.line("UNRUN", "ember", case, note="time budget")
            continue
        if entry["status"] == "noplan":
            report.line("NOPLAN", "ember", case, note=entry["msg"][:120])
            continue
        if entry["status"] != "ok":
            report.line("FAIL", "ember", case, note=entry["msg"])
            failing.append(i)
            continue
        refs[i] = reference(case, inputs[i])
        verdict, err, nerr, tol = judge(results[str(i)], *refs[i], case.dtype)
        report.line(verdict, "ember", case, err, nerr, tol,
                    note=f"{entry.get('ms', '?')} ms plan {entry['plan']}")
        if verdict != "PASS":
            failing.append(i)
        elif case.dtype not in baseline and case.kind == "fprop":
            baseline.add(case.dtype)
            failing.insert(0, i)
    return refs, failing


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="the tiny shape only")
    p.add_argument("--full", action="store_true", help="every shape (may need --budget 240)")
    p.add_argument("--dtype", action="append", choices=sorted(TOLERANCE),
                   help="repeatable; default float16, bfloat16 and float32 (TF32)")
    p.add_argument("--budget", type=float, default=110.0, help="seconds for the whole run")
    p.add_argument("--child", nargs=2, metavar=("INPUTS", "RESULTS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child_main(*args.child, budget=args.budget)
    start = time.monotonic()
    left = lambda: args.budget - (time.monotonic() - start)  # noqa: E731
    import importlib.util
    import ember                                 # ember never imports torch
    if not ember.cuda.is_available():
        print("no CUDA GPU for ember")
        return 2
    if importlib.util.find_spec("cudnn") is None:
        print("the cuDNN frontend package (nvidia-cudnn-frontend) is not installed")
        return 2
    dtypes = args.dtype or ["float16", "bfloat16", "float32"]
    all_cases = cases(dtypes, "quick" if args.quick else "full" if args.full else "default")
    inputs = [make_inputs(case, seed=i) for i, case in enumerate(all_cases)]

    # 1. ember's side in a child process without torch
    tmp = tempfile.mkdtemp(prefix="check_cudnn_half_")
    inputs_path, results_path = write_inputs(tmp, all_cases, inputs)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT] + [x for x in [
        os.environ.get("PYTHONPATH")] if x]), EMBER_CACHE_DIR=os.path.join(tmp, "cache"))
    env.pop("EMBER_CONV_BACKEND", None)
    child_budget = 0.55 * args.budget
    try:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--budget",
                               str(child_budget), "--child", inputs_path, results_path],
                              env=env, capture_output=True, text=True,
                              timeout=child_budget + 45)
    except subprocess.TimeoutExpired as err:
        print(f"FAIL   the child process running ember's side hung past {err.timeout:.0f} s "
              "(one case hung: rerun with --quick or one --dtype to find it)")
        return 1
    if proc.returncode != 0 or not os.path.exists(results_path + ".json"):
        print(proc.stdout[-4000:], proc.stderr[-4000:], sep="\n")
        print("FAIL   the child process running ember's side did not finish "
              f"(exit status {proc.returncode})")
        return 1
    results = np.load(results_path)
    meta = json.load(open(results_path + ".json"))
    print("child (no torch):", json.dumps(meta["info"]), flush=True)
    if proc.stderr.strip():
        print("child stderr (tail):", proc.stderr[-2000:], sep="\n")

    # 2. torch: references, torch's own results, and the verdicts
    try:
        import torch
    except ImportError:
        print("torch is needed for the references")
        return 2
    if not torch.cuda.is_available():
        print("no CUDA GPU")
        return 2
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    import ember
    from ember.runtime.cuda import cudnn as rc
    if rc.library() is None:
        print(f"cuDNN frontend unavailable: {rc.unavailable_reason()}")
        return 2
    ember_setup()
    print("this process (torch", torch.__version__, "cuDNN", torch.backends.cudnn.version(),
          "):", json.dumps(library_info()), "| GPU", torch.cuda.get_device_name(), flush=True)
    report = Report()
    refs, failing = verdicts(all_cases, inputs, meta, results,
                             lambda case, arrays: torch_results(torch, case, arrays), report)

    # 3. for failures only: the same in this process (torch's libcudnn loaded too), then
    #    the diagnostics, a passing baseline per dtype first
    if not any(report_failed(meta, results, refs, all_cases, i) for i in failing):
        failing = []
    for i in failing[:8]:
        if left() < 25:
            print("(diagnostics cut short: time budget)")
            break
        case = all_cases[i]
        if i not in refs:
            refs[i] = torch_results(torch, case, inputs[i])
        status, got, plan = ember_run(case, inputs[i])
        if status == "ok":
            verdict, err, nerr, tol = judge(got, *refs[i], case.dtype)
            report.line(verdict, "ember+torch", case, err, nerr, tol, note=f"plan {plan}")
        else:
            report.line("NOPLAN" if status == "noplan" else "FAIL", "ember+torch", case,
                        note=str(got)[:200])
        for how in ("torchobj", "torchmem"):
            diag_ember_plan(torch, case, inputs[i], *refs[i], report, how)
        diag_nvidia(torch, case, inputs[i], *refs[i], report)
        if not report_failed(meta, results, refs, all_cases, i):
            continue                             # a passing baseline needs no more
        diag_strict(torch, case, inputs[i], *refs[i], report)
        if left() > 40:
            diag_plans(torch, case, inputs[i], *refs[i], report)

    # 4. the public route, forward and backward, on two shapes
    os.environ["EMBER_CONV_BACKEND"] = "cudnn"
    os.environ.setdefault("EMBER_CACHE_DIR", os.path.join(tmp, "cache"))
    for spec in SHAPES[:1 if args.quick else 2]:
        for dtype in [d for d in dtypes if d != "float32"]:
            for layout in ("cl", "nchw"):
                case = Case(*spec, dtype=dtype, layout=layout, kind="fwd+bwd")
                if left() < 20:
                    report.line("UNRUN", "api", case, note="time budget")
                    continue
                api_run(torch, case, make_inputs(case, seed=1000), report)
    os.environ.pop("EMBER_CONV_BACKEND", None)
    took = time.monotonic() - start
    print(f"{report.failed} failing and {report.unrun} unrun line(s) that count; {took:.1f} s")
    if report.failed:
        return 1
    if report.unrun:
        print("incomplete: rerun with a larger --budget, or --quick")
        return 3
    print("every case passed: turn float16/bfloat16 on with HALF_PRECISION_ON_CUDNN = True "
          f"({switch_line()})")
    return 0


def switch_line() -> str:
    path = os.path.join(ROOT, "ember", "frontend", "cudnn_conv.py")
    with open(path) as f:
        for number, text in enumerate(f, 1):
            if text.startswith("HALF_PRECISION_ON_CUDNN"):
                return f"ember/frontend/cudnn_conv.py:{number}"
    return "ember/frontend/cudnn_conv.py"


def report_failed(meta, results, refs, all_cases, i) -> bool:
    """Whether case i failed in the child (not a passing baseline)."""
    entry = meta["cases"][i]
    if entry["status"] != "ok":
        return True
    case = all_cases[i]
    return judge(results[str(i)], *refs[i], case.dtype)[0] != "PASS"


if __name__ == "__main__":
    sys.exit(main())
